// `GET /v2/_catalog` answered by the gateway itself for sites that front several registries (a group, or
// repository-prefix routes), and `GET /v2/<name>/tags/list` for every site: each member's list is fetched
// whole (following its Link pages; a site with one registry has one member), the lists are merged into one
// sorted, deduplicated list, and that list is paginated with
// `n`, `last` and `Link` the way the distribution spec describes — whatever the members do with `n`/`last`
// (distribution 2.8 ignores both on tags/list and answers its tags unsorted).
//
// Semantics chosen, with the texts they follow:
//
// * Order. "The catalog result set is represented abstractly as a lexically sorted list, where the position
//   in that list can be specified by the query term `last`" (distribution docs/spec/api.md). The OCI spec
//   glosses "lexical order" as "(i.e. case-insensitive alphanumeric order)", but distribution, the reference
//   implementation, sorts bytes (Go's sort.Strings), and a case-insensitive order would make `last=A` and
//   `last=a` the same position. The order here is JavaScript's string order (UTF-16 code units), which is
//   byte order for ASCII — and only names of the registry grammars (ASCII) are kept from the members.
// * `last`. "The entries in the response start _after_ the term specified by `last`, up to `n` entries"
//   (api.md); "`<tagname>` will not be included in the results, but up to `<int>` tags *after* `<tagname>`
//   will be returned" (OCI spec). So a page holds the entries strictly greater than `last`; `last` need not
//   be in the list (distribution 2.8 answers `?n=2&last=bb` over a,b,c,d with c,d), and a `last` after
//   everything gives an empty page.
// * `n`. "When `n` is zero, this endpoint MUST return an empty list, and MUST NOT include a `Link` header"
//   (OCI spec). A value that is not a non-negative integer is refused: PAGINATION_NUMBER_INVALID, "Returned
//   when the "n" parameter (number of results to return) is not an integer, "n" is negative or "n" is bigger
//   than the maximum allowed" (distribution errcode; distribution 2.8 silently used 100 instead, 3.x
//   refuses). Digits only: `+5`, `1.5`, `1e3`, ` 5` are refused. Above MAX_PAGE the page is capped rather
//   than refused: "The response to such a request MAY return fewer than `<int>` results, but only when the
//   total number of tags attached to the repository is less than `<int>` or a `Link` header is provided"
//   (OCI spec) — a capped page always carries the Link when more entries follow.
// * No `n`. "A registry may also limit the amount of responses returned even if pagination was not
//   explicitly requested. In this case the `Link` header will be returned along with the results, and
//   subsequent results can be obtained by following the link as if pagination had been initially
//   requested" (api.md, Listing Repositories; tags pagination is "identical to that specified for catalog
//   pagination"). distribution returns 100 catalog entries by default (and every tag); the gateway returns
//   at most MAX_PAGE entries for both, with a Link when more follow, so no answer is unbounded.
// * `Link`. Only when entries remain after the page: "If there are indeed more results, the URL for the
//   next block is encoded in an RFC5988 `Link` header, as a "next" relation … If the header is not present,
//   the client can assume that all results have been received" (api.md). Written like distribution 2.8
//   writes it — a path relative to the host, the parameters in url.Values.Encode's sorted order, `n` being
//   the page size actually used: `</v2/_catalog?last=b&n=2>; rel="next"`.
// * Repeated parameters: the first value counts, as with Go's url.Values.Get in distribution. An empty
//   value (`n=`, `last=`) counts as absent, as in distribution (`q.Get("n") != ""`).
import http, { type IncomingMessage } from "node:http";
import https from "node:https";
import { isValidRepositoryName } from "./routes.js";
import { formValues } from "./target.js";

export interface ListSource {
  /** The member registry's origin (its path, if any, is not used: list paths are absolute). */
  backend: URL;
  agent: http.Agent;
  /** The whole Authorization header value for the member (the gateway's own backend credentials). */
  authorization?: string;
  /** The User-Agent of the client whose request this read serves, so the member's access log names the client. */
  userAgent?: string;
  /** How long one page may take; PAGE_TIMEOUT_MS unless set. */
  pageTimeoutMs?: number;
}

