// Pipeline stage 5: site : limit : principal-or-IP → admitted (with RateLimit headers for the response)
// or refused (429 with Retry-After). Built once per configuration; a request no limit counts costs one
// map lookup and no await, a counted one costs one limiter call per matching limit, issued together
// (one Redis round trip: ioredis pipelines calls made in the same tick into one write).
import type { GatewayConfig } from "../config/schema.js";
import type { Logger } from "../observe/log.js";
import type { RegistryRoute } from "../registry/routes.js";
import type { Site } from "../sites.js";
import { memoryLimits } from "../cluster/shared.js";
import { LimiterUnavailableError, MemoryLimiter, type LimitDecision, type Limiter } from "./limiter.js";
import { compileSiteLimits, limitKey, requestClass, ruleFor, type CompiledLimit, type Requester, type SiteLimits } from "./policy.js";

export type RateLimitVerdict =
  /** `headers`: a flat [name, value, …] list for the response. */
  | { kind: "admitted"; headers: string[] }
  | { kind: "refused"; limit: string; message: string; headers: Record<string, string> }
  | { kind: "unavailable" };

/** What the stage reports (observe/metrics.ts has exactly these methods). */
export interface RateLimitEvents {
  rateLimited(site: string, limit: string): void;
  setRedisUp(up: boolean): void;
}

export class RateLimitStage {
  constructor(
    private readonly limitsBySite: ReadonlyMap<Site, SiteLimits>,
    private readonly limiter: Limiter,
    private readonly events: RateLimitEvents | null,
    private readonly fallback: Limiter | null = null,
  ) {}

  /** null when no limit of the site counts this request: nothing to wait for. */
  check(site: Site, route: RegistryRoute, method: string, who: Requester): Promise<RateLimitVerdict> | null {
    const siteLimits = this.limitsBySite.get(site);
    if (!siteLimits) return null;
    const counted = requestClass(method, route);
    const limits = counted && siteLimits.get(counted);
    if (!limits) return null;
    return this.decide(site, limits, who);
  }

  private async decide(site: Site, limits: readonly CompiledLimit[], who: Requester): Promise<RateLimitVerdict> {
    let decisions: LimitDecision[];
    try {
      decisions = await Promise.all(limits.map((limit) => this.limiter.allow(limitKey(limit, who), ruleFor(limit, who))));
    } catch (err) {
      if (err instanceof LimiterUnavailableError) return { kind: "unavailable" };
      throw err;
    }
    // Each limit counts independently: a limit that admits is charged even if another refuses.
    let reported = 0;
    for (let i = 1; i < decisions.length; i++) if (reportsBetter(decisions[i]!, decisions[reported]!)) reported = i;
    const decision = decisions[reported]!;
    const limit = limits[reported]!;
    const windowSeconds = ruleFor(limit, who).periodMs / 1000;
    if (decision.allowed) return { kind: "admitted", headers: rateLimitHeaders(decision, windowSeconds) };
    this.events?.rateLimited(site.name, limit.name);
    const headers = rateLimitHeaders(decision, windowSeconds);
    const record: Record<string, string> = { "Retry-After": String(decision.retryAfterSeconds) };
    for (let i = 0; i < headers.length; i += 2) record[headers[i]!] = headers[i + 1]!;
    return {
      kind: "refused",
      limit: limit.name,
      headers: record,
      message: `rate limit "${limit.name}" exceeded: ${decision.limit} per ${windowSeconds} s; retry in ${decision.retryAfterSeconds} s`,
    };
  }

  async close(): Promise<void> {
    await Promise.all([this.limiter.close(), this.fallback?.close()]);
  }
}

/** The decision the response reports: a refusal over an admission, the longest wait, the fewest remaining. */
function reportsBetter(a: LimitDecision, b: LimitDecision): boolean {
  if (a.allowed !== b.allowed) return !a.allowed;
  return a.allowed ? a.remaining < b.remaining : a.retryAfterSeconds > b.retryAfterSeconds;
}

/** Docker Hub's form: `RateLimit-Limit: 100;w=21600`, `RateLimit-Remaining: 76;w=21600`. */
export function rateLimitHeaders(decision: Pick<LimitDecision, "limit" | "remaining">, windowSeconds: number): string[] {
  return ["RateLimit-Limit", `${decision.limit};w=${windowSeconds}`, "RateLimit-Remaining", `${decision.remaining};w=${windowSeconds}`];
}

/**
 * The stage for a configuration, or null when no site has limits (then Redis is not even connected).
 * With `redis` configured the counters are shared through it; without, they live in this process.
 */
export async function createRateLimitStage(
  config: Pick<GatewayConfig, "redis">,
  sites: readonly Site[],
  logger: Logger,
  events: RateLimitEvents | null,
): Promise<RateLimitStage | null> {
  const limitsBySite = new Map<Site, SiteLimits>();
  for (const site of sites) {
    const compiled = compileSiteLimits(site.name, site.config.limits);
    if (compiled) limitsBySite.set(site, compiled);
  }
  if (limitsBySite.size === 0) return null;
  if (!config.redis) return new RateLimitStage(limitsBySite, memoryLimits("limits"), events);
  const memory = new MemoryLimiter();
  // Loaded only when configured: ioredis alone adds ~18 MB to the resident size of every gateway.
  const { RedisLimiter } = await import("./redis.js");
  const redis = new RedisLimiter({
    config: config.redis,
    fallback: memory,
    logger,
    onAvailability: (up) => events?.setRedisUp(up),
  });
  await redis.waitUntilReady(Math.max(1000, config.redis.commandTimeout * 4));
  return new RateLimitStage(limitsBySite, redis, events, memory);
}
