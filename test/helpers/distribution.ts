// An independent model of how CNCF distribution 2.8 (Debian's docker-registry) reads a request: Go's
// url.ParseRequestURI of the raw target, gorilla/mux's path cleaning and strict-slash redirects, the v2
// route regexes of registry/api/v2/descriptors.go (with reference.NameRegexp, optional `domain[:port]/`
// prefix included), the method table of each handler, and the accesses of registry/handlers/app.go
// (appendAccessRecords + `from`). Written from distribution's and Go's sources, not from src/: the
// differential tests compare the gateway against it.
//
// Strings here are byte strings (one char per byte, latin1), because Go routes on bytes.

// ---------------------------------------------------------------- Go: net/url

export interface GoUrl {
  /** URL.Path: percent-decoded. */
  path: string;
  /** URL.RawQuery: as sent. */
  rawQuery: string;
}

const isHex = (c: string | undefined) => c !== undefined && /^[0-9A-Fa-f]$/.test(c);

/**
 * url.ParseRequestURI (what net/http does with the request line's target); null when Go refuses it (the
 * server then answers 400 itself and no handler runs). The target is taken to be the request line's bytes.
 */
export function goParseRequestURI(target: string): GoUrl | null {
  // stringContainsCTLByte
  if (/[\x00-\x1f\x7f]/.test(target)) return null;
  if (target === "") return null;
  if (target === "*") return { path: "*", rawQuery: "" };
  // getScheme: a leading letter followed by [a-zA-Z0-9+.-]* and ':' is a scheme.
  const scheme = /^([a-zA-Z][a-zA-Z0-9+.-]*):/.exec(target);
  if (scheme) return null; // absolute-form: not modelled (the gateway refuses it; tests assert that separately)
  if (target.startsWith(":")) return null; // "missing protocol scheme"
  let rest = target;
  let rawQuery = "";
  if (rest.endsWith("?") && rest.split("?").length === 2) rest = rest.slice(0, -1);
  else {
    const q = rest.indexOf("?");
    if (q >= 0) {
      rawQuery = rest.slice(q + 1);
      rest = rest.slice(0, q);
    }
  }
  if (!rest.startsWith("/")) return null; // "invalid URI for request"
  // No fragment handling: ParseRequestURI keeps '#' in the path.
  const path = goUnescapePath(rest);
  return path === null ? null : { path, rawQuery };
}

/** url.unescape(s, encodePath): %XX → byte, anything else as is, a bad escape is an error. */
export function goUnescapePath(s: string): string | null {
  let out = "";
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c === "%") {
      if (!isHex(s[i + 1]) || !isHex(s[i + 2])) return null;
      out += String.fromCharCode(parseInt(s.slice(i + 1, i + 3), 16));
      i += 2;
    } else out += c;
  }
  return out;
}

/** url.QueryUnescape: like the path, but '+' is a space. */
function goQueryUnescape(s: string): string | null {
  return goUnescapePath(s.replace(/\+/g, " "));
}

/**
 * url.ParseQuery (Go ≥ 1.17, which Debian's registry is built with: go1.19): pairs split on '&' only; a
 * pair containing ';' is an error and skipped; a pair with a bad escape is skipped. Keys and values are
 * unescaped. Returns key → values in order.
 */
export function goParseQuery(query: string): Map<string, string[]> {
  const values = new Map<string, string[]>();
  for (const pair of query.split("&")) {
    if (pair === "" || pair.includes(";")) continue;
    const eq = pair.indexOf("=");
    const key = goQueryUnescape(eq < 0 ? pair : pair.slice(0, eq));
    const value = goQueryUnescape(eq < 0 ? "" : pair.slice(eq + 1));
    if (key === null || value === null) continue;
    const list = values.get(key) ?? [];
    list.push(value);
    values.set(key, list);
  }
  return values;
}

/**
 * Request.FormValue's view (r.Form): for POST, PUT and PATCH with an urlencoded Content-Type the body's
 * values come first, then the query's. mime.ParseMediaType lower-cases the type and keeps it even when a
 * parameter is malformed.
 */
