// Which replica holds an upload session. distribution keeps an upload's state on the replica's disk, so
// every request of one upload (POST → PATCH… → PUT, keyed by the upload UUID) must reach the replica that
// started it. In process memory that holds for one gateway; with Redis, for every gateway sharing it.
//
// Redis is written through, not relied on: the gateway that started an upload also keeps it in memory, so
// while Redis is down its own uploads still work, and only a session it has never seen cannot be placed
// (AffinityUnavailableError: the caller answers 503 rather than send a PATCH to a replica that would
// answer BLOB_UPLOAD_UNKNOWN and fail the push).
import type { RedisConfig } from "../config/schema.js";
import type { Logger } from "../observe/log.js";

export interface UploadAffinity {
  /** Remembers that `member` (an origin) started upload `uuid` in pool `pool`. */
  remember(pool: string, uuid: string, member: string): Promise<void>;
  /** The member holding the upload; null when not known. Rejects with AffinityUnavailableError when it cannot tell (Redis down and not known locally). */
  lookup(pool: string, uuid: string): Promise<string | null>;
  /** After the upload finished (PUT 201) or was cancelled (DELETE 204). */
  forget(pool: string, uuid: string): Promise<void>;
  close(): Promise<void>;
}

export class AffinityUnavailableError extends Error {
  override readonly name = "AffinityUnavailableError";
}

export interface AffinityOptions {
  /** How long a session is remembered. Default 7 days: distribution purges uploads older than a week. */
  ttlMs?: number;
  /** At most this many sessions in memory; the oldest is forgotten first. Default 100 000. */
  maxEntries?: number;
  /** The clock, for tests. */
  now?: () => number;
}

const WEEK_MS = 7 * 24 * 60 * 60 * 1000;

interface Entry {
  member: string;
  expiresAt: number;
}

export class MemoryAffinity implements UploadAffinity {
  readonly ttlMs: number;
  private readonly maxEntries: number;
  private readonly now: () => number;
  /** In insertion order, and every entry lives ttlMs: the first entry is always the next to expire. */
  private readonly entries = new Map<string, Entry>();

  constructor(options: AffinityOptions = {}) {
    this.ttlMs = options.ttlMs ?? WEEK_MS;
    this.maxEntries = options.maxEntries ?? 100_000;
    this.now = options.now ?? Date.now;
  }

  get size(): number {
    return this.entries.size;
  }

  async remember(pool: string, uuid: string, member: string): Promise<void> {
    this.set(pool, uuid, member);
  }

  async lookup(pool: string, uuid: string): Promise<string | null> {
    return this.get(pool, uuid);
  }

  async forget(pool: string, uuid: string): Promise<void> {
    this.delete(pool, uuid);
  }

  async close(): Promise<void> {
    this.entries.clear();
  }

  // Synchronous forms, for RedisAffinity's write-through.
  set(pool: string, uuid: string, member: string): void {
    const key = memoryKey(pool, uuid);
    this.entries.delete(key); // re-inserted at the end: its expiry is now the latest
    this.entries.set(key, { member, expiresAt: this.now() + this.ttlMs });
    this.prune();
  }

  get(pool: string, uuid: string): string | null {
    const key = memoryKey(pool, uuid);
    const entry = this.entries.get(key);
    if (!entry) return null;
    if (entry.expiresAt <= this.now()) {
      this.entries.delete(key);
      return null;
    }
    return entry.member;
  }

  delete(pool: string, uuid: string): void {
    this.entries.delete(memoryKey(pool, uuid));
  }

  /** Drops expired entries from the front, then the oldest beyond maxEntries: O(1) per call on average. */
  private prune(): void {
    const now = this.now();
    for (const [key, entry] of this.entries) {
      if (entry.expiresAt > now && this.entries.size <= this.maxEntries) break;
      this.entries.delete(key);
    }
  }
}

/** A pool name may contain ":", a NUL cannot appear in either part. */
function memoryKey(pool: string, uuid: string): string {
  return `${pool}\0${uuid}`;
}


/** With Redis, the store every gateway shares; loaded only then (ioredis alone is ~18 MB of RSS). */
export async function createUploadAffinity(redis: RedisConfig | undefined, logger: Logger): Promise<UploadAffinity> {
  if (!redis) return new MemoryAffinity();
  const { RedisAffinity } = await import("./affinity-redis.js");
  return new RedisAffinity(redis, logger);
}
