// Everything the gateway derives from one configuration, built by ONE function for start and reload alike,
// so a reload cannot build what a start would not: auth, sites, certificates, rate limits, the observer,
// and the pipeline state that requests run on. A generation is built completely or not at all. Once a
// reload replaces it, it is retired: requests that started on it finish on it, then what it holds open
// (htpasswd watchers, Redis) is closed.
import type { ServerResponse } from "node:http";
import { buildSecurity, type Security } from "./auth/build.js";
import { createUploadAffinity, type UploadAffinity } from "./backends/affinity.js";
import { SiteLists } from "./backends/lists.js";
import { ManagedCredentials } from "./backends/managed-auth.js";
import { memoryAffinity } from "./cluster/shared.js";
import { buildSiteUpstreams, isReplicated } from "./backends/upstream.js";
import { siteBackends } from "./config/helpers.js";
import type { GatewayConfig } from "./config/schema.js";
import { createAccessLogger } from "./observe/access-log.js";
import type { Logger } from "./observe/log.js";
import { metrics } from "./observe/metrics.js";
import { createRequestObserver } from "./observe/observer.js";
import { createPipeline, type PipelineState, type RequestHandler } from "./pipeline.js";
import { clientAddressResolver } from "./proxy/client-ip.js";
import { DownloadLimits } from "./proxy/downloads.js";
import { Forwarder } from "./proxy/forward.js";
import { CatalogSearch } from "./registry/search.js";
import { createRateLimitStage, type RateLimitStage } from "./ratelimit/stage.js";
import { configuredBackend, type BackendResolver } from "./backends/resolve.js";
import { SiteMap } from "./sites.js";
import { loadSiteCertificates } from "./tls/store.js";

export type LoadedCertificates = Awaited<ReturnType<typeof loadSiteCertificates>>;

export class Generation {
  #inFlight = 0;
  #idleWaiters: (() => void)[] = [];
  #closed = false;
  readonly handle: RequestHandler;

