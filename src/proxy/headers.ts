// Header rewriting at the edge, both directions. Pure functions over header lists so the rules are
// unit-tested without sockets.
import type { IncomingHttpHeaders } from "node:http";
import { API_VERSION, API_VERSION_HEADER } from "../registry/errors.js";

/** RFC 9110 §7.6.1 connection-specific headers, plus the proxy-* ones: never forwarded. */
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
]);

/** Answered by the gateway itself (its 100 Continue follows admission, proxy/continue.ts), so not the backend's. */
const EDGE_ONLY = new Set(["expect"]);

/** Set only by the gateway: a client's own values would let it forge its address or our URL. */
const FORWARDING = new Set(["forwarded", "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto", "x-forwarded-port", "x-real-ip"]);

export interface EdgeContext {
  /** Replaces the client's X-Request-Id: the pipeline's sane one (observe/request-id.ts). */
  requestId: string;
  /** `https://host[:port]` as the client addressed the gateway. */
  externalOrigin: string;
  /** `host[:port]` part of externalOrigin. */
  authority: string;
  clientIp: string;
  /**
   * Headers the gateway adds to the backend's response (RateLimit-*), flat [name, value, …]. They
   * replace any the backend sent under the same names. Passed here rather than with res.setHeader so the
   * response is built in one place, from one list, whatever Node does with setHeader + writeHead(array).
   */
  extraHeaders?: readonly string[];
  /**
   * The backend's Authorization: the gateway's own token for a token-auth backend, else none.
   * The client's header never reaches the backend (its password, our tokens) unless passClientAuthorization.
   */
  backendAuthorization?: string;
  /** backendAuth passthrough: a site without gateway auth in front of a backend that checks credentials itself. */
  passClientAuthorization?: boolean;
  /**
   * The Authorization for the registries the gateway runs (managed-auth.ts): sent to those instead of
   * anything above, and to no other backend.
   */
  managedAuthorization?: ManagedAuthorization;
}

/**
 * The Authorization for the managed registries among the backends a request may go to (made by
 * backends/managed-auth.ts). Defined with the headers it decides, so forwarding depends on no backend code.
 */
export interface ManagedAuthorization {
  /** Origins (http://127.0.0.1:PORT) of the running managed registries. */
  origins: ReadonlySet<string>;
  authorization: string;
}

function connectionTokens(value: string | string[] | undefined): Set<string> {
  const joined = Array.isArray(value) ? value.join(",") : (value ?? "");
  return new Set(joined.split(",").map((token) => token.trim().toLowerCase()).filter(Boolean));
}

/** The request headers `backend` sees. */
export function forwardRequestHeaders(incoming: IncomingHttpHeaders, edge: EdgeContext, backend: URL): IncomingHttpHeaders {
  const named = connectionTokens(incoming.connection);
  const out: IncomingHttpHeaders = {};
  for (const [name, value] of Object.entries(incoming)) {
    if (HOP_BY_HOP.has(name) || FORWARDING.has(name) || EDGE_ONLY.has(name) || named.has(name)) continue;
    if (name === "authorization" && !edge.passClientAuthorization) continue;
    if (name === "x-request-id") continue;
    out[name] = value;
  }
  out["x-request-id"] = edge.requestId;
  const managed = edge.managedAuthorization?.origins.has(backend.origin) ? edge.managedAuthorization : undefined;
  if (managed) out["authorization"] = managed.authorization;
  else if (edge.backendAuthorization) out["authorization"] = edge.backendAuthorization;
  out["x-forwarded-proto"] = "https";
  out["x-forwarded-host"] = edge.authority;
  out["x-forwarded-for"] = edge.clientIp;
  out["forwarded"] = `for=${forwardedNode(edge.clientIp)};host="${edge.authority}";proto=https`;
  return out;
}

/** RFC 7239 §6: IPv6 node names are bracketed and quoted. */
function forwardedNode(ip: string): string {
  return ip.includes(":") ? `"[${ip}]"` : ip;
}

const LOCATION_REWRITTEN_STATUSES = (status: number) => status === 201 || status === 202 || (status >= 300 && status < 400);

/**
 * The response headers the client sees, from the backend's raw header list (duplicates such as
 * several WWW-Authenticate challenges stay separate). Returns a flat [name, value, …] list for
 * `res.writeHead`.
 */
export function clientResponseHeaders(rawHeaders: readonly string[], status: number, backend: URL, edge: EdgeContext): string[] {
  const named = new Set<string>();
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (rawHeaders[i]!.toLowerCase() === "connection") connectionTokens(rawHeaders[i + 1]).forEach((t) => named.add(t));
  }
  // Dropped from the backend's list like the Connection-named ones: ours replace them.
  const extra = edge.extraHeaders ?? [];
  for (let i = 0; i < extra.length; i += 2) named.add(extra[i]!.toLowerCase());
  const out: string[] = [];
  let hasApiVersion = false;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    let value = rawHeaders[i + 1]!;
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower) || named.has(lower)) continue;
    if (lower === "location" && LOCATION_REWRITTEN_STATUSES(status)) value = rewriteLocation(value, backend, edge);
    if (lower === API_VERSION_HEADER.toLowerCase()) hasApiVersion = true;
    out.push(name, value);
  }
  if (!hasApiVersion) out.push(API_VERSION_HEADER, API_VERSION);
  out.push(...extra);
  return out;
}

/**
 * Points a Location that names the backend (or names us with the wrong scheme, from a backend that
 * ignored X-Forwarded-Proto) at the external URL. Only the origin changes: path and query, including
 * the upload `_state` token, are kept byte for byte. Locations elsewhere (storage redirects) and
 * relative ones are left alone.
 */
export function rewriteLocation(location: string, backend: URL, edge: EdgeContext): string {
  const candidates = [backend.origin, `http://${edge.authority}`];
  for (const origin of candidates) {
    if (location.length >= origin.length && location.slice(0, origin.length).toLowerCase() === origin.toLowerCase()) {
      const rest = location.slice(origin.length);
      if (rest === "" || rest.startsWith("/") || rest.startsWith("?")) return edge.externalOrigin + rest;
    }
  }
  return location;
}
