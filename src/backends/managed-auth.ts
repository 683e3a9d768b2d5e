// What keeps a managed registry the gateway's alone. Its port is on loopback, where every local user can
// connect, so the registry itself refuses whatever comes without a token of the gateway's: it runs
// distribution's `auth: token`, trusting the gateway's signing certificate and only tokens for
// MANAGED_SERVICE. Each request the gateway forwards to it carries a short-lived token granting exactly the
// accesses the gateway has just authorized (backend-token.ts), for the user it authenticated.
//
// The token goes to the managed registries only: a site may mix them with registries given as URLs (a
// group, a repository-prefix route), and those get the site's own backendAuth, never a token a managed
// registry would accept.
import type { Access } from "../registry/routes.js";
import type { BackendAuth, Principal } from "../auth/types.js";
import { poolsOf, type Upstream } from "./upstream.js";

/**
 * The `service` (token audience) of every managed registry. The spaces keep it apart from every site name
 * and host name (a site's default service); the schema refuses it as a configured one, so no token the
 * gateway issues to clients or to other backends is ever valid at a managed registry.
 */
export const MANAGED_SERVICE = "registry-gateway managed registry";

/**
 * distribution requires a realm. Nothing should ever be sent there (the gateway brings its own tokens), so it
 * names no URL a client could send credentials to.
 */
export const MANAGED_REALM = "registry-gateway: only the gateway holds tokens for this registry";

/** The Authorization for the managed registries among the backends a request may go to. */
export interface ManagedAuthorization {
  /** Origins (http://127.0.0.1:PORT) of the running managed registries. */
  origins: ReadonlySet<string>;
  authorization: string;
}

/** The gateway's credentials for the managed registries one configuration forwards to. */
export class ManagedCredentials {
  constructor(
    private readonly minter: BackendAuth,
    readonly origins: ReadonlySet<string>,
  ) {}

  /** A managed registry's origin. */
  covers(backend: URL): boolean {
    return this.origins.has(backend.origin);
  }

  /** For a request to `upstream`: a token for `accesses` if one of its registries is managed, else undefined. */
  async authorizationFor(upstream: Upstream, accesses: readonly Access[], principal: Principal | null): Promise<ManagedAuthorization | undefined> {
    const managed = poolsOf(upstream).some((pool) => pool.members.some((member) => this.origins.has(member.origin)));
    if (!managed) return undefined;
    return { origins: this.origins, authorization: await this.minter.authorizationFor(accesses, principal) };
  }

  /** The token for `accesses` (the gateway's own list fetches). */
  token(accesses: readonly Access[], principal: Principal | null): Promise<string> {
    return this.minter.authorizationFor(accesses, principal);
  }
}