export function goForm(method: string, rawQuery: string, contentType: string | undefined, body: string | undefined): Map<string, string[]> {
  const form = new Map<string, string[]>();
  const add = (from: Map<string, string[]>) => {
    for (const [key, list] of from) form.set(key, [...(form.get(key) ?? []), ...list]);
  };
  if (["POST", "PUT", "PATCH"].includes(method) && body !== undefined && contentType !== undefined) {
    const mediaType = contentType.split(";")[0]!.trim().toLowerCase();
    if (mediaType === "application/x-www-form-urlencoded") add(goParseQuery(body));
    // FormValue → ParseMultipartForm: the non-file fields of a multipart body join r.Form too.
    const boundary = /;\s*boundary="?([^";]+)"?/i.exec(contentType)?.[1];
    if (mediaType === "multipart/form-data" && boundary) add(multipartFields(body, boundary));
  }
  add(goParseQuery(rawQuery));
  return form;
}

/** The non-file fields of a multipart/form-data body (enough of mime/multipart for the tests' bodies). */
function multipartFields(body: string, boundary: string): Map<string, string[]> {
  const fields = new Map<string, string[]>();
  for (const part of body.split(`--${boundary}`).slice(1)) {
    if (part.startsWith("--")) break;
    const end = part.indexOf("\r\n\r\n");
    if (end < 0) continue;
    const head = part.slice(0, end);
    const name = /content-disposition:\s*form-data;[^\r\n]*\bname="([^"]*)"/i.exec(head)?.[1];
    if (name === undefined || /filename=/i.test(head)) continue;
    fields.set(name, [...(fields.get(name) ?? []), part.slice(end + 4).replace(/\r\n$/, "")]);
  }
  return fields;
}

// ---------------------------------------------------------------- Go: path.Clean, gorilla/mux cleanPath

/** Go's path.Clean. */
export function goPathClean(p: string): string {
  if (p === "") return ".";
  const rooted = p.startsWith("/");
  const out: string[] = [];
  for (const part of p.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") {
      if (out.length > 0 && out[out.length - 1] !== "..") out.pop();
      else if (!rooted) out.push("..");
      continue;
    }
    out.push(part);
  }
  const joined = out.join("/");
  if (rooted) return `/${joined}`;
  return joined === "" ? "." : joined;
}

/** gorilla/mux cleanPath: path.Clean, keeping a trailing slash. */
export function muxCleanPath(p: string): string {
  if (p === "") return "/";
  if (!p.startsWith("/")) p = `/${p}`;
  let np = goPathClean(p);
  if (p.endsWith("/") && np !== "/") np += "/";
  return np;
}

// ---------------------------------------------------------------- distribution: route regexes

// reference/regexp.go (2.8). nameComponent's separator `(?:[._]|__|[-]*)` may be empty; `-+` instead
// accepts the same language (an empty separator just joins two alphanumeric runs) without the
// exponential backtracking JavaScript would need for `(?:[-]*[a-z0-9]+)*`. Every route below ends with a
// fixed word and a slash-free last segment, so the captured name is the same in Go and here.
const ALNUM = "[a-z0-9]+";
const NAME_COMPONENT = `${ALNUM}(?:(?:[._]|__|-+)${ALNUM})*`;
const DOMAIN_COMPONENT = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
const DOMAIN = `${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*(?::[0-9]+)?`;
export const NAME_REGEXP = `(?:${DOMAIN}/)?${NAME_COMPONENT}(?:/${NAME_COMPONENT})*`;
export const TAG_REGEXP = "[\\w][\\w.-]{0,127}";
/** opencontainers/go-digest DigestRegexp, which the v2 routes use. */
export const GO_DIGEST_REGEXP = "[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+";
const UUID_REGEXP = "[a-zA-Z0-9-_.=]+";

export type DistributionRouteName = "base" | "manifest" | "tags" | "blob" | "blob-upload" | "blob-upload-chunk" | "catalog";

interface RouteDef {
  name: DistributionRouteName;
  /** The descriptor's template with the trailing slash (if any) removed; strict slash adds `[/]?`. */
  pattern: RegExp;
  /** Whether the template ends with '/': the strict-slash redirect adds or removes one to agree. */
  endSlash: boolean;
  /** Handler methods (handlers.MethodHandler), registry not read-only, delete enabled. null: any method. */
  methods: readonly string[] | null;
}

const route = (name: DistributionRouteName, template: string, methods: readonly string[] | null): RouteDef => {
  const endSlash = template.endsWith("/");
  const body = endSlash ? template.slice(0, -1) : template;
  return { name, pattern: new RegExp(`^${body}[/]?$`), endSlash, methods };
};

const UPLOAD_METHODS = ["GET", "HEAD", "POST", "PATCH", "PUT", "DELETE"];

