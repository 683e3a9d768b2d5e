// Pipeline stage 5: site : limit : principal-or-IP → admitted (with RateLimit headers for the response)
// or refused (429 with Retry-After). Built once per configuration; a request no limit counts costs one
// map lookup and no await, a counted one costs one limiter call per matching limit, issued together
// (one Redis round trip: ioredis pipelines calls made in the same tick into one write).
import type { RegistryRoute } from "../registry/routes.js";
import type { Site } from "../sites.js";
import { LimiterUnavailableError, type LimitDecision, type Limiter } from "./limiter.js";
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

/**
 * Where a limit counts. Its counters are not the stage's: the process keeps them across reloads (the same
 * limit keeps counting, a changed one starts afresh) and closes them.
 */
export type LimitCounters = (limit: CompiledLimit) => Limiter | Promise<Limiter>;

export class RateLimitStage {
  constructor(
    private readonly limitsBySite: ReadonlyMap<Site, SiteLimits>,
    /** Every compiled limit's counter. */
    private readonly limiters: ReadonlyMap<CompiledLimit, Limiter>,
    private readonly events: RateLimitEvents | null,
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
      decisions = await Promise.all(limits.map((limit) => this.limiters.get(limit)!.allow(limitKey(limit, who), ruleFor(limit, who))));
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

/** The stage for `sites`, or null when no site has limits (then no counter is even asked for). */
export async function createRateLimitStage(sites: readonly Site[], events: RateLimitEvents | null, countersFor: LimitCounters): Promise<RateLimitStage | null> {
  const limitsBySite = new Map<Site, SiteLimits>();
  for (const site of sites) {
    const compiled = compileSiteLimits(site.name, site.config.limits);
    if (compiled) limitsBySite.set(site, compiled);
  }
  if (limitsBySite.size === 0) return null;
  const limiters = new Map<CompiledLimit, Limiter>();
  for (const siteLimits of limitsBySite.values()) {
    for (const limits of siteLimits.values()) for (const limit of limits) if (!limiters.has(limit)) limiters.set(limit, await countersFor(limit));
  }
  return new RateLimitStage(limitsBySite, limiters, events);
}

/** What a limit's counts depend on: a reload that changes any of it starts the limit afresh. */
export function limitSettings(limit: CompiledLimit): unknown {
  return { keyStem: limit.keyStem, keyBy: limit.keyBy, rule: limit.rule, overrides: limit.overrides };
}
