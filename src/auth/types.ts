// The vocabulary shared by the auth modules and the pipeline (distribution's registry/auth/auth.go, reduced
// to what the gateway needs): who is asking, what a request may do, and why it was refused.
import type { IncomingMessage, ServerResponse } from "node:http";
import type { AuthFailureReason } from "../observe/metrics.js";
import type { GatewayErrorKind } from "../registry/errors.js";
import type { Access, RegistryRoute } from "../registry/routes.js";

export type { AuthFailureReason };

/** An authenticated user. Anonymous requests have no principal (null), never a fake one. */
export interface Principal {
  name: string;
}

export type Admission =
  | { ok: true; principal: Principal | null }
  | {
      ok: false;
      /**
       * 401 (with a challenge), 403, 429 (failed logins throttled before the password is checked), or 503
       * (every password-hashing thread busy and the queue full; Retry-After: 1).
       */
      error: "unauthorized" | "denied" | "tooManyRequests" | "unavailable";
      reason: AuthFailureReason;
      /** Safe to show the client: never says whether a user exists. */
      message: string;
      /** WWW-Authenticate value; every 401 carries one. */
      challenge?: string;
      /** Other response headers (Retry-After of a 429 or 503). */
      headers?: Record<string, string>;
      /** Known when credentials were good but not enough, for the access log. */
      user?: string;
    };

/** Stages 3 and 4 for one site: credentials → principal, principal × route accesses → allow or refuse. */
export interface SiteAuth {
  readonly mode: "htpasswd" | "token";
  /**
   * `externalOrigin` is `https://host[:port]` as the client addressed us: the token realm lives there, and
   * docker only sends credentials to the host it pinged.
   */
  admit(authorization: string | undefined, route: RegistryRoute, externalOrigin: string, clientIp: string): Promise<Admission>;
  /**
   * Who is asking, for the gateway's own endpoints that answer anyone but show each caller only what it may
   * see (docker search): no credentials → anonymous (principal null); bad credentials → a refusal.
   */
  identify(authorization: string | undefined, externalOrigin: string, clientIp: string): Promise<Admission>;
  /** Whether the rules let `user` (null: anonymous) pull `repository`. */
  mayPull(user: string | null, repository: string): boolean;
  /** The `/token` endpoint of a token-auth site; null in htpasswd mode. */
  readonly tokenEndpoint: TokenEndpoint | null;
}

export interface TokenEndpointResult {
  /** Who got a token, when someone did. */
  user?: string;
  /** Why no token was given, when the answer was a 401, or a 429/503 of the login throttle. */
  failure?: AuthFailureReason;
  /** The registry error the endpoint answered with, when it did (for the access log's refusal). */
  refusal?: GatewayErrorKind;
}

export interface TokenEndpoint {
  handle(req: IncomingMessage, res: ServerResponse, externalOrigin: string, clientIp: string): Promise<TokenEndpointResult>;
}

/** What the backend is told about who is asking, for sites whose backend checks tokens itself. */
export interface BackendAuth {
  /** The Authorization header value for the backend, covering exactly these accesses. */
  authorizationFor(accesses: readonly Access[], principal: Principal | null): Promise<string>;
}
