// Builds each site's auth (stages 3-4) and backend credentials from configuration, once, at load. Every
// file is read and every rule compiled here: a broken htpasswd line or a bad key stops the start with
// file:line, and the request path only uses what is built.
//
// Password checks share, per configuration, one pool of hashing threads and one failed-login
// throttle. Its counters are the caller's (generation.ts: in Redis when `redis` is configured, in process
// memory otherwise, kept by the process across reloads); they are asked for only when a site checks passwords.
import { readFile } from "node:fs/promises";
import { loadManagedTrust } from "../backends/managed-auth.js";
import { siteBackends } from "../config/helpers.js";
import type { AccessRuleConfig, GatewayConfig, SiteConfig } from "../config/schema.js";
import type { Logger } from "../observe/log.js";
import { siteName } from "../config/site-names.js";
import { AccessPolicy } from "./access.js";
import { BackendTokenMinter } from "./backend-token.js";
import { HashPool, hashThreads } from "./hash-pool.js";
import { HtpasswdError, HtpasswdUsers, parseHtpasswd } from "./htpasswd.js";
import { LoginThrottle, type LoginCounters, type LoginEvents, type SiteLogins } from "./logins.js";
import type { SigningKey } from "./signing-key.js";
import { HtpasswdSiteAuth, TokenSiteAuth } from "./site-auth.js";
import { DockerTokenEndpoint } from "./token-endpoint.js";
import type { TokenIssuer, TokenVerifier } from "./tokens.js";
import type { BackendAuth, SiteAuth } from "./types.js";

export interface SiteSecurity {
  /** null: no authentication (auth type none). */
  auth: SiteAuth | null;
  /** null: the backend gets no Authorization of ours (none or passthrough). */
  backendAuth: BackendAuth | null;
  /** The client's Authorization goes to the backend untouched (backendAuth passthrough). */
  passClientAuthorization: boolean;
  /**
   * The site's password checks (its users, the failed-login throttle) and access rules, for the registry
   * browser's sign-in; absent or null without auth.
   */
  passwords?: { logins: SiteLogins; policy: AccessPolicy } | null;
}

export interface Security {
  /** In the order of config.sites. */
  bySite: readonly SiteSecurity[];
  /** Loaded only when a site issues or sends tokens. */
  signingKey: SigningKey | null;
  /** Tokens for the managed registries (backends/managed-auth.ts); null when no site has one. */
  managedAuth: BackendAuth | null;
  /** Stops watching htpasswd files and stops the hashing threads. */
  close(): Promise<void>;
}

export async function buildSecurity(
  config: GatewayConfig,
  logger: Logger,
  events: LoginEvents | null,
  /** Where failed logins are counted. */
  loginCounters: () => Promise<LoginCounters>,
): Promise<Security> {
  const managed = config.sites.some((site) => siteBackends(site).some((backend) => !(backend instanceof URL)));
  const needsKey = config.sites.some((site) => site.auth.type === "token" || site.backendAuth.type === "token");
  // Loaded only when a site issues or sends tokens: jose and the key handling are not needed otherwise.
  const tokens = needsKey ? await import("./tokens.js") : null;
  const signingKey = needsKey ? await (await import("./signing-key.js")).loadSigningKey(config) : null;
  // Each site issues tokens naming it (tokens.ts): one issuer per site.
  const issuerFor = (site: string) => (signingKey ? new tokens!.TokenIssuer(signingKey, config.tokens.issuer, site) : null);
  if (signingKey) {
    logger.info(
      { certFile: signingKey.certPath, kid: signingKey.keyId, algorithm: signingKey.algorithm, created: signingKey.created },
      "token signing key ready: `token cert` prints the certificate token-auth backends must trust",
    );
  }

  const passwords = config.sites.some((site) => site.auth.type !== "none");
  const { hashWorkers, maxQueued, maxQueuedPerAddress } = config.logins;
  const hashPool = passwords ? new HashPool({ threads: hashThreads(hashWorkers), maxQueued, maxQueuedPerClient: maxQueuedPerAddress }) : null;
  // Sites sharing an htpasswd file share one watcher and one verification cache.
  const files = new Map<string, HtpasswdUsers>();
  let throttle: LoginThrottle | null = null;
  const close = async () => {
    for (const users of files.values()) users.close();
    await hashPool?.close();
  };
  const usersOf = async (file: string) => {
    let users = files.get(file);
    if (!users) {
      users = await HtpasswdUsers.open(file, logger, { hashPool });
      files.set(file, users);
    }
    return users;
  };

  const bySite: SiteSecurity[] = [];
  let managedAuth: BackendAuth | null = null;
  try {
    if (passwords) throttle = new LoginThrottle(await loginCounters(), config.logins, events);
    for (const site of config.sites) {
      const name = siteName(site);
      const issuer = issuerFor(name);
      const auth = await buildSiteAuth(site, name, config, usersOf, throttle, issuer, tokens?.TokenVerifier ?? null, logger);
      const backendAuth = site.backendAuth.type === "token" ? new BackendTokenMinter(issuer!, site.backendAuth.service) : null;
      const passwords = auth && { logins: auth.logins, policy: auth.policy };
      bySite.push({ auth, backendAuth, passClientAuthorization: site.backendAuth.type === "passthrough", passwords });
    }
    // Signed with the managed registries' own key pair, never the token signing key (managed-auth.ts says why).
    if (managed) managedAuth = (await loadManagedTrust(config.dataDir)).minter;
  } catch (err) {
    await close();
    throw err;
  }
  return { bySite, signingKey, managedAuth, close };
}

