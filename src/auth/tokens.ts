// Issuing and verifying the JWTs of Docker token auth, with jose.
//
// What a stock distribution 2.8 backend demands, so the same tokens serve both the gateway
// and such a backend: header `kid` = libtrust key ID of a key in its rootcertbundle; `aud` one string;
// `exp`/`nbf`/`iat` integers; ES256 signatures raw r‖s (jose's form); 60 s clock leeway.
//
// Refresh tokens (for `offline_token` / `access_type=offline`) are JWTs too, told apart by header `typ`
// and by an `aud` no backend or site uses, and bound to the user's current password hash. Access tokens
// for a named user carry that fingerprint too (claim `fp`): a password change or the user's removal ends
// the access tokens issued before it, not only the refresh tokens.
//
// Verification takes only tokens whose header names our key (`kid`): a token without one, or for another
// key, is refused before its signature is even looked at.
//
// Every token names the site that issued it (private claim `site`), and a site takes only its own. All sites
// sign with one key and `iss` must stay what token-auth backends are configured with, so `aud` (the service)
// would be the only thing keeping one site's tokens off another: the claim still holds where two services
// meet by accident (another gateway sharing the key, a service moved to another site by a reload).
// Distribution ignores claims it does not know, so backend tokens carry it too.
import { createHash, randomBytes } from "node:crypto";
import { errors, jwtVerify, SignJWT, type JWTHeaderParameters, type JWTPayload } from "jose";
import type { Access } from "../registry/routes.js";
import type { AccessClaim } from "./access.js";
import type { SigningKey } from "./signing-key.js";

export const CLOCK_LEEWAY_SECONDS = 60;
const ACCESS_TYPE = "JWT";
const REFRESH_TYPE = "refresh+jwt";
/** The private claim naming the site a token was issued by. */
export const SITE_CLAIM = "site";

export interface IssuedToken {
  token: string;
  /** Seconds. */
  expiresIn: number;
  /** RFC 3339. */
  issuedAt: string;
  /** Epoch ms. */
  expiresAt: number;
}

/** Issues the tokens of one site: each names it in its `site` claim. */
export class TokenIssuer {
  constructor(
    readonly key: SigningKey,
    readonly issuer: string,
    readonly site: string,
  ) {}

  /**
   * `fingerprint`: HtpasswdUsers.fingerprint(subject) when the user logged in, for tokens the gateway itself
   * checks later (its /token); tokens for a backend (backend-token.ts) go without.
   */
  issue(subject: string, audience: string, access: readonly AccessClaim[], lifetimeMs: number, fingerprint?: string): Promise<IssuedToken> {
    return this.sign(fingerprint === undefined ? { access } : { access, fp: fingerprint }, ACCESS_TYPE, subject, audience, lifetimeMs);
  }

  /** `fingerprint` is HtpasswdUsers.fingerprint(subject) at the time of login. */
  issueRefresh(subject: string, service: string, fingerprint: string, lifetimeMs: number): Promise<IssuedToken> {
    return this.sign({ fp: fingerprint }, REFRESH_TYPE, subject, refreshAudience(service), lifetimeMs);
  }

  private async sign(claims: JWTPayload, typ: string, subject: string, audience: string, lifetimeMs: number): Promise<IssuedToken> {
    const now = Math.floor(Date.now() / 1000);
    const lifetime = Math.max(1, Math.floor(lifetimeMs / 1000));
    const token = await new SignJWT({ ...claims, [SITE_CLAIM]: this.site })
      .setProtectedHeader({ alg: this.key.algorithm, typ, kid: this.key.keyId })
      .setIssuer(this.issuer)
      .setSubject(subject)
      .setAudience(audience)
      .setIssuedAt(now)
      .setNotBefore(now)
      .setExpirationTime(now + lifetime)
      .setJti(randomBytes(16).toString("base64url"))
      .sign(this.key.privateKey);
    return { token, expiresIn: lifetime, issuedAt: new Date(now * 1000).toISOString(), expiresAt: (now + lifetime) * 1000 };
  }
}

function refreshAudience(service: string): string {
  return `refresh:${service}`;
}

// ---- verification ----------------------------------------------------------------------------------------

/** The resources and actions a token grants, as `type:name:action` strings (`*` covers every action). */
export class GrantedAccess {
  private readonly entries = new Set<string>();

  constructor(claims: readonly AccessClaim[]) {
    for (const claim of claims) for (const action of claim.actions) this.entries.add(`${claim.type}:${claim.name}:${action}`);
  }

  covers(access: Access): boolean {
    const resource = `${access.type}:${access.name}:`;
    return this.entries.has(resource + access.action) || this.entries.has(`${resource}*`);
  }
}

