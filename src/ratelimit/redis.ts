// GCRA (see limiter.ts) in Redis, so every gateway process and machine shares one count per key.
//
// - Atomic: read TAT, decide, write TAT happen in one Lua script (no read-modify-write race between
//   gateways), registered with ioredis `defineCommand` (EVALSHA, falling back to EVAL on NOSCRIPT).
// - One clock: the script reads the Redis server's TIME, so gateways with skewed clocks still agree.
// - Fail fast: no offline queue, one retry, a short command timeout. A dead Redis costs a request at
//   most commandTimeout, and while Redis is known to be down no command is sent at all (except one
//   probe per second when the connection claims to be up but commands time out).
// - On failure: failOpen decides with the in-memory limiter meanwhile (limits per process instead of
//   shared); failClosed throws LimiterUnavailableError (→ 503). Each up/down transition is logged once.
import { Cluster, Redis, type RedisOptions } from "ioredis";
import type { RedisConfig } from "../config/schema.js";
import type { Logger } from "../observe/log.js";
import { decisionOf, LimiterUnavailableError, MemoryLimiter, type LimitDecision, type Limiter, type LimitRule } from "./limiter.js";

/**
 * KEYS[1] the counter; ARGV[1] emission interval in ms (period / rate, may be fractional); ARGV[2] burst;
 * ARGV[3] cost (requests counted at once; negative: a refund, always admitted, TAT never below now).
 * Returns {allowed 0|1, remaining, retryAfterMs, resetMs}. Mirrors gcraStep() in limiter.ts.
 * TAT is stored in ms with 3 decimals; the key expires when the allowance is full again, which is the
 * same as having no key, so Redis holds only keys active within one period.
 */
export const GCRA_LUA = `
if redis.replicate_commands then pcall(redis.replicate_commands) end
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3] or '1')
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat < now then tat = now end
local nextTat = tat + interval * cost
if cost < 0 and nextTat < now then nextTat = now end
local allowAt = nextTat - interval * burst
if cost > 0 and allowAt - now > 1e-6 then
  return {0, 0, math.ceil(allowAt - now), math.ceil(tat - now)}
end
if nextTat > now then
  redis.call('SET', KEYS[1], string.format('%.3f', nextTat), 'PX', math.max(1, math.ceil(nextTat - now)))
else
  redis.call('DEL', KEYS[1])
end
return {1, math.floor((now - allowAt) / interval + 1e-6), 0, math.ceil(nextTat - now)}
`;

type GcraReply = [allowed: number, remaining: number, retryAfterMs: number, resetMs: number];

interface GcraClient {
  rgwGcra(key: string, intervalMs: string, burst: number, cost: number): Promise<GcraReply>;
}

export interface RedisLimiterOptions {
  config: RedisConfig;
  /** Decides while Redis is down, under failOpen. */
  fallback: Limiter;
  logger: Logger;
  /** Called on every up/down transition (the "Redis up" gauge). */
  onAvailability?: (up: boolean) => void;
  /** What the counts are, for the log lines on up/down transitions. Default "rate limits". */
  counts?: string;
}

/** While down with a connection that claims to be ready (commands time out), probe at most this often. */
const PROBE_EVERY_MS = 1000;

export class RedisLimiter implements Limiter {
  private readonly client: Redis | Cluster;
  private readonly gcra: GcraClient;
  private readonly failOpen: boolean;
  private up: boolean | undefined;
  private nextProbeAt = 0;
  private closed = false;

  constructor(private readonly options: RedisLimiterOptions) {
    this.failOpen = options.config.failure === "failOpen";
    this.client = createClient(options.config);
    this.client.defineCommand("rgwGcra", { numberOfKeys: 1, lua: GCRA_LUA });
    this.gcra = this.client as unknown as GcraClient;
    this.client.on("ready", () => this.setUp(true));
    // ioredis reports every failed reconnect attempt; only the transition is worth a log line.
    this.client.on("error", (err: Error) => this.setUp(false, err));
    this.client.on("close", () => this.setUp(false));
  }

  /** True once Redis answered and has not failed since (for tests and readiness). */
  get available(): boolean {
    return this.up === true;
  }

  async allow(key: string, rule: LimitRule, cost = 1): Promise<LimitDecision> {
    if (this.up === false && !this.mayProbe()) return this.whileDown(key, rule, cost);
    try {
      // The interval as text keeps its fraction exact enough and avoids ioredis number formatting.
      const reply = await this.gcra.rgwGcra(key, String(rule.periodMs / rule.rate), rule.burst, cost);
      this.setUp(true);
      const [allowed, remaining, retryAfterMs, resetMs] = reply;
      return decisionOf({ allowed: allowed === 1, remaining, retryAfterMs, resetMs }, rule);
    } catch (err) {
      this.setUp(false, err as Error);
      return this.whileDown(key, rule, cost);
    }
  }