/** The largest page the gateway answers, and the page size when the client gives no `n`. */
export const MAX_PAGE = 1000;
/** Names read from one member at most; the rest of a longer list is not read. */
export const MAX_NAMES = 100_000;
/**
 * Pages read from one member at most. A member that honours `n=1000` needs 100 for MAX_NAMES; one that
 * ignores `n` and pages by 100 (a common default) needs 1000. A member repeating a Link is stopped sooner.
 */
export const MAX_PAGES = 1000;
/** One page: the whole exchange, headers and body. */
export const PAGE_TIMEOUT_MS = 10_000;
/** One page's body at most: MAX_NAMES names of the longest valid kind, with JSON quoting, fit. */
export const MAX_PAGE_BYTES = 32 * 1024 * 1024;

/**
 * A tag list is read whole before it is paged, so what one list may hold is bounded: MAX_NAMES tags, and
 * MAX_TAG_LIST_BYTES read over all of its pages (MAX_NAMES tags of the longest valid kind, 128 characters,
 * with JSON quoting, fit). A longer list is not paged within what was read: distribution 2.8 answers its
 * tags unsorted, so the part read would be an arbitrary subset, and a client walking it would believe it saw
 * every tag. It fails instead (ListTooLarge), and the client is told why.
 */
export const MAX_TAG_LIST_BYTES = 16 * 1024 * 1024;

/** A member's list is longer than the gateway reads: MAX_NAMES names or MAX_TAG_LIST_BYTES bytes. */
export class ListTooLarge extends Error {}

/** distribution's reference.TagRegexp. */
const TAG_PATTERN = /^[\w][\w.-]{0,127}$/;

/**
 * Every repository name of one registry, following its Link pages. Names outside the repository-name
 * grammar are dropped (no request through the gateway could name them). Stops, keeping what it read, at
 * MAX_NAMES names, after MAX_PAGES pages, or at a Link already followed. Rejects on a status other than
 * 200, a body without a `repositories` list, bad JSON, a page over MAX_PAGE_BYTES, or a page not answered
 * within the page timeout.
 */
export async function fetchRepositories(source: ListSource): Promise<string[]> {
  const names = await fetchList(source, "/v2/_catalog", "repositories", isValidRepositoryName);
  if (names === null) throw new Error("the registry's catalog answered 404");
  return names;
}

/**
 * A repository's tags on one registry, following Link pages like fetchRepositories, but whole or not at all:
 * more than MAX_NAMES tags, or more than MAX_TAG_LIST_BYTES read, rejects with ListTooLarge. The first page is
 * asked for without `n`, as a client asks: distribution 2.8 ignores `n` on tags/list and answers every tag,
 * and a registry that pages answers its default page and a Link. null when the first page answers 404 (distribution's NAME_UNKNOWN; any 404 is taken to mean "not here", since registries
 * differ on the code). A 404 on a later page (the repository went away meanwhile) rejects. `"tags": null`
 * (distribution's answer for a repository whose tags were all deleted) reads as no tags. Tags outside
 * distribution's tag grammar are dropped. `name` must already be a valid repository name.
 */
export function fetchTags(source: ListSource, name: string): Promise<string[] | null> {
  return fetchList(source, `/v2/${name}/tags/list`, "tags", (tag) => TAG_PATTERN.test(tag), WHOLE_TAG_LIST);
}

/** Sorted (JavaScript string order, see above), deduplicated union. */
export function mergeSorted(lists: readonly (readonly string[])[]): string[] {
  const all = new Set<string>();
  for (const list of lists) for (const item of list) all.add(item);
  return [...all].sort();
}

export type PageRequest = { ok: true; n: number | null; last: string | null } | { ok: false; message: string };

/**
 * `n` and `last` from a raw query string (as received, without "?"). `n`: digits only, 0 allowed (an empty
 * page), capped at MAX_PAGE; anything else is ok:false, which the caller answers with 400
 * PAGINATION_NUMBER_INVALID. No `n` (or `n=`): null, which paginate reads as MAX_PAGE. A query with an
 * invalid percent-escape is ok:false too (checkTarget refuses those before this is reached).
 */
