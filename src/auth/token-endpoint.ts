// `/token` of a token-auth site (Docker registry token spec + its OAuth2 variant):
//
//   GET  /token?service=&scope=&scope=&account=&client_id=&offline_token=   Basic credentials, or none
//   POST /token  grant_type=password (username, password) | refresh_token (refresh_token),
//                service, scope (space separated), client_id, access_type=offline
//
// The answer is 200 {token, access_token, expires_in, issued_at} (+ refresh_token for offline requests).
// What the token grants is what was asked AND what the rules allow: asking for more is not an error, you
// get less — `docker login` asks for nothing and gets a token with empty access. Bad credentials are a 401
// in registry JSON, which docker and podman show as "unauthorized: …". Passwords go through SiteLogins:
// too many failures for a user from one address → 429 + Retry-After without hashing; every hashing thread
// busy and the queue full → 503 + Retry-After: 1.
import type { IncomingMessage, ServerResponse } from "node:http";
import { readBoundedBody } from "../proxy/bounded-body.js";
import { sendError, type GatewayErrorKind } from "../registry/errors.js";
import { isValidRepositoryName } from "../registry/routes.js";
import type { AccessPolicy } from "./access.js";
import { basicChallenge } from "./challenge.js";
import { parseAuthorization } from "./credentials.js";
import { refusalBeforeCheck, type SiteLogins } from "./logins.js";
import { parseScopes, type ResourceScope } from "./scope.js";
import type { TokenIssuer, TokenVerifier } from "./tokens.js";
import type { AuthFailureReason, Principal, TokenEndpoint, TokenEndpointResult } from "./types.js";

export interface TokenEndpointOptions {
  service: string;
  logins: SiteLogins;
  policy: AccessPolicy;
  issuer: TokenIssuer;
  verifier: TokenVerifier;
  lifetimeMs: number;
  refreshLifetimeMs: number;
}

/** A form with a username, a password, a refresh token and a few scopes is far smaller. */
const MAX_FORM_BYTES = 64 * 1024;
/**
 * Scopes one token request may name. Each is checked against the access rules; a push names its repository
 * and a few mount sources, so a request naming more is refused rather than evaluated.
 */
export const MAX_SCOPES = 64;

type Login =
  /** `fingerprint`: the user's password fingerprint the tokens are bound to. */
  | { ok: true; principal: Principal | null; fingerprint?: string }
  /** 401 unless `kind` says otherwise (429 or 503 of the login throttle, with `headers`). */
  | { ok: false; reason: AuthFailureReason; message: string; kind?: GatewayErrorKind; headers?: Record<string, string> };

interface TokenRequest {
  login: Login;
  scopes: ResourceScope[];
  /** Include a refresh token in the answer: offline_token=true, access_type=offline, or a refresh grant. */
  offline: boolean;
  /** A refresh grant hands back the refresh token it came with. */
  refreshToken?: string;
}

class TokenRequestError extends Error {
  constructor(
    readonly kind: GatewayErrorKind,
    message: string,
  ) {
    super(message);
  }
}

export class DockerTokenEndpoint implements TokenEndpoint {
  private readonly challenge: string;

  constructor(private readonly options: TokenEndpointOptions) {
    this.challenge = basicChallenge(options.service);
  }

  async handle(req: IncomingMessage, res: ServerResponse, _externalOrigin: string, clientIp: string): Promise<TokenEndpointResult> {
    let request: TokenRequest;
    try {
      if (req.method === "GET") request = await this.fromQuery(req, clientIp);
      else if (req.method === "POST") request = await this.fromForm(req, clientIp);
      else {
        sendError(res, "methodNotAllowed", "the token endpoint answers GET and POST", { Allow: "GET, POST" });
        return { refusal: "methodNotAllowed" };
      }
    } catch (err) {
      if (!(err instanceof TokenRequestError)) throw err;
      // A form left unread (too large) would be parsed as the next request: the connection closes instead.
      sendError(res, err.kind, err.message, { "Cache-Control": "no-store", ...(req.complete ? {} : { Connection: "close" }) });
      return { refusal: err.kind };
    }
    const { login } = request;
    if (!login.ok) {
      const kind = login.kind ?? "unauthorized";
      const headers = kind === "unauthorized" ? { "WWW-Authenticate": this.challenge } : login.headers;
      sendError(res, kind, login.message, { ...headers, "Cache-Control": "no-store" });
      return { failure: login.reason, refusal: kind };
    }
    await this.answer(res, request, login);
    return login.principal ? { user: login.principal.name } : {};
  }

  private async fromQuery(req: IncomingMessage, clientIp: string): Promise<TokenRequest> {
    const url = req.url ?? "";
    const query = new URLSearchParams(url.includes("?") ? url.slice(url.indexOf("?") + 1) : "");
    this.checkService(query.get("service"));
    const login = await this.basicLogin(req.headers.authorization, clientIp);
    const account = query.get("account");
    if (login.ok && login.principal && account && account !== login.principal.name) {
      throw new TokenRequestError("badRequest", "account does not match the credentials");
    }
    return { login, scopes: requestedScopes(query.getAll("scope")), offline: query.get("offline_token") === "true" };
  }

