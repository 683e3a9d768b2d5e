// Upload affinity in Redis (see affinity.ts): written through, the gateway's own memory first. In a module
// of its own so that a gateway without Redis never loads ioredis.
//
// Keys, both expiring after the idle time and refreshed by every use, so Redis holds at most `perUser`
// sessions per owner and nothing of an owner that went away:
//   upload:{OWNER}:POOL:REPOSITORY:UUID   the member holding the session
//   uploads:{OWNER}                       sorted set of the owner's session keys, scored by last use
//   upload:{OWNER}:POOL:REPOSITORY:UUID#progress   where the upload stands (uploads/offsets.ts), as JSON;
//                                         named after its session key, so every script that drops a
//                                         session drops it too, and it expires with it
// The owner is the hash tag: an owner's keys share a Redis Cluster slot, so each script touches one slot.
// Anonymous owners (client addresses) have no bound on their number, so their sessions also share one pool
// of at most maxAnonymous, whose least recently used session goes for a new one (affinity.ts); their keys
// all carry the hash tag {anonymous}, in one slot with the pool:
//   upload:{anonymous}OWNER:POOL:REPOSITORY:UUID, uploads:{anonymous}OWNER   as above
//   uploads-pool:{anonymous}         sorted set of every anonymous session key, scored by last use
//   uploads-pool-owner:{anonymous}   hash: anonymous session key → its owner's set, to drop it there too
// Scripts read Redis's own clock (TIME), so gateways with skewed clocks agree on what is idle.
import type { Cluster, Redis } from "ioredis";
import type { RedisConfig } from "../config/schema.js";
import type { Logger } from "../observe/log.js";
import { createClient } from "../ratelimit/redis.js";
import type { UploadProgress } from "../uploads/offsets.js";
import {
  AffinityUnavailableError,
  DEFAULT_MAX_ANONYMOUS,
  MemoryAffinity,
  type AffinityOptions,
  type UploadAffinity,
  type UploadKey,
  type UploadLimits,
  type UploadRecord,
} from "./affinity.js";

const NOW_MS = `local t = redis.call('TIME') local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`;

/**
 * KEYS: session, owner's set, and for an anonymous owner the pool and its owner hash. ARGV: member, idle ms,
 * per-user cap, pool cap, progress ('' for none). Returns how many of the owner's sessions it forgot.
 */
const REMEMBER_LUA = `${NOW_MS}
local idle = tonumber(ARGV[2])
local cap = tonumber(ARGV[3])
local stale = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now - idle)
for _, key in ipairs(stale) do redis.call('DEL', key, key .. '#progress') end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - idle)
redis.call('SET', KEYS[1], ARGV[1], 'PX', idle)
if ARGV[5] ~= '' then redis.call('SET', KEYS[1] .. '#progress', ARGV[5], 'PX', idle) else redis.call('DEL', KEYS[1] .. '#progress') end
redis.call('ZADD', KEYS[2], now, KEYS[1])
local over = redis.call('ZCARD', KEYS[2]) - cap
if over > 0 then
  -- The oldest others: a session started in the same millisecond as the oldest would sort among them (ties
  -- go by name), and the one being remembered is never the one it makes room by forgetting.
  local oldest = redis.call('ZRANGE', KEYS[2], 0, over)
  local forgotten = 0
  for _, key in ipairs(oldest) do
    if key ~= KEYS[1] and forgotten < over then
      redis.call('DEL', key, key .. '#progress')
      redis.call('ZREM', KEYS[2], key)
      forgotten = forgotten + 1
    end
  end
else
  over = 0
end
redis.call('PEXPIRE', KEYS[2], idle)
if KEYS[3] then
  local poolStale = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now - idle)
  for _, key in ipairs(poolStale) do redis.call('HDEL', KEYS[4], key) end
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - idle)
  redis.call('ZADD', KEYS[3], now, KEYS[1])
  redis.call('HSET', KEYS[4], KEYS[1], KEYS[2])
  local poolOver = redis.call('ZCARD', KEYS[3]) - tonumber(ARGV[4])
  if poolOver > 0 then
    local oldest = redis.call('ZRANGE', KEYS[3], 0, poolOver)
    local forgotten = 0
    for _, key in ipairs(oldest) do
      if key ~= KEYS[1] and forgotten < poolOver then
        local owner = redis.call('HGET', KEYS[4], key)
        if owner then redis.call('ZREM', owner, key) end
        redis.call('DEL', key, key .. '#progress')
        redis.call('HDEL', KEYS[4], key)
        redis.call('ZREM', KEYS[3], key)
        forgotten = forgotten + 1
      end
    end
  end
  redis.call('PEXPIRE', KEYS[3], idle)
  redis.call('PEXPIRE', KEYS[4], idle)
end
return over`;