export function readPageRequest(rawQuery: string): PageRequest {
  const ns = formValues(rawQuery, "n");
  const lasts = formValues(rawQuery, "last");
  if (ns === null || lasts === null) return { ok: false, message: "the query has an invalid percent-escape" };
  const rawN = ns[0] ?? "";
  const last = lasts[0] ?? "";
  let n: number | null = null;
  if (rawN !== "") {
    if (!/^[0-9]+$/.test(rawN)) return { ok: false, message: `invalid number of results requested: n must be a non-negative integer, not ${JSON.stringify(rawN)}` };
    // Any number of digits: a huge n is capped like any n above MAX_PAGE (no precision to lose below it).
    const digits = rawN.replace(/^0+(?=.)/, "");
    n = digits.length > String(MAX_PAGE).length ? MAX_PAGE : Math.min(MAX_PAGE, Number(digits));
  }
  return { ok: true, n, last: last === "" ? null : last };
}

/**
 * The page after `last` of `sorted` (entries strictly greater than `last`, which need not be in the list)
 * with at most n entries (null: MAX_PAGE; values above MAX_PAGE are capped), and the Link header value
 * when entries remain after the page: `<${path}?last=${encodeURIComponent(lastOfPage)}&n=${n}>; rel="next"`.
 * n = 0: an empty page and no Link. `sorted` must be in mergeSorted's order; `path` is the path the client
 * asked for, as it may send it again (it is written into the Link as is).
 */
export function paginate(
  sorted: readonly string[],
  request: { n: number | null; last: string | null },
  path: string,
): { items: string[]; link: string | null } {
  const size = request.n === null ? MAX_PAGE : Math.max(0, Math.min(MAX_PAGE, Math.floor(request.n)));
  if (size === 0) return { items: [], link: null };
  const start = request.last === null ? 0 : firstAfter(sorted, request.last);
  const items = sorted.slice(start, start + size);
  const more = start + size < sorted.length;
  const lastOfPage = items[items.length - 1];
  const link = more && lastOfPage !== undefined ? `<${path}?last=${encodeURIComponent(lastOfPage)}&n=${size}>; rel="next"` : null;
  return { items, link };
}

/** The index of the first entry strictly greater than `last` (binary search; `sorted` is ascending). */
function firstAfter(sorted: readonly string[], last: string): number {
  let low = 0;
  let high = sorted.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if (sorted[mid]! > last) high = mid;
    else low = mid + 1;
  }
  return low;
}

// ---------------------------------------------------------------- reading one member's list

/**
 * How a list is read. A catalog is read up to its bounds and kept as read (the merged catalog is the
 * gateway's own answer, bounded per member); a tag list is read whole or rejected.
 */
interface ListReading {
  /** Ask the first page with `n=MAX_PAGE`. */
  askPage: boolean;
  /** Over MAX_NAMES names or `maxBytes` in all: reject with ListTooLarge instead of keeping what was read. */
  whole: boolean;
  /** Bytes read over all pages (whole), or per page. */
  maxBytes: number;
}

const PARTIAL_CATALOG: ListReading = { askPage: true, whole: false, maxBytes: MAX_PAGE_BYTES };
const WHOLE_TAG_LIST: ListReading = { askPage: false, whole: true, maxBytes: MAX_TAG_LIST_BYTES };

/** null: the first page answered 404. */
async function fetchList(
  source: ListSource,
  path: string,
  field: "repositories" | "tags",
  keep: (item: string) => boolean,
  reading: ListReading = PARTIAL_CATALOG,
): Promise<string[] | null> {
  let read = 0;
  const get = async (target: string): Promise<Page> => {
    const page = await getJson(source, target, reading.maxBytes - (reading.whole ? read : 0), reading.whole);
    read += page.body.length;
    return page;
  };
  let current = reading.askPage ? `${path}?n=${MAX_PAGE}` : path;
  let page = await get(current);
  // distribution 3.x refuses an n above its configured maximum (catalog.maxentries, tags.maxtags) with
  // 400 PAGINATION_NUMBER_INVALID: ask once more without n, for its default page and a Link.
  if (page.status === 400 && reading.askPage) page = await get((current = path));
  if (page.status === 404) return null;
  const names = new Set<string>();
  const followed = new Set<string>([current]);
  for (let pages = 1; ; pages++) {
    if (page.status !== 200) throw new Error(`${describe(source, current)} answered ${page.status}`);
    for (const item of listOf(page, field, source, current)) {
      if (names.size >= MAX_NAMES) {
        if (reading.whole) throw new ListTooLarge(`${describe(source, current)} lists more than ${MAX_NAMES} ${field}`);
        break;
      }
      if (typeof item === "string" && keep(item)) names.add(item);
    }
    const next = nextLink(page.link, source.backend, path);
    // A Link already followed would repeat the walk forever: the member's list ends there.
    if (next === null || followed.has(next) || names.size >= MAX_NAMES) break;
    if (pages >= MAX_PAGES) {
      if (reading.whole) throw new ListTooLarge(`${describe(source, current)} pages its ${field} over more than ${MAX_PAGES} pages`);
      break;
    }
    followed.add((current = next));
    page = await get(current);
  }
  return [...names];
}

