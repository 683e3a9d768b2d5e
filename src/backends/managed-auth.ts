// What keeps a managed registry the gateway's alone. Its port is on loopback, where every local user can
// connect, so the registry itself refuses whatever comes without a token of the gateway's: it runs
// distribution's `auth: token`, trusting only tokens for MANAGED_SERVICE from MANAGED_ISSUER, signed by a key
// pair of its own. Each request the gateway forwards to it carries a short-lived token granting exactly the
// accesses the gateway has just authorized (backend-token.ts), for the user it authenticated.
//
// That key pair is not the gateway's token signing key (tokens.key, tokens.issuer): a reload may change
// those, and a registry only reads what it trusts as it starts. Trusting a key nothing in the configuration
// names, the registries never need a restart for a reload, and a reload that fails halfway cannot leave
// them trusting a key the generation in service does not sign with. The pair is generated once and kept
// in DATADIR/managed-registries (the key 0600, the directory 0700); every process of a cluster reads the
// same files, as it does the generated token signing key.
//
// The token goes to the managed registries only: a site may mix them with registries given as URLs (a
// group, a repository-prefix route), and those get the site's own backendAuth, never a token a managed
// registry would accept.
import type { Access } from "../registry/routes.js";
import type { BackendAuth, Principal } from "../auth/types.js";
import path from "node:path";
import { MANAGED_SERVICE } from "../config/rules.js";
import type { ManagedAuthorization } from "../proxy/headers.js";
import { poolsOf, type Upstream } from "./upstream.js";

/**
 * distribution requires a realm. Nothing should ever be sent there (the gateway brings its own tokens), so it
 * names no URL a client could send credentials to.
 */
export const MANAGED_REALM = "registry-gateway: only the gateway holds tokens for this registry";

/**
 * The `iss` of the tokens for the managed registries: fixed, so that no reload of `tokens.issuer` touches
 * what they trust.
 */
export const MANAGED_ISSUER = "registry-gateway managed registries";

/** What a managed registry trusts (its `rootcertbundle`), and what makes the tokens it takes. */
export interface ManagedTrust {
  certPath: string;
  minter: BackendAuth;
}

/** The directory of the managed registries' key pair under `dataDir`. */
export function managedTrustDir(dataDir: string): string {
  return path.resolve(dataDir, "managed-registries");
}

/** The managed registries' key pair and certificate under `dataDir`. */
export function managedKeyPaths(dataDir: string): { certPath: string; keyPath: string } {
  const dir = managedTrustDir(dataDir);
  return { certPath: path.join(dir, "token-signing.crt"), keyPath: path.join(dir, "token-signing.key") };
}

/**
 * The one maker of the managed registries' tokens: their key pair under `dataDir` (generated at the first
 * call) and the minter signing with it. Used by the process that runs the registries (its readiness checks)
 * and by every process that forwards to them.
 */
export async function loadManagedTrust(dataDir: string): Promise<ManagedTrust> {
  // Loaded only where managed registries are: jose and the key handling are not needed otherwise.
  const [{ loadGeneratedKey }, { TokenIssuer }, { BackendTokenMinter }] = await Promise.all([
    import("../auth/signing-key.js"),
    import("../auth/tokens.js"),
    import("../auth/backend-token.js"),
  ]);
  const paths = managedKeyPaths(dataDir);
  const key = await loadGeneratedKey(path.resolve(dataDir), paths, "ES256");
  return { certPath: paths.certPath, minter: new BackendTokenMinter(new TokenIssuer(key, MANAGED_ISSUER, MANAGED_SERVICE), MANAGED_SERVICE) };
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
