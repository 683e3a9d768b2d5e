// The Authorization header, taken apart without ever throwing: whatever a client sends, the answer is a
// parsed credential or "malformed" (a 401), never an exception (a 500).

/** Longer than any token the gateway issues or password anyone types; more is an attack or a mistake. */
export const MAX_AUTHORIZATION_LENGTH = 8192;

export type Credentials =
  | { kind: "none" }
  | { kind: "malformed" }
  | { kind: "basic"; user: string; password: string }
  | { kind: "bearer"; token: string };

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
// RFC 6750 b64token
const TOKEN68 = /^[A-Za-z0-9\-._~+/]+=*$/;

export function parseAuthorization(header: string | undefined): Credentials {
  if (header === undefined || header === "") return { kind: "none" };
  if (header.length > MAX_AUTHORIZATION_LENGTH) return { kind: "malformed" };
  const value = header.trim();
  const space = value.indexOf(" ");
  if (space < 0) return { kind: "malformed" };
  const scheme = value.slice(0, space).toLowerCase();
  const rest = value.slice(space + 1).trim();
  if (scheme === "basic") return parseBasic(rest);
  if (scheme === "bearer") return TOKEN68.test(rest) ? { kind: "bearer", token: rest } : { kind: "malformed" };
  return { kind: "malformed" };
}

/** RFC 7617: base64 of `user:password`, the password being everything after the first colon. */
export function parseBasic(encoded: string): Credentials {
  if (!BASE64.test(encoded) || encoded.length % 4 === 1) return { kind: "malformed" };
  const decoded = Buffer.from(encoded, "base64").toString("utf8");
  // Invalid UTF-8 decodes to U+FFFD: such bytes never came from a password a user typed into a client.
  if (decoded.includes("\uFFFD")) return { kind: "malformed" };
  const colon = decoded.indexOf(":");
  if (colon <= 0) return { kind: "malformed" };
  return { kind: "basic", user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}