function listOf(page: Page, field: "repositories" | "tags", source: ListSource, path: string): unknown[] {
  const body = parseJson(page.body, source, path);
  const list = body !== null && typeof body === "object" ? (body as Record<string, unknown>)[field] : undefined;
  if (list !== null && !Array.isArray(list)) throw new Error(`${describe(source, path)} answered without a ${field} list`);
  return list ?? [];
}

function describe(source: ListSource, path: string): string {
  return `${source.backend.origin}${path.split("?")[0]}`;
}

function parseJson(body: Buffer, source: ListSource, path: string): unknown {
  try {
    return JSON.parse(body.toString("utf8"));
  } catch {
    throw new Error(`${describe(source, path)} answered with a body that is not JSON`);
  }
}

interface Page {
  status: number;
  body: Buffer;
  link: string | undefined;
}

/** Reads one page of at most `maxBytes` bytes; a longer one rejects (with ListTooLarge when `tooLarge`). */
function getJson(source: ListSource, path: string, maxBytes: number, tooLarge: boolean): Promise<Page> {
  const url = new URL(path, source.backend);
  const client = url.protocol === "https:" ? https : http;
  return new Promise<Page>((resolve, reject) => {
    const headers: Record<string, string> = { accept: "application/json" };
    if (source.authorization) headers.authorization = source.authorization;
    if (source.userAgent) headers["user-agent"] = source.userAgent;
    const request = client.get(url, { agent: source.agent, headers }, (response: IncomingMessage) => {
      const chunks: Buffer[] = [];
      let size = 0;
      response.on("data", (chunk: Buffer) => {
        size += chunk.length;
        if (size <= maxBytes) return void chunks.push(chunk);
        request.destroy(
          tooLarge
            ? new ListTooLarge(`${describe(source, path)} lists more than ${MAX_TAG_LIST_BYTES} bytes of tags`)
            : new Error(`${describe(source, path)} answered more than ${maxBytes} bytes`),
        );
      });
      response.on("error", reject);
      response.on("end", () => {
        const link = response.headers.link;
        resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks), link: Array.isArray(link) ? link.join(", ") : link });
      });
    });
    const timeoutMs = source.pageTimeoutMs ?? PAGE_TIMEOUT_MS;
    const timer = setTimeout(() => request.destroy(new Error(`${describe(source, path)} did not answer within ${timeoutMs / 1000} s`)), timeoutMs);
    timer.unref();
    request.on("close", () => clearTimeout(timer));
    request.on("error", reject);
  });
}

/**
 * The `rel="next"` target of a Link header value, as a path and query to request from the same member;
 * null when there is none or it leads anywhere but `expectedPath` on the member's own origin (a member
 * cannot send the gateway's credentials elsewhere). Relative and absolute forms are both accepted:
 * distribution writes `</v2/_catalog?last=b&n=2>; rel="next"`, others write the whole URL.
 */
export function nextLink(link: string | undefined, backend: URL, expectedPath: string): string | null {
  if (!link) return null;
  for (const match of link.matchAll(/<([^>]*)>([^<]*)/g)) {
    const rel = /;\s*rel\s*=\s*(?:"([^"]*)"|([^\s;,]+))/i.exec(match[2]!);
    const relations = (rel?.[1] ?? rel?.[2] ?? "").toLowerCase().split(/\s+/);
    if (!relations.includes("next")) continue;
    let target: URL;
    try {
      target = new URL(match[1]!.trim(), backend);
    } catch {
      return null;
    }
    if (target.origin !== backend.origin || target.username !== "" || target.password !== "" || target.pathname !== expectedPath) return null;
    return `${target.pathname}${target.search}`;
  }
  return null;
}