/** registry/api/v2/descriptors.go, in order (routes.go registers them with StrictSlash(true)). */
const ROUTES: readonly RouteDef[] = [
  // apiBase is a plain HandlerFunc: every method is answered 200.
  route("base", "/v2/", null),
  route("manifest", `/v2/(${NAME_REGEXP})/manifests/(${TAG_REGEXP}|${GO_DIGEST_REGEXP})`, ["GET", "HEAD", "PUT", "DELETE"]),
  route("tags", `/v2/(${NAME_REGEXP})/tags/list`, ["GET"]),
  route("blob", `/v2/(${NAME_REGEXP})/blobs/(${GO_DIGEST_REGEXP})`, ["GET", "HEAD", "DELETE"]),
  route("blob-upload", `/v2/(${NAME_REGEXP})/blobs/uploads/`, UPLOAD_METHODS),
  route("blob-upload-chunk", `/v2/(${NAME_REGEXP})/blobs/uploads/(${UUID_REGEXP})`, UPLOAD_METHODS),
  route("catalog", "/v2/_catalog", ["GET"]),
];

export interface DistributionRoute {
  name: DistributionRouteName;
  repository?: string;
  /** Manifest reference, blob digest or upload uuid. */
  reference?: string;
}

export type DistributionRouting =
  /** Go refuses the target itself (bad escape, control byte…): 400, no handler. */
  | { outcome: "badRequest" }
  /** gorilla/mux redirects (unclean path, or strict slash): 301, nothing served. */
  | { outcome: "redirect" }
  | { outcome: "notFound" }
  | { outcome: "routed"; route: DistributionRoute; path: string; rawQuery: string };

/** What distribution's router does with a raw request target. */
export function distributionRoute(target: string): DistributionRouting {
  const url = goParseRequestURI(target);
  if (!url) return { outcome: "badRequest" };
  if (muxCleanPath(url.path) !== url.path) return { outcome: "redirect" };
  for (const def of ROUTES) {
    const match = def.pattern.exec(url.path);
    if (!match) continue;
    if (url.path.endsWith("/") !== def.endSlash) return { outcome: "redirect" };
    const found: DistributionRoute = { name: def.name };
    if (match[1] !== undefined) found.repository = match[1];
    if (match[2] !== undefined) found.reference = match[2];
    return { outcome: "routed", route: found, path: url.path, rawQuery: url.rawQuery };
  }
  return { outcome: "notFound" };
}

/** True when the route's handler has this method (else 405; OPTIONS gets 200 with Allow and no body). */
export function distributionHandles(name: DistributionRouteName, method: string): boolean {
  const def = ROUTES.find((r) => r.name === name)!;
  return def.methods === null || def.methods.includes(method);
}

export interface ModelAccess {
  type: "repository" | "registry";
  name: string;
  action: string;
}

/** registry/handlers/app.go appendAccessRecords. */
export function methodAccesses(method: string, repository: string): ModelAccess[] {
  const access = (action: string): ModelAccess => ({ type: "repository", name: repository, action });
  switch (method) {
    case "GET":
    case "HEAD":
      return [access("pull")];
    case "POST":
    case "PUT":
    case "PATCH":
      return [access("pull"), access("push")];
    case "DELETE":
      return [access("delete")];
    default:
      return [];
  }
}

/**
 * The rights a request uses when distribution's handler actually runs it: the method's accesses on the
 * routed repository, `registry:catalog:*` for the catalog, and pull on the `from` an upload start reads to
 * mount a blob (StartBlobUpload reads `from` when `mount` is set, with FormValue: body, then query).
 * `form`: goForm() of the request. Empty for the base route and for methods the handler does not have.
 */
export function distributionAccesses(found: DistributionRoute, method: string, form: Map<string, string[]>): ModelAccess[] {
  if (!distributionHandles(found.name, method)) return [];
  if (found.name === "base") return [];
  if (found.name === "catalog") return [{ type: "registry", name: "catalog", action: "*" }];
  const accesses = methodAccesses(method, found.repository!);
  // StartBlobUpload: `if mountDigest := r.FormValue("mount"); mountDigest != "" && fromRepo != ""` — the
  // first value of each, body before query.
  const startsUpload = method === "POST" && (found.name === "blob-upload" || found.name === "blob-upload-chunk");
  const mount = form.get("mount")?.[0] ?? "";
  const from = form.get("from")?.[0] ?? "";
  if (startsUpload && mount !== "" && from !== "") accesses.push({ type: "repository", name: from, action: "pull" });
  return accesses;
}