  private async fromForm(req: IncomingMessage, clientIp: string): Promise<TokenRequest> {
    const type = (req.headers["content-type"] ?? "").split(";")[0]!.trim().toLowerCase();
    if (type !== "application/x-www-form-urlencoded") {
      throw new TokenRequestError("badRequest", "expected an application/x-www-form-urlencoded form");
    }
    const form = new URLSearchParams(await readForm(req));
    this.checkService(form.get("service"));
    const scopes = requestedScopes(form.getAll("scope"));
    switch (form.get("grant_type")) {
      case "password": {
        const username = form.get("username") ?? "";
        const password = form.get("password") ?? "";
        const login =
          username === "" ? failed("missing_credentials", "username and password are required") : await this.passwordLogin(username, password, clientIp);
        return { login, scopes, offline: form.get("access_type") === "offline" };
      }
      case "refresh_token": {
        const refreshToken = form.get("refresh_token") ?? "";
        return { login: await this.refreshLogin(refreshToken), scopes, offline: true, refreshToken };
      }
      default:
        throw new TokenRequestError("badRequest", "grant_type must be password or refresh_token");
    }
  }

  /** Clients send the service from our challenge; another one is a token meant for someone else. */
  private checkService(service: string | null): void {
    if (service !== null && service !== this.options.service) {
      throw new TokenRequestError("badRequest", `this endpoint issues tokens for service "${this.options.service}"`);
    }
  }

  private async basicLogin(authorization: string | undefined, clientIp: string): Promise<Login> {
    const credentials = parseAuthorization(authorization);
    switch (credentials.kind) {
      case "none":
        return { ok: true, principal: null };
      case "basic":
        return this.passwordLogin(credentials.user, credentials.password, clientIp);
      default:
        return failed("invalid_credentials", "the token endpoint takes Basic credentials");
    }
  }

  private async passwordLogin(user: string, password: string, clientIp: string): Promise<Login> {
    const check = await this.options.logins.check(user, password, clientIp);
    if (check.ok) return { ok: true, principal: { name: user }, fingerprint: check.fingerprint ?? "" };
    const refused = refusalBeforeCheck(check);
    if (refused) return { ok: false, reason: refused.reason, message: refused.message, kind: refused.error, headers: refused.headers };
    return failed("invalid_credentials", "invalid username or password");
  }

  private async refreshLogin(refreshToken: string): Promise<Login> {
    const claims = refreshToken ? await this.options.verifier.verifyRefresh(refreshToken) : null;
    // A changed password or a removed user ends the sessions made before.
    if (!claims || this.options.logins.users.fingerprint(claims.subject) !== claims.fingerprint) {
      return failed("invalid_token", "the refresh token is not valid");
    }
    return { ok: true, principal: { name: claims.subject }, fingerprint: claims.fingerprint };
  }

  private async answer(res: ServerResponse, request: TokenRequest, login: Extract<Login, { ok: true }>): Promise<void> {
    const { service, policy, issuer, lifetimeMs, refreshLifetimeMs } = this.options;
    const { principal } = login;
    const subject = principal?.name ?? "";
    const access = policy.grant(principal?.name ?? null, request.scopes, isValidRepositoryName);
    // A named user's tokens carry the password fingerprint they were issued under: a password change or the
    // user's removal ends them (site-auth.ts checks it on every request).
    const fingerprint = principal ? (login.fingerprint ?? "") : undefined;
    const issued = await issuer.issue(subject, service, access, lifetimeMs, fingerprint);
    const body: Record<string, unknown> = {
      token: issued.token,
      access_token: issued.token,
      expires_in: issued.expiresIn,
      issued_at: issued.issuedAt,
    };
    if (request.offline && principal) {
      body.refresh_token = request.refreshToken ?? (await issuer.issueRefresh(subject, service, fingerprint ?? "", refreshLifetimeMs)).token;
    }
    const text = JSON.stringify(body);
    res.writeHead(200, {
      "Content-Type": "application/json; charset=utf-8",
      "Content-Length": Buffer.byteLength(text),
      "Cache-Control": "no-store",
      Pragma: "no-cache",
    });
    res.end(text);
  }
}

function requestedScopes(values: readonly string[]): ResourceScope[] {
  const scopes = parseScopes(values);
  if (scopes.length > MAX_SCOPES) throw new TokenRequestError("badRequest", `a token request may name at most ${MAX_SCOPES} scopes`);
  return scopes;
}

function failed(reason: AuthFailureReason, message: string): Login {
  return { ok: false, reason, message };
}

async function readForm(req: IncomingMessage): Promise<string> {
  // The credentials are in the form: it is read to authenticate, and bounded before the client is invited.
  const body = await readBoundedBody(req, MAX_FORM_BYTES);
  if (body === null) throw new TokenRequestError("badRequest", "the form is too large");
  return body.toString("utf8");
}