  /**
   * Resolves true once connected, false on the first connection error or after timeoutMs. The gateway
   * starts either way; waiting only keeps the first requests from being counted locally for nothing.
   */
  waitUntilReady(timeoutMs: number): Promise<boolean> {
    if (this.client.status === "ready") return Promise.resolve(true);
    return new Promise((resolve) => {
      const settle = (ready: boolean) => {
        clearTimeout(timer);
        this.client.off("ready", onReady);
        this.client.off("error", onError);
        resolve(ready);
      };
      const onReady = () => settle(true);
      const onError = () => settle(false);
      const timer = setTimeout(() => settle(false), timeoutMs);
      this.client.once("ready", onReady);
      this.client.once("error", onError);
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    this.client.disconnect();
  }

  /** Down because the connection is gone: ioredis refuses at once, so trying costs nothing and finds recovery. */
  private mayProbe(): boolean {
    if (this.client.status !== "ready") return false;
    const now = Date.now();
    if (now < this.nextProbeAt) return false;
    this.nextProbeAt = now + PROBE_EVERY_MS;
    return true;
  }

  private whileDown(key: string, rule: LimitRule, cost: number): Promise<LimitDecision> {
    if (!this.failOpen) return Promise.reject(new LimiterUnavailableError("Redis is unavailable and redis.failure is failClosed"));
    return this.options.fallback.allow(key, rule, cost);
  }

  private setUp(up: boolean, err?: Error): void {
    if (this.up === up || this.closed) return;
    const first = this.up === undefined;
    this.up = up;
    if (!up) this.nextProbeAt = Date.now() + PROBE_EVERY_MS;
    const { logger, config } = this.options;
    const counts = this.options.counts ?? "rate limits";
    if (up) {
      logger.info({ redis: describeTarget(config) }, first ? `Redis connected: ${counts} are shared` : `Redis is back: ${counts} are shared again`);
    } else {
      const meanwhile =
        config.failure === "failOpen" ? "counting in process memory meanwhile (failOpen)" : "answering counted requests 503 meanwhile (failClosed)";
      logger.warn({ redis: describeTarget(config), err: err?.message }, `Redis unavailable: ${meanwhile}`);
    }
    this.options.onAvailability?.(up);
  }
}

/**
 * A connected Redis limiter (or one that gave up waiting: it reconnects by itself) with an in-memory fallback
 * of its own; closing it closes both.
 */
export async function openRedisLimiter(options: Omit<RedisLimiterOptions, "fallback">): Promise<Limiter> {
  const fallback = new MemoryLimiter();
  const redis = new RedisLimiter({ ...options, fallback });
  await redis.waitUntilReady(Math.max(1000, options.config.commandTimeout * 4));
  return {
    allow: (key, rule, cost) => redis.allow(key, rule, cost),
    close: async () => {
      await Promise.all([redis.close(), fallback.close()]);
    },
  };
}

export function createClient(config: RedisConfig): Redis | Cluster {
  const failFast: RedisOptions = {
    keyPrefix: config.keyPrefix,
    commandTimeout: config.commandTimeout,
    connectTimeout: Math.max(1000, config.commandTimeout * 4),
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    // Reconnect by itself, quickly: shared limits should resume within a second of Redis coming back.
    retryStrategy: (times) => Math.min(times * 100, 1000),
    // Under load, counts issued while a reply is outstanding go out together in one write: on loopback the
    // socket write is most of what a count costs the gateway, so batching keeps the overhead down.
    enableAutoPipelining: true,
  };
  if (config.cluster) {
    const { keyPrefix, enableOfflineQueue, retryStrategy, enableAutoPipelining, ...nodeOptions } = failFast;
    return new Cluster(config.cluster, {
      keyPrefix,
      enableOfflineQueue,
      enableAutoPipelining,
      clusterRetryStrategy: retryStrategy,
      redisOptions: { ...nodeOptions, password: config.password },
    });
  }
  if (config.sentinels) {
    return new Redis({ ...failFast, sentinels: config.sentinels, name: config.name, password: config.password, sentinelPassword: config.password });
  }
  return new Redis(config.url!, failFast);
}

/** For logs: where Redis is, never its password. */
function describeTarget(config: RedisConfig): string {
  if (config.cluster) return `cluster ${config.cluster.map((n) => `${n.host}:${n.port}`).join(",")}`;
  if (config.sentinels) return `sentinel ${config.name} via ${config.sentinels.map((n) => `${n.host}:${n.port}`).join(",")}`;
  const url = new URL(config.url!);
  url.username = "";
  url.password = "";
  return url.href;
}