export interface VerifiedToken {
  subject: string;
  granted: GrantedAccess;
  /** The subject's password fingerprint when the token was issued (claim `fp`); absent if the token has none. */
  fingerprint?: string;
  /** Epoch ms. */
  expiresAt: number;
}

export type TokenProblem = "invalid_token" | "expired_token";

export type Verification = { ok: true; token: VerifiedToken } | { ok: false; problem: TokenProblem };

const CACHE_SIZE = 2048;

/**
 * Verifies the access tokens of one site: signature with our key only, our algorithm only (so `alg: none`
 * and HS256-with-the-public-key tricks fail), `typ`, `iss`, `aud`, `site`, `exp`/`nbf` with leeway, and the
 * shape of `access`. A client sends the same token on every request of a push or pull, so verified tokens are
 * remembered (bounded, until they expire) and the signature is checked once per token, not per request.
 */
export class TokenVerifier {
  private readonly cache = new Map<string, VerifiedToken>();
  /** jose's key-resolver form: the header must name our key; anything else fails before the signature check. */
  private readonly ourKey: (header: JWTHeaderParameters) => SigningKey["publicKey"];

  constructor(
    private readonly key: SigningKey,
    private readonly issuer: string,
    private readonly audience: string,
    private readonly site: string,
  ) {
    this.ourKey = (header) => {
      if (header.kid !== key.keyId) throw new errors.JWKSNoMatchingKey(header.kid === undefined ? "the token names no key (kid)" : "the token names another key (kid)");
      return key.publicKey;
    };
  }

  async verify(token: string): Promise<Verification> {
    const cacheKey = createHash("sha256").update(token).digest("base64");
    const cached = this.cache.get(cacheKey);
    if (cached) {
      if (cached.expiresAt + CLOCK_LEEWAY_SECONDS * 1000 > Date.now()) return { ok: true, token: cached };
      this.cache.delete(cacheKey);
      return { ok: false, problem: "expired_token" };
    }
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, this.ourKey, {
        algorithms: [this.key.algorithm],
        typ: ACCESS_TYPE,
        issuer: this.issuer,
        audience: this.audience,
        clockTolerance: CLOCK_LEEWAY_SECONDS,
        requiredClaims: ["exp", "nbf", "iat", "sub"],
      }));
    } catch (err) {
      return { ok: false, problem: err instanceof errors.JWTExpired ? "expired_token" : "invalid_token" };
    }
    // Tokens issued before the claim existed are refused too: they expire within tokens.lifetime anyway.
    if (payload[SITE_CLAIM] !== this.site) return { ok: false, problem: "invalid_token" };
    const claims = accessClaims(payload.access);
    if (!claims || typeof payload.aud !== "string") return { ok: false, problem: "invalid_token" };
    if (payload.fp !== undefined && typeof payload.fp !== "string") return { ok: false, problem: "invalid_token" };
    const verified: VerifiedToken = { subject: payload.sub ?? "", granted: new GrantedAccess(claims), expiresAt: payload.exp! * 1000 };
    if (payload.fp !== undefined) verified.fingerprint = payload.fp;
    if (this.cache.size >= CACHE_SIZE) {
      const oldest = this.cache.keys().next().value;
      if (oldest !== undefined) this.cache.delete(oldest);
    }
    this.cache.set(cacheKey, verified);
    return { ok: true, token: verified };
  }

  /** A refresh token for this audience's service: the user it was issued to and its password fingerprint. */
  async verifyRefresh(token: string): Promise<{ subject: string; fingerprint: string } | null> {
    try {
      const { payload } = await jwtVerify(token, this.ourKey, {
        algorithms: [this.key.algorithm],
        typ: REFRESH_TYPE,
        issuer: this.issuer,
        audience: refreshAudience(this.audience),
        clockTolerance: CLOCK_LEEWAY_SECONDS,
        requiredClaims: ["exp", "sub"],
      });
      return typeof payload.sub === "string" && payload.sub !== "" && typeof payload.fp === "string" && payload[SITE_CLAIM] === this.site
        ? { subject: payload.sub, fingerprint: payload.fp }
        : null;
    } catch {
      return null;
    }
  }
}

/** The `access` claim if it has the expected shape; absent means no access; anything else is invalid. */
function accessClaims(value: unknown): AccessClaim[] | null {
  if (value === undefined) return [];
  if (!Array.isArray(value)) return null;
  const claims: AccessClaim[] = [];
  for (const item of value) {
    if (typeof item !== "object" || item === null) return null;
    const { type, name, actions } = item as Record<string, unknown>;
    if (typeof type !== "string" || typeof name !== "string" || !Array.isArray(actions)) return null;
    if (!actions.every((action) => typeof action === "string")) return null;
    claims.push({ type, name, actions: actions as string[] });
  }
  return claims;
}
