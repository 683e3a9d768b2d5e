// Everything the gateway derives from one configuration, built by ONE function for start and reload alike,
// so a reload cannot build what a start would not: auth, sites, certificates, rate limits, the observer,
// and the pipeline state that requests run on. A generation is built completely or not at all. Once a
// reload replaces it, it is retired: requests that started on it finish on it, then its stages close
// (htpasswd watchers, hashing threads, health checks) and it gives back its leases on the process's
// resources (process/resources.ts): counters, replica health, Redis connections, keep-alive agents. What a
// newer generation built from the same settings also holds stays open, so a reload keeps counts, health and
// warm connections, and starts afresh only what its new settings change.
import type { ServerResponse } from "node:http";
import { buildSecurity, type Security } from "./auth/build.js";
import type { LoginCounters } from "./auth/logins.js";
import { createUploadAffinity, type UploadAffinity, type UploadLimits } from "./backends/affinity.js";
import { SiteLists } from "./backends/lists.js";
import { ManagedCredentials } from "./backends/managed-auth.js";
import { buildSiteUpstreams, isReplicated } from "./backends/upstream.js";
import { siteBackends } from "./config/helpers.js";
import type { GatewayConfig, RedisConfig } from "./config/schema.js";
import { createAccessLogger } from "./observe/access-log.js";
import { createRequestObserver } from "./observe/observer.js";
import { createPipeline, type PipelineState, type RequestHandler } from "./pipeline.js";
import type { ProcessContext } from "./process/context.js";
import { LeaseSet } from "./process/resources.js";
import { clientAddressResolver } from "./proxy/client-ip.js";
import { DownloadLimits } from "./proxy/downloads.js";
import { Forwarder } from "./proxy/forward.js";
import { CatalogSearch } from "./registry/search.js";
import { LocalLock, RedisLock, type IndexLock } from "./referrers/lock.js";
import { Referrers } from "./referrers/referrers.js";
import { browserState } from "./web/state.js";
import type { Limiter } from "./ratelimit/limiter.js";
import type { CompiledLimit } from "./ratelimit/policy.js";
import { createRateLimitStage, limitSettings, type RateLimitStage } from "./ratelimit/stage.js";
import type { BackendResolver } from "./backends/resolve.js";
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
    /** The process's forwarder for these timeouts: shared with every generation with the same (warm backend sockets). */
    readonly forwarder: Forwarder,
    /** Where uploads live, shared with every generation using the same store: uploads in flight keep their replica. */
    readonly affinity: UploadAffinity,
    readonly pipeline: PipelineState,
    /** What it holds of the process's resources; given back once its requests are done. */
    private readonly leases: LeaseSet,
  ) {
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

  /** Stops the htpasswd watchers, the hashing threads and this generation's health checks; idempotent. */
  async closeStages(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const site of this.sites.sites) site.upstreams.stop();
    await this.security.close();
  }

  /** Once no request of this generation is in flight: gives back its resources; what no newer generation holds closes. */
  async release(): Promise<void> {
    await this.leases.releaseAll();
  }
}

/**
 * Builds the generation for `config` in `context`'s process. Auth first: a broken htpasswd file or signing key
 * fails the build before anything else is made. On any error, whatever was already opened or leased is given
 * back again and the error thrown.
 */
export async function buildGeneration(config: GatewayConfig, context: ProcessContext): Promise<Generation> {
  const { logger, metrics } = context;
  // Counted always (the request path's refusals), reported by the stages only when metrics are on.
  const events = context.metricsEnabled ? metrics : null;
  const leases = new LeaseSet(context.resources);
  let security: Security | null = null;
  let sites: SiteMap | null = null;
  try {
    security = await buildSecurity(config, logger, events, () => loginCounters(config, context, leases));
    const { idle, keepAlive, send } = config.timeouts;
    const forwarder = leases.take("forwarder", { idle, keepAlive, send }, () => new Forwarder({ idleTimeoutMs: idle, keepAliveMs: keepAlive, sendTimeoutMs: send }));
    const agentFor = (url: URL) => forwarder.agentFor(url);
    const backendFor = context.backendsFor(config);
    sites = new SiteMap(config, security.bySite, (name, site) => buildSiteUpstreams(name, site, { resolve: backendFor, agentFor, logger, resources: leases }));
    const certificates = await loadSiteCertificates(config);
    const observer = createRequestObserver({ metrics: events, accessLog: config.log.access ? createAccessLogger(logger) : null });
    const rateLimit = await createRateLimitStage(sites.sites, events, (limit) => limitCounters(limit, config, context, leases));
    const affinity = await uploadAffinity(config, sites, context, leases);
    const managed = security.managedAuth ? new ManagedCredentials(security.managedAuth, managedOrigins(config, backendFor)) : null;
    const lists = new SiteLists(agentFor, logger, managed, config.lists.cacheFor, metrics);
    const search = new CatalogSearch((site) => lists.repositories(site));
    // The counts are the process's: downloads in flight on a replaced generation still hold what they hold.
    const downloadCounts = leases.take("download-counts", {}, () => ({ counts: new DownloadLimits(config.limits), close() {} }));
    const downloads = new DownloadLimits(config.limits, downloadCounts.counts);
    const clientAddress = clientAddressResolver(config.trustedProxies);
    const referrers = new Referrers(await referrersLock(config, leases));
    const pipeline: PipelineState = { sites, forwarder, affinity, lists, logger, observer, clientAddress, rateLimit, strictSni: config.tls.strictSni, search, managed, downloads, metrics, referrers, browser: browserState(config.dataDir) };
    for (const site of sites.sites) site.upstreams.start();
    return new Generation(config, security, sites, certificates, rateLimit, forwarder, affinity, pipeline, leases);
  } catch (err) {
    for (const site of sites?.sites ?? []) site.upstreams.stop();
    await security?.close();
    await leases.releaseAll();
    throw err;
  }
}