/**
 * KEYS: session, owner's set (and the anonymous pool, its hash). ARGV: idle ms. The member and its progress
 * ('' when none; the session now counts as used), or nil.
 */
const LOOKUP_LUA = `${NOW_MS}
local idle = tonumber(ARGV[1])
local member = redis.call('GET', KEYS[1])
if not member then return nil end
local progress = redis.call('GET', KEYS[1] .. '#progress') or ''
redis.call('PEXPIRE', KEYS[1], idle)
redis.call('PEXPIRE', KEYS[1] .. '#progress', idle)
redis.call('ZADD', KEYS[2], now, KEYS[1])
redis.call('PEXPIRE', KEYS[2], idle)
if KEYS[3] then
  redis.call('ZADD', KEYS[3], 'XX', now, KEYS[1])
  redis.call('PEXPIRE', KEYS[3], idle)
  redis.call('PEXPIRE', KEYS[4], idle)
end
return {member, progress}`;

/** KEYS: session. ARGV: progress, idle ms. Written only while the session is known: a forgotten one stays forgotten. */
const ADVANCE_LUA = `if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('SET', KEYS[1] .. '#progress', ARGV[1], 'PX', tonumber(ARGV[2]))
return 1`;

/** KEYS: session, owner's set (and the anonymous pool, its hash). */
const FORGET_LUA = `redis.call('DEL', KEYS[1], KEYS[1] .. '#progress')
redis.call('ZREM', KEYS[2], KEYS[1])
if KEYS[3] then
  redis.call('ZREM', KEYS[3], KEYS[1])
  redis.call('HDEL', KEYS[4], KEYS[1])
end
return 0`;

/** ioredis's form of a script with a varying number of keys: the count first, then keys, then arguments. */
interface AffinityClient {
  rgwUploadRemember(numberOfKeys: number, ...keysAndArgs: (string | number)[]): Promise<number>;
  rgwUploadLookup(numberOfKeys: number, ...keysAndArgs: (string | number)[]): Promise<[string, string] | null>;
  rgwUploadAdvance(numberOfKeys: number, ...keysAndArgs: (string | number)[]): Promise<number>;
  rgwUploadForget(numberOfKeys: number, ...keys: string[]): Promise<number>;
}

export class RedisAffinity implements UploadAffinity {
  private readonly memory: MemoryAffinity;
  private readonly maxAnonymous: number;
  private readonly client: Redis | Cluster;
  private readonly scripts: AffinityClient;
  private up: boolean | undefined;
  private closed = false;

  constructor(
    config: RedisConfig,
    private readonly logger: Logger,
    options: AffinityOptions = {},
  ) {
    this.memory = new MemoryAffinity(options);
    this.maxAnonymous = options.maxAnonymous ?? DEFAULT_MAX_ANONYMOUS;
    this.client = createClient(config);
    // Session keys written by a script are named in the owner's set with the client's keyPrefix already on:
    // the scripts use them as they are.
    this.client.defineCommand("rgwUploadRemember", { lua: REMEMBER_LUA });
    this.client.defineCommand("rgwUploadLookup", { lua: LOOKUP_LUA });
    this.client.defineCommand("rgwUploadForget", { lua: FORGET_LUA });
    this.client.defineCommand("rgwUploadAdvance", { lua: ADVANCE_LUA });
    this.scripts = this.client as unknown as AffinityClient;
    this.client.on("ready", () => this.setUp(true));
    // ioredis reports every failed reconnect attempt; only the transition is worth a log line.
    this.client.on("error", (err: Error) => this.setUp(false, err));
    this.client.on("close", () => this.setUp(false));
  }

  /** True once Redis answered and has not failed since (for tests and readiness). */
  get available(): boolean {
    return this.up === true;
  }

  private get limits(): UploadLimits {
    return this.memory.limits;
  }

  async admits(key: UploadKey): Promise<boolean> {
    // Redis bounds sessions per owner and by idle time; with Redis away, this gateway's memory is the store.
    return this.up === true || this.memory.hasRoom(key);
  }

