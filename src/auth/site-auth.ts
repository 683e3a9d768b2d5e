// Stages 3 and 4 for the two kinds of site auth. Both answer the same question — may this request go on,
// and as whom — and differ only in the credential they read and how they say no:
//
//   htpasswd  Basic credentials; not allowed → 403 DENIED (anonymous: 401, so the client may log in).
//   token     Bearer JWTs from our /token; not allowed → 401 with error="insufficient_scope", naming the
//             scope to ask for (that is how docker learns to fetch a push token after a pull token).
//
// Passwords are checked through SiteLogins (logins.ts): too many failures for a user from one address →
// 429 before any hashing; every hashing thread busy and the queue full → 503.
import type { RegistryRoute } from "../registry/routes.js";
import type { AccessPolicy } from "./access.js";
import { basicChallenge, bearerChallenge } from "./challenge.js";
import { parseAuthorization } from "./credentials.js";
import type { HtpasswdUsers } from "./htpasswd.js";
import { refusalBeforeCheck, type SiteLogins } from "./logins.js";
import type { TokenVerifier } from "./tokens.js";
import type { Admission, SiteAuth, TokenEndpoint } from "./types.js";

const AUTHENTICATION_REQUIRED = "authentication required";
const BAD_CREDENTIALS = "invalid username or password";
export class HtpasswdSiteAuth implements SiteAuth {
  readonly mode = "htpasswd";
  readonly tokenEndpoint = null;
  private readonly challenge: string;

  constructor(
    readonly logins: SiteLogins,
    readonly policy: AccessPolicy,
    realm: string,
  ) {
    this.challenge = basicChallenge(realm);
  }

  async admit(authorization: string | undefined, route: RegistryRoute, _externalOrigin: string, clientIp: string): Promise<Admission> {
    const credentials = parseAuthorization(authorization);
    switch (credentials.kind) {
      case "none":
        // `/v2/` always asks for credentials: it is how clients learn that this registry wants them.
        if (route.accesses.length > 0 && this.policy.permits(null, route.accesses)) return { ok: true, principal: null };
        return this.unauthorized("missing_credentials", AUTHENTICATION_REQUIRED);
      case "malformed":
        return this.unauthorized("invalid_credentials", "the Authorization header is not valid Basic credentials");
      case "bearer":
        return this.unauthorized("invalid_credentials", "this registry takes Basic credentials");
      case "basic": {
        const check = await this.logins.check(credentials.user, credentials.password, clientIp);
        if (!check.ok) return refusalBeforeCheck(check) ?? this.unauthorized("invalid_credentials", BAD_CREDENTIALS);
        const user = credentials.user;
        const refused = this.policy.firstRefused(user, route.accesses);
        if (!refused) return { ok: true, principal: { name: user } };
        return {
          ok: false,
          error: "denied",
          reason: "denied",
          // The same words as a token site's error_description, and what docker prints for both.
          message: `requested access to the resource is denied: ${refused.action} on ${refused.type} ${refused.name} is not granted to ${user}`,
          user,
        };
      }
    }
  }

  async identify(authorization: string | undefined, _externalOrigin: string, clientIp: string): Promise<Admission> {
    const credentials = parseAuthorization(authorization);
    if (credentials.kind === "none") return { ok: true, principal: null };
    if (credentials.kind !== "basic") return this.unauthorized("invalid_credentials", "this registry takes Basic credentials");
    return passwordPrincipal(this.logins, credentials.user, credentials.password, clientIp, this.challenge);
  }

  mayPull(user: string | null, repository: string): boolean {
    return this.policy.repositoryActions(user, repository).has("pull");
  }

  private unauthorized(reason: "missing_credentials" | "invalid_credentials", message: string): Admission {
    return { ok: false, error: "unauthorized", reason, message, challenge: this.challenge };
  }
}