async function buildSiteAuth(
  site: SiteConfig,
  name: string,
  config: GatewayConfig,
  usersOf: (file: string) => Promise<HtpasswdUsers>,
  throttle: LoginThrottle | null,
  issuer: TokenIssuer | null,
  Verifier: typeof TokenVerifier | null,
  logger: Logger,
): Promise<HtpasswdSiteAuth | TokenSiteAuth | null> {
  const auth = site.auth;
  if (auth.type === "none") return null;
  const users = await usersOf(auth.htpasswd);
  warnAboutUnknownUsers(name, auth.rules, users, logger);
  const policy = new AccessPolicy(auth.rules);
  const logins = throttle!.forSite(name, users);
  if (auth.type === "htpasswd") return new HtpasswdSiteAuth(logins, policy, auth.realm ?? name);

  const service = auth.service ?? name;
  const verifier = new Verifier!(issuer!.key, config.tokens.issuer, service, name);
  const endpoint = new DockerTokenEndpoint({
    service,
    logins,
    policy,
    issuer: issuer!,
    verifier,
    lifetimeMs: config.tokens.lifetime,
    refreshLifetimeMs: config.tokens.refreshLifetime,
  });
  return new TokenSiteAuth(users, verifier, service, endpoint, logins, policy);
}

/**
 * For `config check`: what would stop `serve` in the files the auth config names (an htpasswd line, a
 * configured key), as `file:line: why` or `file: why`. Generates nothing.
 */
export async function authFileProblems(config: GatewayConfig): Promise<string[]> {
  const problems: string[] = [];
  const files = new Set(config.sites.flatMap((site) => (site.auth.type === "none" ? [] : [site.auth.htpasswd])));
  for (const file of files) {
    try {
      parseHtpasswd(await readFile(file, "utf8"), file);
    } catch (err) {
      problems.push(err instanceof HtpasswdError ? err.message : `${file}: ${(err as Error).message}`);
    }
  }
  if (config.tokens.key !== undefined) {
    try {
      const { loadSigningKey } = await import("./signing-key.js");
      await loadSigningKey(config);
    } catch (err) {
      problems.push((err as Error).message);
    }
  }
  return problems;
}

/** A rule naming a user the file does not have is usually a typo that silently grants nothing. */
function warnAboutUnknownUsers(site: string, rules: readonly AccessRuleConfig[], users: HtpasswdUsers, logger: Logger): void {
  const unknown = new Set<string>();
  for (const rule of rules) if (rule.who !== "*") for (const user of rule.who) if (!users.has(user)) unknown.add(user);
  if (unknown.size > 0) {
    logger.warn({ site, file: users.file, users: [...unknown] }, "access rules name users the htpasswd file does not have");
  }
}