  constructor(
    readonly config: GatewayConfig,
    readonly security: Security,
    readonly sites: SiteMap,
    /** As loaded when the generation was built; what is served afterwards is tls/served-certificates.ts's business. */
    readonly certificates: LoadedCertificates,
    readonly rateLimit: RateLimitStage | null,
    /** Shared with the next generation when the forwarding timeouts stay the same (keeps the backend pools warm). */
    readonly forwarder: Forwarder,
    /** Every generation using `forwarder` that may still have requests in flight; the last one out closes it. */
    readonly forwarderUsers: Set<Generation>,
    /** Shared with the next generation while `redis` stays the same: uploads in flight keep their replica. */
    readonly affinity: UploadAffinity,
    readonly affinityUsers: Set<Generation>,
    /** The Redis the affinity store uses; null: process (or cluster primary) memory. */
    readonly affinityStore: GatewayConfig["redis"] | null,
    readonly pipeline: PipelineState,
  ) {
    forwarderUsers.add(this);
    affinityUsers.add(this);
    // Bound to this generation: a request keeps it from its first stage to its last, whatever reloads meanwhile.
    this.handle = createPipeline(() => pipeline);
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  /** Counts a request against this generation until its response closes. */
  track(res: ServerResponse): void {
    this.#inFlight++;
    res.once("close", () => {
      this.#inFlight--;
      if (this.#inFlight === 0) for (const wake of this.#idleWaiters.splice(0)) wake();
    });
  }

  /** Resolves once no request that started on this generation is in flight. */
  idle(): Promise<void> {
    return this.#inFlight === 0 ? Promise.resolve() : new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  /** For a generation built but never put in service (a reload that failed after building it). */
  async discard(): Promise<void> {
    await this.closeStages();
    await this.release();
  }

  /** Stops the htpasswd watchers, the hashing threads, the health checks and the limiters' connections; idempotent. */
  async closeStages(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const site of this.sites.sites) site.upstreams.stop();
    await Promise.all([this.security.close(), this.rateLimit?.close()]);
  }

  /** Once no request of this generation is in flight: closes what no newer generation shares. */
  async release(): Promise<void> {
    this.forwarderUsers.delete(this);
    if (this.forwarderUsers.size === 0) this.forwarder.close();
    this.affinityUsers.delete(this);
    if (this.affinityUsers.size === 0) await this.affinity.close();
  }
}

/**
 * Builds the generation for `config`. Auth first: a broken htpasswd file or signing key fails the build before
 * anything else is made. On any error, whatever was already opened is closed again and the error thrown.
 */
export async function buildGeneration(
  config: GatewayConfig,
  logger: Logger,
  previous: Generation | null = null,
  /** Each backend's URL; managed backends resolve to their running registry (backends/managed.ts). */
  backendFor: BackendResolver = configuredBackend,
): Promise<Generation> {
  const security = await buildSecurity(config, logger, config.metrics.enabled ? metrics : null);
  let rateLimit: RateLimitStage | null = null;
  let sites: SiteMap | null = null;
  try {
    const shared = previous && sameForwarding(previous.config, config);
    const forwarder = shared ? previous.forwarder : new Forwarder({ idleTimeoutMs: config.timeouts.idle, keepAliveMs: config.timeouts.keepAlive, sendTimeoutMs: config.timeouts.send });
    const forwarderUsers = shared ? previous.forwarderUsers : new Set<Generation>();
    const agentFor = (url: URL) => forwarder.agentFor(url);
    sites = new SiteMap(config, security.bySite, (name, site) => buildSiteUpstreams(name, site, { resolve: backendFor, agentFor, logger }));
    const certificates = await loadSiteCertificates(config);
    const observer = createRequestObserver({
      metrics: config.metrics.enabled ? metrics : null,
      accessLog: config.log.access ? createAccessLogger(logger) : null,
    });
    rateLimit = await createRateLimitStage(config, sites.sites, logger, config.metrics.enabled ? metrics : null);
    // Only replicas need to know where an upload lives; without them no Redis connection is opened for it.
    const affinityStore = sites.sites.some((site) => site.upstreams.pools().some(isReplicated)) && config.redis ? config.redis : null;
    const keepAffinity = previous && JSON.stringify(previous.affinityStore) === JSON.stringify(affinityStore);
    const uploadLimits = { perUser: config.limits.uploadsPerUser, idleMs: config.timeouts.uploadIdle };
    const affinity = keepAffinity ? previous.affinity : affinityStore ? await createUploadAffinity(affinityStore, logger, uploadLimits) : memoryAffinity(uploadLimits);
    if (keepAffinity) affinity.configure(uploadLimits);
    const affinityUsers = keepAffinity ? previous.affinityUsers : new Set<Generation>();
    const clientAddress = clientAddressResolver(config.trustedProxies);
    const managed = security.managedAuth ? new ManagedCredentials(security.managedAuth, managedOrigins(config, backendFor)) : null;
    const lists = new SiteLists(agentFor, logger, managed, config.lists.cacheFor);
    const search = new CatalogSearch((site) => lists.repositories(site));
    // The counts carry over from the previous generation: downloads in flight still hold what they hold.
    const downloads = new DownloadLimits(config.limits, previous?.pipeline.downloads);
    const pipeline: PipelineState = { sites, forwarder, affinity, lists, logger, observer, clientAddress, rateLimit, strictSni: config.tls.strictSni, search, managed, downloads, metrics };
    for (const site of sites.sites) site.upstreams.start();
    return new Generation(config, security, sites, certificates, rateLimit, forwarder, forwarderUsers, affinity, affinityUsers, affinityStore, pipeline);
  } catch (err) {
    for (const site of sites?.sites ?? []) site.upstreams.stop();
    await Promise.all([security.close(), rateLimit?.close()]);
    throw err;
  }
}

/**
 * After a reload: the old generation's stages are closed once its requests are done, or after `graceMs` at the
 * latest (they are only used as a request starts, so a long upload does not need them). Its forwarder
 * carries those requests' bytes, so it is closed only once they end, and only if no newer generation uses it.
 */
export async function retireGeneration(old: Generation, graceMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const grace = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, graceMs);
    timer.unref();
  });
  await Promise.race([old.idle(), grace]);
  clearTimeout(timer);
  await old.closeStages();
  await old.idle();
  await old.release();
}

/** Where the managed registries `config` names listen. */
function managedOrigins(config: GatewayConfig, backendFor: BackendResolver): Set<string> {
  return new Set(config.sites.flatMap((site) => siteBackends(site).flatMap((backend) => (backend instanceof URL ? [] : [backendFor(backend).origin]))));
}

function sameForwarding(a: GatewayConfig, b: GatewayConfig): boolean {
  return a.timeouts.idle === b.timeouts.idle && a.timeouts.keepAlive === b.timeouts.keepAlive && a.timeouts.send === b.timeouts.send;
}
