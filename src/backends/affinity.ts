// Which replica holds an upload session. distribution keeps an upload's state on the replica's disk, so
// every request of one upload (POST → PATCH… → PUT, keyed by the upload UUID) must reach the replica that
// started it. In process memory that holds for one gateway; with Redis, for every gateway sharing it.
//
// A session is named by its pool, repository, UUID AND the user who started it (UploadKey): the UUID is no
// secret (it is in Docker-Upload-UUID and access logs), so it must not be enough to reach, refresh or end
// someone else's session. A request for a session by anyone else, or under another repository, finds
// nothing. Each user holds at most `perUser` sessions (starting one more forgets that user's least recently
// used one, never another user's), and a session unused for `idleMs` is forgotten.
//
// Redis is written through, not relied on: the gateway that started an upload also keeps it in memory, so
// while Redis is down its own uploads still work, and only a session it has never seen cannot be placed
// (AffinityUnavailableError: the caller answers 503 rather than send a PATCH to a replica that would
// answer BLOB_UPLOAD_UNKNOWN and fail the push).
import type { RedisConfig } from "../config/schema.js";
import type { Logger } from "../observe/log.js";

export interface UploadKey {
  pool: string;
  repository: string;
  uuid: string;
  /** Who started the session, scoped to its site (dispatch.ts uploadOwner): only they may use it. */
  owner: string;
}

export interface UploadLimits {
  /** Open sessions one owner may hold; the next start forgets that owner's least recently used one. */
  perUser: number;
  /** A session not used for this long is forgotten (each request of the upload refreshes it). */
  idleMs: number;
}

export interface UploadAffinity {
  /** Remembers that `member` (an origin) holds the session; may forget the owner's least recently used one. */
  remember(key: UploadKey, member: string): Promise<void>;
  /**
   * The member holding the session, refreshing its idle time; null when not known (to this owner, under this
   * repository). Rejects with AffinityUnavailableError when it cannot tell (Redis down and not known locally).
   */
  lookup(key: UploadKey): Promise<string | null>;
  /** After the upload finished (PUT 201) or its owner cancelled it (DELETE 204). */
  forget(key: UploadKey): Promise<void>;
  /** New limits from a reload; sessions already open are kept. */
  configure(limits: UploadLimits): void;
  close(): Promise<void>;
}

export class AffinityUnavailableError extends Error {
  override readonly name = "AffinityUnavailableError";
}

export const DEFAULT_UPLOAD_LIMITS: UploadLimits = { perUser: 64, idleMs: 60 * 60 * 1000 };

export interface AffinityOptions {
  limits?: UploadLimits;
  /**
   * Sessions held in all, whoever started them: a last bound for sites whose owners are client addresses
   * (anonymous pushes from many addresses). At the bound a new session is not remembered (its upload then
   * fails on its first PATCH); no open session is forgotten for it. Default 100 000.
   */
  maxEntries?: number;
  /** The clock, for tests. */
  now?: () => number;
}

interface Entry {
  id: string;
  owner: string;
  member: string;
  lastUsed: number;
}

export class MemoryAffinity implements UploadAffinity {
  limits: UploadLimits;
  private readonly maxEntries: number;
  private readonly now: () => number;
  /** Least recently used first: expired entries are always at the front. */
  private readonly entries = new Map<string, Entry>();
  /** The same entries per owner, least recently used first. */
  private readonly byOwner = new Map<string, Map<string, Entry>>();

  constructor(options: AffinityOptions = {}) {
    this.limits = options.limits ?? DEFAULT_UPLOAD_LIMITS;
    this.maxEntries = options.maxEntries ?? 100_000;
    this.now = options.now ?? Date.now;
  }

  get size(): number {
    return this.entries.size;
  }

  /** Sessions `owner` holds (expired ones included until pruned). */
  sizeOf(owner: string): number {
    return this.byOwner.get(owner)?.size ?? 0;
  }

  async remember(key: UploadKey, member: string): Promise<void> {
    this.set(key, member);
  }

  async lookup(key: UploadKey): Promise<string | null> {
    return this.get(key);
  }

  async forget(key: UploadKey): Promise<void> {
    this.delete(key);
  }

  configure(limits: UploadLimits): void {
    this.limits = limits;
  }

  async close(): Promise<void> {
    this.entries.clear();
    this.byOwner.clear();
  }

  // Synchronous forms, for RedisAffinity's write-through and the cluster primary. `limits` given by the
  // caller (a worker's configuration) win over this store's own.

  /** False when the store is full (maxEntries) and the session was not remembered. */
  set(key: UploadKey, member: string, limits = this.limits): boolean {
    this.prune(limits);
    const id = entryId(key);
    this.remove(id);
    const entry: Entry = { id, owner: key.owner, member, lastUsed: this.now() };
    this.entries.set(id, entry);
    let own = this.byOwner.get(key.owner);
    if (!own) this.byOwner.set(key.owner, (own = new Map()));
    own.set(id, entry);
    // Only this owner's own least recently used sessions make room for its new one.
    for (const oldest of own.keys()) {
      if (own.size <= limits.perUser) break;
      this.remove(oldest);
    }
    if (this.entries.size <= this.maxEntries) return true;
    this.remove(id);
    return false;
  }

  /** The member, and the session counts as used now; null when unknown or idle too long. */
  get(key: UploadKey, limits = this.limits): string | null {
    const id = entryId(key);
    const entry = this.entries.get(id);
    if (!entry) return null;
    const now = this.now();
    if (entry.lastUsed + limits.idleMs <= now) {
      this.remove(id);
      return null;
    }
    // Moved to the back of both orders: most recently used.
    this.remove(id);
    entry.lastUsed = now;
    this.entries.set(id, entry);
    let own = this.byOwner.get(entry.owner);
    if (!own) this.byOwner.set(entry.owner, (own = new Map()));
    own.set(id, entry);
    return entry.member;
  }

  delete(key: UploadKey): void {
    this.remove(entryId(key));
  }

  private remove(id: string): void {
    const entry = this.entries.get(id);
    if (!entry) return;
    this.entries.delete(id);
    const own = this.byOwner.get(entry.owner);
    own?.delete(id);
    if (own?.size === 0) this.byOwner.delete(entry.owner);
  }

  /** Drops idle entries from the front: O(1) per call on average. */
  private prune(limits: UploadLimits): void {
    const idleSince = this.now() - limits.idleMs;
    for (const [id, entry] of this.entries) {
      if (entry.lastUsed > idleSince) break;
      this.remove(id);
    }
  }
}

/** No part contains a NUL (pool names and owners are joined with one where they could hold ":"). */
function entryId(key: UploadKey): string {
  return `${key.owner}\0${key.pool}\0${key.repository}\0${key.uuid}`;
}

/** With Redis, the store every gateway shares; loaded only then (ioredis alone is ~18 MB of RSS). */
export async function createUploadAffinity(redis: RedisConfig | undefined, logger: Logger, limits: UploadLimits = DEFAULT_UPLOAD_LIMITS): Promise<UploadAffinity> {
  if (!redis) return new MemoryAffinity({ limits });
  const { RedisAffinity } = await import("./affinity-redis.js");
  return new RedisAffinity(redis, logger, { limits });
}
