// Message framing at the edge: what Node's parser lets through but a backend could read as
// something else. Node already refuses Content-Length with Transfer-Encoding, duplicate Content-Length,
// obfuscated Transfer-Encoding and bare CR/LF; this refuses the rest before any stage reads the request:
// other HTTP versions, repeated framing or routing headers, codings other than chunked, and bodies on
// methods whose bodies Node's client would forward unframed (a GET's raw body is a second request to the
// backend).
import type { IncomingMessage } from "node:http";

export type Framing =
  /** `hasBody`: the client announced a body (chunked, or a non-zero Content-Length). */
  | { ok: true; hasBody: boolean }
  | { ok: false; message: string };

/** Headers that must appear at most once: two values are two readings of one request. */
const SINGLE = new Set(["host", "content-length", "transfer-encoding", "content-type"]);

/** Node's http client does not chunk these methods' bodies (useChunkedEncodingByDefault is off). */
const BODILESS = new Set(["GET", "HEAD", "DELETE", "OPTIONS", "TRACE", "CONNECT"]);

export function checkFraming(req: IncomingMessage): Framing {
  if (req.httpVersion !== "1.1" && req.httpVersion !== "1.0") {
    return { ok: false, message: `HTTP/${req.httpVersion} is not spoken here: use HTTP/1.1` };
  }
  const seen = new Set<string>();
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (!SINGLE.has(name)) continue;
    if (seen.has(name)) return { ok: false, message: `the ${raw[i]} header appears more than once` };
    seen.add(name);
  }
  const transferEncoding = req.headers["transfer-encoding"];
  if (transferEncoding !== undefined && transferEncoding.trim().toLowerCase() !== "chunked") {
    return { ok: false, message: "the only transfer coding accepted is chunked" };
  }
  const contentLength = req.headers["content-length"];
  const hasBody = transferEncoding !== undefined || (contentLength !== undefined && Number(contentLength) > 0);
  if (hasBody && BODILESS.has(req.method ?? "")) {
    return { ok: false, message: `a ${req.method} request carries no body` };
  }
  return { ok: true, hasBody };
}

/**
 * The media type of a Content-Type a backend could parse as a form (Go's Request.FormValue reads
 * urlencoded and multipart bodies of POST, PUT and PATCH), or null. Lenient on purpose: anything that
 * mentions "form" counts, so no spelling Go accepts slips past as "not a form".
 */
export function formMediaType(contentType: string | undefined): string | null {
  if (contentType === undefined || !/form|multipart/i.test(contentType)) return null;
  return contentType.split(";")[0]!.trim().toLowerCase();
}
