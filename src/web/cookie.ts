// The session cookie. `__Host-` makes the browser refuse it unless it is Secure, host-only and for Path=/,
// so no other host or path can plant or shadow it; SameSite=Strict keeps it off cross-site requests, the
// first line against CSRF (the token in each form is the second).
export const SESSION_COOKIE = "__Host-registry-session";

export function sessionCookie(value: string, maxAgeSeconds: number): string {
  return `${SESSION_COOKIE}=${value}; Max-Age=${maxAgeSeconds}; Path=/; Secure; HttpOnly; SameSite=Strict`;
}

export function clearedSessionCookie(): string {
  return `${SESSION_COOKIE}=; Max-Age=0; Path=/; Secure; HttpOnly; SameSite=Strict`;
}

/** The session cookie's value from a Cookie header, or undefined. */
export function sessionCookieValue(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim() === SESSION_COOKIE) return part.slice(eq + 1).trim();
  }
  return undefined;
}
