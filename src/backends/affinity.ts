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
// Anonymous owners are client addresses (an IPv6 /64 counts as one: one client has all of it), and a client
// can have many. Their sessions share one bounded pool that forgets its least recently used session to take
// a new one, so a flood of anonymous starts costs other anonymous uploads at worst, never a named user's.
// Named users' sessions have a bound of their own (maxEntries); at that bound a named user's NEW start is
// refused (admits: the client is told at once, not with a 202 that fails at its first PATCH), while a user
// at perUser still replaces their own oldest.
//
// Redis is written through, not relied on: the gateway that started an upload also keeps it in memory, so
// while Redis is down its own uploads still work, and only a session it has never seen cannot be placed
// (AffinityUnavailableError: the caller answers 503 rather than send a PATCH to a replica that would
// answer BLOB_UPLOAD_UNKNOWN and fail the push). While Redis answers, its answer stands, "unknown" too: so
// its bounds hold for every gateway.
import type { RedisConfig } from "../config/schema.js";
import type { Logger } from "../observe/log.js";
import type { UploadProgress } from "../uploads/offsets.js";

export interface UploadKey {
  pool: string;
  repository: string;
  uuid: string;
  /** Who started the session, scoped to its site (dispatch.ts uploadOwner): only they may use it. */
  owner: string;
  /** The owner is a client address, not an authenticated user: the session goes to the shared anonymous pool. */
  anonymous?: boolean;
}

export interface UploadLimits {
  /** Open sessions one owner may hold; the next start forgets that owner's least recently used one. */
  perUser: number;
  /** A session not used for this long is forgotten (each request of the upload refreshes it). */
  idleMs: number;
}

/** A session's record: the member holding it, and where the upload stands when the gateway knows. */
export interface UploadRecord {
  member: string;
  progress?: UploadProgress;
}

export interface UploadAffinity {
  /**
   * Whether a new session of this owner would be remembered now (false: named sessions are at their bound).
   * Asked before an upload start is forwarded, so a refused one never reaches a replica.
   */
  admits(key: UploadKey): Promise<boolean>;
  /**
   * Remembers that `member` (an origin) holds the session; may forget the owner's least recently used one
   * (or the anonymous pool's). False when it could not be remembered (named sessions at their bound).
   */
  remember(key: UploadKey, member: string, progress?: UploadProgress): Promise<boolean>;
  /**
   * The member holding the session, refreshing its idle time; null when not known (to this owner, under this
   * repository). Rejects with AffinityUnavailableError when it cannot tell (Redis down and not known locally).
   */
  lookup(key: UploadKey): Promise<string | null>;
  /** As lookup, with where the upload stands. */
  record(key: UploadKey): Promise<UploadRecord | null>;
  /** The backend answered a request of the session: where the upload stands now (a forgotten session stays forgotten). */
  advance(key: UploadKey, progress: UploadProgress): Promise<void>;
  /** After the upload finished (PUT 201) or its owner cancelled it (DELETE 204). */
  forget(key: UploadKey): Promise<void>;
  /** New limits from a reload; sessions already open are kept. */
  configure(limits: UploadLimits): void;
  close(): Promise<void>;
}

export class AffinityUnavailableError extends Error {
  override readonly name = "AffinityUnavailableError";
}

/** Sessions of anonymous owners held in all (per gateway in memory; per Redis with Redis). */
export const DEFAULT_MAX_ANONYMOUS = 10_000;

export const DEFAULT_UPLOAD_LIMITS: UploadLimits = { perUser: 64, idleMs: 60 * 60 * 1000 };

export interface AffinityOptions {
  limits?: UploadLimits;
  /**
   * Sessions of named users held in all: a last bound (a site's users are a list, each with perUser). At
   * the bound a named user's new session is refused; no open session is forgotten for it. Default 100 000.
   */
  maxEntries?: number;
  /** Sessions of anonymous owners (client addresses) held in all; the least recently used goes for a new one. Default 10 000. */
  maxAnonymous?: number;
  /** The clock, for tests. */
  now?: () => number;
}

interface Entry {
  id: string;
  owner: string;
  anonymous: boolean;
  member: string;
  progress?: UploadProgress;
  lastUsed: number;
}

export class MemoryAffinity implements UploadAffinity {
  limits: UploadLimits;
  private readonly maxEntries: number;
  private readonly maxAnonymous: number;
  private readonly now: () => number;
  /** Least recently used first: expired entries are always at the front. */
  private readonly entries = new Map<string, Entry>();
  /** The same entries per owner, least recently used first. */
  private readonly byOwner = new Map<string, Map<string, Entry>>();
  /** The anonymous owners' entries, least recently used first. */
  private readonly anonymous = new Map<string, Entry>();