/**
 * A limit's counter: with Redis the one connection every limit shares (keys name the limit), else the process's
 * counts for exactly this limit, so a reload that changes it starts it afresh and one that keeps it keeps them.
 */
function limitCounters(limit: CompiledLimit, config: GatewayConfig, context: ProcessContext, leases: LeaseSet): Limiter | Promise<Limiter> {
  if (config.redis) {
    const redis = config.redis;
    const onAvailability = (up: boolean) => (context.metricsEnabled ? context.metrics.setRedisUp(up) : undefined);
    return leases.take("redis-rate-limits", redis, () => openRedisLimiter({ config: redis, logger: context.logger, onAvailability }));
  }
  const settings = limitSettings(limit);
  return leases.take("limit-counters", settings, () => context.counters.limiter("limits", settings));
}

/**
 * The failed-login counters: in Redis when configured (keys under `<keyPrefix>login:`), so every gateway counts
 * the same failures, and always failOpen whatever `redis.failure` says for rate limits: while Redis is down
 * failures are counted per process, rather than every login refused. Otherwise one count per budget and rule.
 */
async function loginCounters(config: GatewayConfig, context: ProcessContext, leases: LeaseSet): Promise<LoginCounters> {
  if (config.redis) {
    const redis: RedisConfig = { ...config.redis, keyPrefix: `${config.redis.keyPrefix}login:`, failure: "failOpen" };
    return leases.take("redis-logins", redis, () => openRedisLimiter({ config: redis, logger: context.logger, counts: "failed-login counts" }));
  }
  const { networkPrefix } = config.logins;
  return (scope, rule) => {
    const settings = { scope, rule, networkPrefix: scope === "network" ? networkPrefix : undefined };
    return leases.take("login-counters", settings, () => context.counters.limiter("logins", settings));
  };
}

/** Loaded only when configured: ioredis alone adds ~18 MB to the resident size of every gateway. */
async function openRedisLimiter(options: Parameters<typeof import("./ratelimit/redis.js").openRedisLimiter>[0]): Promise<Limiter> {
  return (await import("./ratelimit/redis.js")).openRedisLimiter(options);
}

/**
 * Who may write a subject's referrers index: with Redis one writer across every gateway sharing it (its own
 * connection, opened only for a site that may keep an index), else one per process.
 */
async function referrersLock(config: GatewayConfig, leases: LeaseSet): Promise<IndexLock> {
  const redis = config.redis && config.sites.some((site) => site.referrers !== "pass") ? config.redis : null;
  return leases.take("referrers-lock", { redis }, async () => {
    if (!redis) return new LocalLock();
    // Loaded only when configured, like every Redis client: ioredis weighs on every gateway's memory.
    const { createClient } = await import("./ratelimit/redis.js");
    return new RedisLock(createClient(redis));
  });
}

/**
 * Upload sessions are shared through Redis when some gateway needs them: a replica's (where an upload lives)
 * or a site's that checks upload ranges (where it stands). Otherwise no Redis connection is opened for them.
 */
async function uploadAffinity(config: GatewayConfig, sites: SiteMap, context: ProcessContext, leases: LeaseSet): Promise<UploadAffinity> {
  const shared = sites.sites.some((site) => site.config.uploadRanges === "check" || site.upstreams.pools().some(isReplicated));
  const redis = shared && config.redis ? config.redis : null;
  const limits: UploadLimits = { perUser: config.limits.uploadsPerUser, idleMs: config.timeouts.uploadIdle };
  const affinity = await leases.take("upload-affinity", { redis }, () =>
    redis ? createUploadAffinity(redis, context.logger, limits) : context.counters.affinity(limits),
  );
  affinity.configure(limits);
  return affinity;
}

/**
 * After a reload: the old generation's stages are closed once its requests are done, or after `graceMs` at the
 * latest (they are only used as a request starts, so a long upload does not need them). Its resources carry
 * those requests' bytes and counts, so they are given back only once the requests end.
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