/** Basic credentials → the user, through the login throttle and the hashing threads. */
async function passwordPrincipal(logins: SiteLogins, user: string, password: string, clientIp: string, challenge: string): Promise<Admission> {
  const check = await logins.check(user, password, clientIp);
  if (check.ok) return { ok: true, principal: { name: user } };
  return refusalBeforeCheck(check) ?? { ok: false, error: "unauthorized", reason: "invalid_credentials", message: BAD_CREDENTIALS, challenge };
}

export class TokenSiteAuth implements SiteAuth {
  readonly mode = "token";

  constructor(
    private readonly users: HtpasswdUsers,
    private readonly verifier: TokenVerifier,
    private readonly service: string,
    readonly tokenEndpoint: TokenEndpoint,
    readonly logins: SiteLogins,
    readonly policy: AccessPolicy,
  ) {}

  /** docker sends Basic credentials to the v1 search endpoint even of a token registry; Bearer works too. */
  async identify(authorization: string | undefined, externalOrigin: string, clientIp: string): Promise<Admission> {
    const credentials = parseAuthorization(authorization);
    switch (credentials.kind) {
      case "none":
        return { ok: true, principal: null };
      case "basic":
        return passwordPrincipal(this.logins, credentials.user, credentials.password, clientIp, basicChallenge(this.service));
      case "bearer":
        return this.admit(authorization, { kind: "other", accesses: [] }, externalOrigin);
      default:
        return { ok: false, error: "unauthorized", reason: "invalid_credentials", message: "the Authorization header is not valid", challenge: basicChallenge(this.service) };
    }
  }

  mayPull(user: string | null, repository: string): boolean {
    return this.policy.repositoryActions(user, repository).has("pull");
  }

  async admit(authorization: string | undefined, route: RegistryRoute, externalOrigin: string, _clientIp?: string): Promise<Admission> {
    const challenge = (error?: "invalid_token" | "insufficient_scope", description?: string) =>
      bearerChallenge({ externalOrigin, service: this.service, accesses: route.accesses, error, description });
    const credentials = parseAuthorization(authorization);
    if (credentials.kind === "none") {
      return { ok: false, error: "unauthorized", reason: "missing_credentials", message: AUTHENTICATION_REQUIRED, challenge: challenge() };
    }
    if (credentials.kind !== "bearer") {
      // Basic on the data path is a client that skipped the token dance: tell it where tokens come from.
      return { ok: false, error: "unauthorized", reason: "invalid_credentials", message: "this registry takes Bearer tokens from its /token endpoint", challenge: challenge() };
    }
    const verification = await this.verifier.verify(credentials.token);
    if (!verification.ok) {
      const message = verification.problem === "expired_token" ? "the token has expired" : "the token is not valid here";
      return { ok: false, error: "unauthorized", reason: verification.problem, message, challenge: challenge("invalid_token", message) };
    }
    const { subject, granted, fingerprint } = verification.token;
    // A user removed from the htpasswd file, or whose password changed, loses the tokens already issued, not
    // only future logins. A named token without a fingerprint was not issued by our /token: refused too.
    if (subject !== "" && (fingerprint === undefined || this.users.fingerprint(subject) !== fingerprint)) {
      const message =
        fingerprint === undefined ? "the token is not valid here" : this.users.has(subject) ? "the token was issued before a password change" : "the token's user no longer exists";
      return { ok: false, error: "unauthorized", reason: "invalid_token", message, challenge: challenge("invalid_token", message) };
    }
    const missing = route.accesses.find((access) => !granted.covers(access));
    if (missing) {
      const message = `requested access to the resource is denied: ${missing.action} on ${missing.type} ${missing.name} is not granted to ${subject || "anonymous"}`;
      return {
        ok: false,
        error: "unauthorized",
        reason: "insufficient_scope",
        message,
        challenge: challenge("insufficient_scope", message),
        ...(subject ? { user: subject } : {}),
      };
    }
    return { ok: true, principal: subject ? { name: subject } : null };
  }
}