  constructor(options: AffinityOptions = {}) {
    this.limits = options.limits ?? DEFAULT_UPLOAD_LIMITS;
    this.maxEntries = options.maxEntries ?? 100_000;
    this.maxAnonymous = options.maxAnonymous ?? DEFAULT_MAX_ANONYMOUS;
    this.now = options.now ?? Date.now;
  }

  get size(): number {
    return this.entries.size;
  }

  /** Sessions `owner` holds (expired ones included until pruned). */
  sizeOf(owner: string): number {
    return this.byOwner.get(owner)?.size ?? 0;
  }

  /** Sessions of anonymous owners. */
  get anonymousSize(): number {
    return this.anonymous.size;
  }

  async admits(key: UploadKey): Promise<boolean> {
    return this.hasRoom(key);
  }

  async remember(key: UploadKey, member: string, progress?: UploadProgress): Promise<boolean> {
    return this.set(key, member, this.limits, progress);
  }

  async lookup(key: UploadKey): Promise<string | null> {
    return this.get(key);
  }

  async record(key: UploadKey): Promise<UploadRecord | null> {
    return this.getRecord(key);
  }

  async advance(key: UploadKey, progress: UploadProgress): Promise<void> {
    this.setProgress(key, progress);
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
    this.anonymous.clear();
  }

  // Synchronous forms, for RedisAffinity's write-through and the cluster primary. `limits` given by the
  // caller (a worker's configuration) win over this store's own.

  /** A new session of this owner would be remembered: anonymous ones always are, named ones below maxEntries or in place of their own. */
  hasRoom(key: UploadKey, limits = this.limits): boolean {
    this.prune(limits);
    if (key.anonymous || this.entries.has(entryId(key))) return true;
    return this.sizeOf(key.owner) >= limits.perUser || this.entries.size - this.anonymous.size < this.maxEntries;
  }

  /** False when named sessions are at maxEntries and the session was not remembered (nothing was forgotten). */
  set(key: UploadKey, member: string, limits = this.limits, progress?: UploadProgress): boolean {
    // Checked before anything is forgotten: a refused start must not cost its owner an open session.
    if (!this.hasRoom(key, limits)) return false;
    const id = entryId(key);
    this.remove(id);
    // Only this owner's own least recently used sessions make room for its new one…
    const own = this.byOwner.get(key.owner);
    if (own) for (const oldest of own.keys()) {
      if (own.size < limits.perUser) break;
      this.remove(oldest);
    }
    // …and for an anonymous one, the anonymous pool's: never a named user's.
    if (key.anonymous) for (const oldest of this.anonymous.keys()) {
      if (this.anonymous.size < this.maxAnonymous) break;
      this.remove(oldest);
    }
    this.insert({ id, owner: key.owner, anonymous: key.anonymous === true, member, ...(progress ? { progress } : {}), lastUsed: this.now() });
    return true;
  }

  /** The member, and the session counts as used now; null when unknown or idle too long. */
  get(key: UploadKey, limits = this.limits): string | null {
    return this.getRecord(key, limits)?.member ?? null;
  }

  /** The session's record, and it counts as used now; null when unknown or idle too long. */
  getRecord(key: UploadKey, limits = this.limits): UploadRecord | null {
    const id = entryId(key);
    const entry = this.entries.get(id);
    if (!entry) return null;
    const now = this.now();
    if (entry.lastUsed + limits.idleMs <= now) {
      this.remove(id);
      return null;
    }
    // Moved to the back of every order: most recently used.
    this.remove(id);
    entry.lastUsed = now;
    this.insert(entry);
    return entry.progress ? { member: entry.member, progress: entry.progress } : { member: entry.member };
  }

  /** Where a known session's upload stands now (a use of it); an unknown or idle one is left unknown. */
  setProgress(key: UploadKey, progress: UploadProgress, limits = this.limits): void {
    if (this.getRecord(key, limits) === null) return;
    this.entries.get(entryId(key))!.progress = progress;
  }

  delete(key: UploadKey): void {
    this.remove(entryId(key));
  }

  private insert(entry: Entry): void {
    this.entries.set(entry.id, entry);
    if (entry.anonymous) this.anonymous.set(entry.id, entry);
    let own = this.byOwner.get(entry.owner);
    if (!own) this.byOwner.set(entry.owner, (own = new Map()));
    own.set(entry.id, entry);
  }

  private remove(id: string): void {
    const entry = this.entries.get(id);
    if (!entry) return;
    this.entries.delete(id);
    this.anonymous.delete(id);
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
