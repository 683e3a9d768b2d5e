// The limiter seam: one method, `allow(key, rule)` (Traefik's shape), and the algorithm behind both
// implementations, in memory here and in Redis (redis.ts runs the same steps in Lua).
//
// Algorithm: GCRA (the generic cell rate algorithm, a.k.a. "virtual scheduling" leaky bucket). Why:
// - one number per key (the theoretical arrival time, TAT), read and written once: O(1) time and memory,
//   one Redis key and one round trip, where a sliding log keeps a sorted set of every request;
// - the burst is exact (`burst` requests back to back from rest, never `2 × rate` at a window edge as
//   with fixed windows), and refill is smooth (one request every `per / rate`);
// - retry-after and remaining fall out of the same arithmetic, no second query.
// A sliding-window counter would approximate; a token bucket needs two fields (tokens, timestamp).

export interface LimitRule {
  /** Requests admitted per period on average; what RateLimit-Limit reports. */
  rate: number;
  /** The period (window) in ms; whole seconds, as RateLimit headers give `w=` in seconds. */
  periodMs: number;
  /** Requests admitted back to back from a full allowance. */
  burst: number;
}

export interface LimitDecision {
  allowed: boolean;
  /** The rule's rate, for RateLimit-Limit. */
  limit: number;
  /** Requests that would be admitted right now, back to back, after this one. */
  remaining: number;
  /** When refused: whole seconds until a request would be admitted (≥ 1); 0 when allowed. */
  retryAfterSeconds: number;
  /** Whole seconds until the allowance is full again (burst requests available). */
  resetSeconds: number;
}

export interface Limiter {
  /**
   * Counts `cost` requests (default 1) against key under rule, only if admitted, and says whether they are.
   * A negative cost is a refund: always admitted, it gives back allowance (never more than a full one).
   */
  allow(key: string, rule: LimitRule, cost?: number): Promise<LimitDecision>;
  close(): Promise<void>;
}

/** Thrown by a limiter that cannot decide (shared store down, failClosed): the request gets a 503. */
export class LimiterUnavailableError extends Error {
  override readonly name = "LimiterUnavailableError";
}

/** One GCRA step; `tat` is the new value to store (unchanged when refused). All times in ms. */
export interface GcraStep {
  allowed: boolean;
  remaining: number;
  retryAfterMs: number;
  resetMs: number;
  tat: number;
}

/**
 * Floating-point slack: with a period not divisible by the rate, (now − allowAt) / interval can come out
 * as 0.9999999 for what is exactly one request.
 */
const EPSILON = 1e-6;

/**
 * `cost` requests at once: the TAT moves by `interval × cost`. A negative cost is a refund (a failed-login
 * charge given back once the password proved right): always allowed, and the TAT never goes below now,
 * so a refund never banks allowance beyond a full bucket.
 */
export function gcraStep(storedTat: number | undefined, now: number, rule: LimitRule, cost = 1): GcraStep {
  const interval = rule.periodMs / rule.rate;
  const tolerance = interval * rule.burst;
  const tat = storedTat === undefined || storedTat < now ? now : storedTat;
  const next = cost < 0 ? Math.max(now, tat + interval * cost) : tat + interval * cost;
  const allowAt = next - tolerance;
  if (cost > 0 && allowAt - now > EPSILON) {
    return { allowed: false, remaining: 0, retryAfterMs: allowAt - now, resetMs: tat - now, tat };
  }
  return { allowed: true, remaining: Math.floor((now - allowAt) / interval + EPSILON), retryAfterMs: 0, resetMs: next - now, tat: next };
}

export function decisionOf(step: Pick<GcraStep, "allowed" | "remaining" | "retryAfterMs" | "resetMs">, rule: LimitRule): LimitDecision {
  return {
    allowed: step.allowed,
    limit: rule.rate,
    remaining: step.remaining,
    // Rounded up and at least 1: a client retrying early would only be refused again.
    retryAfterSeconds: step.allowed ? 0 : Math.max(1, Math.ceil(step.retryAfterMs / 1000 - EPSILON)),
    resetSeconds: Math.max(0, Math.ceil(step.resetMs / 1000 - EPSILON)),
  };
}

export interface MemoryLimiterOptions {
  /** Milliseconds; injectable for tests. */
  now?: () => number;
  /** How often keys whose allowance is full again are dropped. */
  sweepEveryMs?: number;
}

/**
 * GCRA in process memory: the embedded default without Redis, and the stand-in while Redis is down
 * (failOpen). A key whose TAT has passed means "full allowance", the same as no key, so sweeping such
 * keys keeps memory bounded by the keys active within one period.
 */
export class MemoryLimiter implements Limiter {
  private readonly tats = new Map<string, number>();
  private readonly now: () => number;
  private readonly sweeper: NodeJS.Timeout;

  constructor(options: MemoryLimiterOptions = {}) {
    this.now = options.now ?? Date.now;
    this.sweeper = setInterval(() => this.sweep(), options.sweepEveryMs ?? 30_000);
    this.sweeper.unref();
  }

  allow(key: string, rule: LimitRule, cost = 1): Promise<LimitDecision> {
    return Promise.resolve(this.allowNow(key, rule, cost));
  }

  allowNow(key: string, rule: LimitRule, cost = 1): LimitDecision {
    const now = this.now();
    const step = gcraStep(this.tats.get(key), now, rule, cost);
    if (step.allowed) {
      // A full allowance is the same as no key: a refund that empties the debt frees the key at once.
      if (step.tat > now) this.tats.set(key, step.tat);
      else this.tats.delete(key);
    }
    return decisionOf(step, rule);
  }

  /** Keys currently held (for tests and diagnostics). */
  get size(): number {
    return this.tats.size;
  }

  sweep(): void {
    const now = this.now();
    for (const [key, tat] of this.tats) if (tat <= now) this.tats.delete(key);
  }

  async close(): Promise<void> {
    clearInterval(this.sweeper);
    this.tats.clear();
  }
}
