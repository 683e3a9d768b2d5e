// The request target, read once. The path the gateway authorizes must be the path the backend
// routes, byte for byte: http-proxy would rebuild it through WHATWG URL (`\` → `/`, dot segments resolved,
// fragment dropped) and distribution percent-decodes it (gorilla/mux on URL.Path) — three readings of one
// request, and an access-control bypass between each two. Registry names, tags, digests and upload ids
// never need escaping, so a target that is not already in its one canonical spelling is refused, and the
// accepted one is forwarded exactly as received.

export type TargetCheck =
  /** `rawQuery` without the `?`; "" when there is none. */
  | { ok: true; path: string; rawQuery: string }
  /** nameInvalid: the path; badRequest: the form of the target or its query. */
  | { ok: false; kind: "nameInvalid" | "badRequest"; reason: string };

/**
 * Path bytes a registry route can contain: name components `[a-z0-9._-]` and `/`, tags `[A-Za-z0-9_.-]`,
 * digests `algorithm:hex`, upload ids `[A-Za-z0-9-_.=]`. Everything else (`%`, `\`, `#`, `;`, `@`, spaces,
 * controls, non-ASCII) marks a spelling the backend might read differently.
 */
const PATH = /^\/[A-Za-z0-9._\-/:=]*$/;
/** Printable ASCII except `#` (a fragment the backend would read differently) and space. */
const QUERY = /^[\x21\x22\x24-\x7e]*$/;
const BAD_ESCAPE = /%(?![0-9A-Fa-f]{2})/;

export function checkTarget(url: string): TargetCheck {
  // Origin form only: absolute-form would make the gateway an open forward proxy, `*` is for OPTIONS.
  if (!url.startsWith("/")) return { ok: false, kind: "badRequest", reason: "the request target must be an absolute path" };
  const q = url.indexOf("?");
  const path = q < 0 ? url : url.slice(0, q);
  const rawQuery = q < 0 ? "" : url.slice(q + 1);
  if (!PATH.test(path)) {
    return { ok: false, kind: "nameInvalid", reason: "the path must be written plainly: no percent-escapes, backslashes, fragments or characters outside registry names" };
  }
  const segments = path.split("/");
  // segments[0] is the empty string before the leading "/"; a trailing "/" leaves one empty last segment.
  for (let i = 1; i < segments.length; i++) {
    const segment = segments[i]!;
    if (segment === "." || segment === "..") return { ok: false, kind: "nameInvalid", reason: "paths with . or .. segments are not accepted" };
    if (segment === "" && i !== segments.length - 1) return { ok: false, kind: "nameInvalid", reason: "paths with empty segments (//) are not accepted" };
  }
  if (!QUERY.test(rawQuery) || BAD_ESCAPE.test(rawQuery)) {
    return { ok: false, kind: "badRequest", reason: "the query must be printable ASCII with valid percent-escapes and no fragment" };
  }
  return { ok: true, path, rawQuery };
}

/**
 * Every value of `key` in a query string or urlencoded form, the way Go's url.ParseQuery reads it — and
 * also splitting on `;`, as Go did before 1.17, so the result covers what either reading sees. Keys and
 * values are unescaped (`+` is a space). null when an escape is invalid (Go would skip the pair; the
 * gateway refuses instead of guessing).
 */
export function formValues(raw: string, key: string): string[] | null {
  const values: string[] = [];
  for (const pair of raw.split(/[&;]/)) {
    if (pair === "") continue;
    const eq = pair.indexOf("=");
    const name = unescapeForm(eq < 0 ? pair : pair.slice(0, eq));
    const value = unescapeForm(eq < 0 ? "" : pair.slice(eq + 1));
    if (name === null || value === null) return null;
    if (name === key) values.push(value);
  }
  return values;
}

function unescapeForm(text: string): string | null {
  if (BAD_ESCAPE.test(text)) return null;
  try {
    // Go keeps invalid UTF-8 as bytes; a name with such bytes fails the name grammar either way.
    return decodeURIComponent(text.replace(/\+/g, " "));
  } catch {
    return null;
  }
}