  async remember(key: UploadKey, member: string, progress?: UploadProgress): Promise<boolean> {
    const kept = this.memory.set(key, member, this.limits, progress);
    try {
      const keys = keysOf(key);
      const encoded = progress ? JSON.stringify(progress) : "";
      await this.scripts.rgwUploadRemember(keys.length, ...keys, member, this.limits.idleMs, this.limits.perUser, this.maxAnonymous, encoded);
      this.setUp(true);
      return true;
    } catch (err) {
      // Not fatal: this gateway still routes the upload from memory; only other gateways cannot.
      this.setUp(false, err as Error);
      return kept;
    }
  }

  async lookup(key: UploadKey): Promise<string | null> {
    return (await this.record(key))?.member ?? null;
  }

  async record(key: UploadKey): Promise<UploadRecord | null> {
    let record: UploadRecord | null;
    try {
      // Asked every time, known here or not: each use refreshes the session's idle time for every gateway.
      const keys = keysOf(key);
      const found = await this.scripts.rgwUploadLookup(keys.length, ...keys, this.limits.idleMs);
      record = found === null ? null : { member: found[0], ...progressOf(found[1]) };
      this.setUp(true);
    } catch (err) {
      this.setUp(false, err as Error);
      const known = this.memory.getRecord(key);
      if (known !== null) return known;
      throw new AffinityUnavailableError(`Redis is unavailable and upload ${key.uuid} was not started through this gateway`);
    }
    // Kept locally too, so this gateway can still place the upload's next requests if Redis goes away.
    if (record !== null) this.memory.set(key, record.member, this.limits, record.progress);
    // Redis answered: its word stands. A session it dropped (its per-owner bound, idle time, or a forget
    // through another gateway) is gone for every gateway alike, so Redis's bounds hold for all of them.
    else this.memory.delete(key);
    return record;
  }

  async advance(key: UploadKey, progress: UploadProgress): Promise<void> {
    this.memory.setProgress(key, progress);
    try {
      await this.scripts.rgwUploadAdvance(1, sessionKey(key), JSON.stringify(progress), this.limits.idleMs);
      this.setUp(true);
    } catch (err) {
      // Other gateways then check the next chunk against an older offset and refuse it, or see none: the
      // backend's next answer sets it right.
      this.setUp(false, err as Error);
    }
  }

  async forget(key: UploadKey): Promise<void> {
    this.memory.delete(key);
    try {
      const keys = keysOf(key);
      await this.scripts.rgwUploadForget(keys.length, ...keys);
      this.setUp(true);
    } catch (err) {
      // The key expires with its idle time; a finished upload's UUID is never used again.
      this.setUp(false, err as Error);
    }
  }

  configure(limits: UploadLimits): void {
    this.memory.configure(limits);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.client.disconnect();
    await this.memory.close();
  }

  private setUp(up: boolean, err?: Error): void {
    if (this.up === up || this.closed) return;
    const first = this.up === undefined;
    this.up = up;
    // No Redis address in these lines: a URL may carry a password.
    if (up) {
      this.logger.info(first ? "Redis connected: upload sessions are shared" : "Redis is back: upload sessions are shared again");
    } else {
      this.logger.warn(
        { err: err?.message },
        "Redis unavailable: upload sessions are remembered in process memory meanwhile (uploads started through another gateway cannot be placed)",
      );
    }
  }
}

/** A stored progress, or none when absent or not of this form (a record written by an older gateway). */
function progressOf(encoded: string): { progress?: UploadProgress } {
  if (encoded === "") return {};
  try {
    const value = JSON.parse(encoded) as UploadProgress;
    const offsetOk = value.offset === null || Number.isSafeInteger(value.offset);
    return offsetOk && typeof value.location === "string" ? { progress: { offset: value.offset, location: value.location } } : {};
  } catch {
    return {};
  }
}

/** The script's keys: session, owner's set, and for an anonymous owner the pool and its owner hash. */
function keysOf(key: UploadKey): string[] {
  const keys = [sessionKey(key), ownerKey(key)];
  return key.anonymous ? [...keys, "uploads-pool:{anonymous}", "uploads-pool-owner:{anonymous}"] : keys;
}

/**
 * The owner between braces: Redis Cluster hashes only that, so an owner's keys live in one slot. Anonymous
 * owners' keys all hash as {anonymous}, the slot of their shared pool.
 */
function ownerTag(key: UploadKey): string {
  return key.anonymous ? `{anonymous}${key.owner}` : `{${key.owner}}`;
}

function ownerKey(key: UploadKey): string {
  return `uploads:${ownerTag(key)}`;
}

function sessionKey(key: UploadKey): string {
  return `upload:${ownerTag(key)}:${key.pool}:${key.repository}:${key.uuid}`;
}
