// How every browser answer is written: pages with a strict Content-Security-Policy (the views load only this
// site's own scripts and styles, and no page can be framed), never cached; redirects after a form; and the
// form bodies and origin checks of POSTs.
import type { IncomingMessage, ServerResponse } from "node:http";
import { readBoundedBody } from "../proxy/bounded-body.js";
import { formMediaType } from "../proxy/framing.js";

export const CONTENT_SECURITY_POLICY =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/** A sign-in or delete form is a few hundred bytes. */
const MAX_FORM_BYTES = 8 * 1024;

function securityHeaders(): Record<string, string> {
  return {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
  };
}

/**
 * A body the answer leaves unread (a form refused unread, a POST that needed none) would otherwise be read
 * and discarded by Node to keep the connection, whatever its declared length: the connection closes instead.
 */
function closeIfBodyUnread(res: ServerResponse): Record<string, string> {
  return res.req.complete ? {} : { Connection: "close" };
}

export function sendPage(res: ServerResponse, status: number, html: string, headers: Record<string, string | string[]> = {}, headOnly = false): void {
  const body = Buffer.from(html, "utf8");
  res.writeHead(status, { ...securityHeaders(), ...headers, ...closeIfBodyUnread(res), "Content-Type": "text/html; charset=utf-8", "Content-Length": body.length });
  res.end(headOnly ? undefined : body);
}

/** 303: the browser follows with a GET, so reloading the page it lands on never repeats the POST. */
export function redirect(res: ServerResponse, location: string, headers: Record<string, string | string[]> = {}): void {
  res.writeHead(303, { ...securityHeaders(), ...headers, ...closeIfBodyUnread(res), Location: location, "Content-Length": 0 });
  res.end();
}

export function sendAsset(res: ServerResponse, body: Buffer, contentType: string, headOnly: boolean): void {
  res.writeHead(200, {
    "Content-Type": contentType,
    "Content-Length": body.length,
    "X-Content-Type-Options": "nosniff",
    // Hashed names: a new build has new URLs, so a year is safe.
    "Cache-Control": "public, max-age=31536000, immutable",
  });
  res.end(headOnly ? undefined : body);
}

/** The urlencoded form of a POST; null when it is not one, or too large. */
export async function readForm(req: IncomingMessage): Promise<URLSearchParams | null> {
  if (formMediaType(req.headers["content-type"]) !== "application/x-www-form-urlencoded") return null;
  const body = await readBoundedBody(req, MAX_FORM_BYTES);
  return body === null ? null : new URLSearchParams(body.toString("utf8"));
}

/**
 * A POST made by this site's own pages: browsers say where a request comes from (Sec-Fetch-Site, Origin);
 * when they do, it must be this origin. The session cookie is SameSite=Strict and each form carries a CSRF
 * token besides: this is the layer that also covers the sign-in form, which has no session yet.
 */
export function fromSameOrigin(req: IncomingMessage, externalOrigin: string): boolean {
  const site = req.headers["sec-fetch-site"];
  if (site !== undefined && site !== "same-origin") return false;
  const origin = req.headers.origin;
  return origin === undefined || origin === externalOrigin;
}
