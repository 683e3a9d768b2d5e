// Browser sessions: a signed cookie naming the user, nothing kept on the server. It carries an HMAC of the
// user's password fingerprint, so a password change or the user's removal (once the htpasswd file is
// reloaded) ends every session made before it, as it ends the user's tokens; the HMAC keeps even that
// derived value of the stored hash out of the cookie. The audience is the site: a cookie made for one site
// is no session on another, whatever names they share.
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { SignJWT, jwtVerify } from "jose";

const ALGORITHM = "HS256";
/** The JWT is small; a bigger cookie is not ours and is not parsed. */
const MAX_TOKEN_LENGTH = 2048;

export interface Session {
  user: string;
  /** Random per sign-in: what the CSRF token is derived from. */
  id: string;
  /** Milliseconds since the epoch. */
  expiresAt: number;
}

/** The user's current password fingerprint (htpasswd.ts), undefined once the user is gone. */
export type PasswordFingerprint = (user: string) => string | undefined;

export class SessionSigner {
  constructor(
    private readonly key: Uint8Array,
    /** The site's name: the session's audience. */
    private readonly site: string,
    readonly lifetimeMs: number,
    private readonly fingerprintOf: PasswordFingerprint,
  ) {}

  /**
   * A session for a user whose password was just checked against `checkedFingerprint` (the fingerprint as
   * it was before the check ran); null when the user is gone or the password changed meanwhile — the
   * session would otherwise outlive a password change made while the check ran.
   */
  async issue(user: string, checkedFingerprint: string | undefined, now = Date.now()): Promise<{ token: string; session: Session } | null> {
    const current = this.fingerprintOf(user);
    if (current === undefined || checkedFingerprint === undefined || !sameText(current, checkedFingerprint)) return null;
    const fingerprint = this.#boundFingerprint(user);
    if (fingerprint === null) return null;
    // JWT times are whole seconds: the session says what the cookie will say.
    const session: Session = { user, id: randomBytes(16).toString("base64url"), expiresAt: Math.floor((now + this.lifetimeMs) / 1000) * 1000 };
    const token = await new SignJWT({ sid: session.id, pfp: fingerprint })
      .setProtectedHeader({ alg: ALGORITHM, typ: "JWT" })
      .setSubject(user)
      .setAudience(this.site)
      .setIssuedAt(Math.floor(now / 1000))
      .setExpirationTime(Math.floor(session.expiresAt / 1000))
      .sign(this.key);
    return { token, session };
  }

  /** The session a cookie value names, or null: forged, expired, another site's, or its password changed. */
  async verify(token: string, now = Date.now()): Promise<Session | null> {
    if (token.length > MAX_TOKEN_LENGTH) return null;
    let payload;
    try {
      ({ payload } = await jwtVerify(token, this.key, { algorithms: [ALGORITHM], audience: this.site, currentDate: new Date(now), requiredClaims: ["exp", "sub"] }));
    } catch {
      return null;
    }
    const { sub, sid, pfp, exp } = payload;
    if (typeof sub !== "string" || typeof sid !== "string" || typeof pfp !== "string" || typeof exp !== "number") return null;
    const current = this.#boundFingerprint(sub);
    if (current === null || !sameText(current, pfp)) return null;
    return { user: sub, id: sid, expiresAt: exp * 1000 };
  }

  /** The CSRF token of a session: derived, so nothing is stored, and useless for any other session. */
  csrfToken(session: Session): string {
    return createHmac("sha256", this.key).update("csrf\0").update(this.site).update("\0").update(session.id).digest("base64url");
  }

  csrfMatches(session: Session, given: string | undefined): boolean {
    return given !== undefined && sameText(this.csrfToken(session), given);
  }

  #boundFingerprint(user: string): string | null {
    const fingerprint = this.fingerprintOf(user);
    if (fingerprint === undefined) return null;
    return createHmac("sha256", this.key).update("password\0").update(this.site).update("\0").update(user).update("\0").update(fingerprint).digest("base64url");
  }
}

function sameText(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}
