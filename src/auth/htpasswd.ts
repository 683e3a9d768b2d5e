// htpasswd files: the parser, password verification, and the live user set of one file.
//
// Formats are those `htpasswd -B` (bcrypt $2y$), `docker run … registry htpasswd -Bbn` ($2y$/$2a$/$2b$),
// `htpasswd -m` ($apr1$) and `htpasswd -s` ({SHA}) write. Anything else stops the start with file:line,
// because silently skipping a line would lock that user out with no clue why.
//
// The file is watched: an edit takes effect at once (removed users stop working), a broken edit keeps the
// last good set and says why in the log. bcrypt costs ~100 ms of CPU, so successful verifications are kept
// in a small cache with a short lifetime (as Caddy does), keyed by an HMAC so no password sits in memory.
// Unknown users are checked against a dummy hash as costly as the dearest real one: a failed login takes as
// long whether or not the user exists. A user whose own hash is cheaper than the dearest in the file (a
// {SHA} line among bcrypt ones) is checked against that dummy too, in parallel, so a login costs the same
// whichever line it hits. bcrypt runs on the hashing threads (hash-pool.ts) when a pool is given.
import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { watch, watchFile, unwatchFile, type FSWatcher, type Stats } from "node:fs";
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";
import bcrypt from "bcryptjs";
import { LRUCache } from "lru-cache";
import type { Logger } from "../observe/log.js";
import type { HashClient, HashPool } from "./hash-pool.js";

// apache-md5 is CommonJS whose typings claim an ES default export; require() gets the function itself.
const aprMd5 = createRequire(import.meta.url)("apache-md5") as (password: string, salt: string) => string;

export type HashKind = "bcrypt" | "apr1" | "sha1";

export interface HtpasswdEntry {
  user: string;
  kind: HashKind;
  hash: string;
  /** bcrypt cost; 0 for the others. */
  cost: number;
  line: number;
}

export class HtpasswdError extends Error {
  constructor(
    readonly file: string,
    readonly line: number,
    readonly reason: string,
  ) {
    super(`${file}:${line}: ${reason}`);
    this.name = "HtpasswdError";
  }
}

const BCRYPT = /^\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}$/;
const APR1 = /^\$apr1\$[./0-9A-Za-z]{1,8}\$[./0-9A-Za-z]{22}$/;
const SHA1 = /^\{SHA\}[A-Za-z0-9+/]{27}=$/;

/** Blank lines and `#` comments are skipped; every other line must be `user:hash` with a known hash. */
export function parseHtpasswd(text: string, file: string): Map<string, HtpasswdEntry> {
  const entries = new Map<string, HtpasswdEntry>();
  const lines = text.split("\n");
  lines.forEach((raw, index) => {
    const line = index + 1;
    const content = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
    if (content.trim() === "" || content.trimStart().startsWith("#")) return;
    const colon = content.indexOf(":");
    if (colon <= 0) throw new HtpasswdError(file, line, "expected user:hash");
    const user = content.slice(0, colon);
    const hash = content.slice(colon + 1);
    if (/\s/.test(user)) throw new HtpasswdError(file, line, "the user name contains white space");
    const previous = entries.get(user);
    if (previous) throw new HtpasswdError(file, line, `user "${user}" is already defined on line ${previous.line}`);
    entries.set(user, { user, line, ...hashKind(hash, file, line, user) });
  });
  return entries;
}

function hashKind(hash: string, file: string, line: number, user: string): { kind: HashKind; hash: string; cost: number } {
  const bcryptMatch = BCRYPT.exec(hash);
  if (bcryptMatch) {
    const cost = Number(bcryptMatch[1]);
    if (cost < 4 || cost > 31) throw new HtpasswdError(file, line, `user "${user}": bcrypt cost ${cost} is outside 4..31`);
    return { kind: "bcrypt", hash, cost };
  }
  if (APR1.test(hash)) return { kind: "apr1", hash, cost: 0 };
  if (SHA1.test(hash)) return { kind: "sha1", hash, cost: 0 };
  // The hash itself is never echoed: it is a secret too.
  throw new HtpasswdError(
    file,
    line,
    `user "${user}": unsupported password hash (expected bcrypt $2y$/$2a$/$2b$ from htpasswd -B, $apr1$ from -m, or {SHA} from -s)`,
  );
}

/**
 * A hash the library cannot read simply does not match. bcrypt goes to `pool` when there is one: then the
 * pool's refusals (HashPoolFullError, a closed pool) are thrown, as they say nothing about the password.
 */
export async function verifyPassword(entry: Pick<HtpasswdEntry, "kind" | "hash">, password: string, pool?: HashPool | null, client?: HashClient): Promise<boolean> {
  const [matches] = await verifyAll([entry], password, pool, client);
  return matches!;
}

/** verifyPassword for several hashes at once; the bcrypt ones go to the pool together, all or none. */
async function verifyAll(entries: readonly Pick<HtpasswdEntry, "kind" | "hash">[], password: string, pool?: HashPool | null, client?: HashClient): Promise<boolean[]> {
  const offThread = pool ? entries.filter((entry) => entry.kind === "bcrypt") : [];
  const threaded = offThread.length > 0 ? pool!.compareAll(offThread.map(({ hash }) => ({ password, hash })), client) : Promise.resolve([]);
  const here = Promise.all(entries.map((entry) => (pool && entry.kind === "bcrypt" ? null : verifyHere(entry, password))));
  const [fromPool, results] = await Promise.all([threaded, here]);
  let next = 0;
  return results.map((result) => result ?? fromPool[next++]!);
}

async function verifyHere(entry: Pick<HtpasswdEntry, "kind" | "hash">, password: string): Promise<boolean> {
  try {
    switch (entry.kind) {
      case "bcrypt":
        return await bcrypt.compare(password, entry.hash);
      case "apr1":
        return sameText(aprMd5(password, entry.hash), entry.hash);
      case "sha1":
        return sameText(`{SHA}${createHash("sha1").update(password, "utf8").digest("base64")}`, entry.hash);
    }
  } catch {
    return false;
  }
}

function sameText(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}

// ---- the live user set of one file -----------------------------------------------------------------------

export interface HtpasswdOptions {
  /** How long a successful verification is remembered. Default 60 s. */
  cacheTtlMs?: number;
  /** At most this many remembered verifications. Default 1024. */
  cacheSize?: number;
  /** Fallback stat polling, for file systems without change events (some bind mounts). Default 2 s. */
  pollIntervalMs?: number;
  /** Where bcrypt checks run; without one they run on the event loop (bcryptjs's async API). */
  hashPool?: HashPool | null;
}

/** What an unknown user (or a cheap line) is checked against: as dear as the dearest entry of the file. */
interface Dummy {
  kind: HashKind;
  hash: string;
  /** rank() of the entry it stands for. */
  rank: number;
}

interface CachedVerification {
  expiresAt: number;
  generation: number;
}

/** Passwords longer than this are refused without hashing: bcrypt reads 72 bytes anyway. */
const MAX_PASSWORD_LENGTH = 1024;
const RELOAD_DEBOUNCE_MS = 50;
const EMPTY_REREAD_MS = 250;

export class HtpasswdUsers {
  private entries: Map<string, HtpasswdEntry>;
  private dummy: Dummy;
  private text: string;
  /** Bumped on every successful reload; a verification started before it is not cached after it. */
  private generation = 0;
  private readonly cache: LRUCache<string, CachedVerification>;
  private readonly inFlight = new Map<string, Promise<boolean>>();
  private readonly cacheSecret = randomBytes(32);
  private readonly cacheTtlMs: number;
  private readonly hashPool: HashPool | null;
  private watcher: FSWatcher | null = null;
  private readonly pollListener = (current: Stats, previous: Stats) => {
    if (current.mtimeMs !== previous.mtimeMs || current.size !== previous.size || current.ino !== previous.ino) this.scheduleReload();
  };
  private reloadTimer: NodeJS.Timeout | null = null;
  private reloading: Promise<void> = Promise.resolve();
  private closed = false;
  /** When an empty read of a file with users was first seen, if it still is. */
  private emptySince: number | null = null;

  private constructor(
    readonly file: string,
    private readonly logger: Logger,
    text: string,
    entries: Map<string, HtpasswdEntry>,
    dummy: Dummy,
    options: HtpasswdOptions,
  ) {
    this.text = text;
    this.entries = entries;
    this.dummy = dummy;
    this.cacheTtlMs = options.cacheTtlMs ?? 60_000;
    this.cache = new LRUCache({ max: options.cacheSize ?? 1024 });
    this.hashPool = options.hashPool ?? null;
    this.startWatching(options.pollIntervalMs ?? 2000);
  }

  /** Reads and parses the file; throws HtpasswdError (file:line) or the read error. */
  static async open(file: string, logger: Logger, options: HtpasswdOptions = {}): Promise<HtpasswdUsers> {
    const text = await readFile(file, "utf8");
    const entries = parseHtpasswd(text, file);
    return new HtpasswdUsers(file, logger, text, entries, await dummyFor(entries), options);
  }

  get size(): number {
    return this.entries.size;
  }

  has(user: string): boolean {
    return this.entries.has(user);
  }

  /**
   * Changes whenever the user's hash changes (a new password) or the user goes: refresh tokens carry it,
   * so a password change ends the sessions made with the old one.
   */
  fingerprint(user: string): string | undefined {
    const entry = this.entries.get(user);
    return entry && createHash("sha256").update(entry.hash).digest("base64url").slice(0, 16);
  }

  /**
   * True when the password is the user's. Rejects only when the check could not be made (the hashing pool
   * is full: HashPoolFullError, or closed), never because of the password. `client` is whose share of the
   * hashing queue the check waits in (hash-pool.ts).
   *
   * A remembered verification used in the last quarter of its life is checked again in the background, and
   * remembered anew when it still matches: a user who keeps working never meets an expired entry, so never
   * waits for a hash (behind a flood of guesses, say) once logged in. That second check is the same one a
   * login after expiry would make, with the same password, so it proves no more and no less; it refreshes
   * nothing once the file changed (the generation moved on), and a refused one (queue full) just lets the
   * entry expire as it would have.
   */
  async verify(user: string, password: string, client?: HashClient): Promise<boolean> {
    if (password.length > MAX_PASSWORD_LENGTH) return false;
    const key = createHmac("sha256", this.cacheSecret).update(user).update("\0").update(password).digest("base64");
    const cached = this.cache.get(key);
    if (cached) {
      const now = Date.now();
      if (cached.expiresAt > now && cached.generation === this.generation) {
        if (cached.expiresAt - now < this.cacheTtlMs / 4 && !this.inFlight.has(key)) this.share(key, user, password, client).catch(() => {});
        return true;
      }
      this.cache.delete(key);
    }
    // Concurrent requests with the same credentials (a client's parallel layer uploads) share one hash.
    return this.inFlight.get(key) ?? this.share(key, user, password, client);
  }

  private share(key: string, user: string, password: string, client: HashClient | undefined): Promise<boolean> {
    const check = this.check(user, password, key, client).finally(() => this.inFlight.delete(key));
    this.inFlight.set(key, check);
    return check;
  }

  private async check(user: string, password: string, key: string, client: HashClient | undefined): Promise<boolean> {
    const generation = this.generation;
    const entry = this.entries.get(user);
    const dummy = this.dummy;
    if (!entry) {
      await verifyPassword(dummy, password, this.hashPool, client);
      return false;
    }
    // A line cheaper than the dearest one costs as much anyway: the dummy runs alongside, its answer unused.
    const [matches] = await verifyAll(rank(entry) < dummy.rank ? [entry, dummy] : [entry], password, this.hashPool, client);
    if (!matches) return false;
    if (generation === this.generation) this.remember(key, generation);
    return true;
  }

  private remember(key: string, generation: number): void {
    this.cache.set(key, { expiresAt: Date.now() + this.cacheTtlMs, generation });
  }

  /** Re-reads the file now; on any problem the current users stay and the log says why. */
  reload(): Promise<void> {
    this.reloading = this.reloading.then(() => this.reloadOnce());
    return this.reloading;
  }

  private async reloadOnce(): Promise<void> {
    if (this.closed) return;
    let text: string;
    try {
      text = await readFile(this.file, "utf8");
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? String(err);
      this.logger.warn({ file: this.file, err: code }, "htpasswd file unreadable: keeping the last good set of users");
      return;
    }
    if (text === this.text) return;
    // A writer that truncates and then writes is caught in between: an empty read of a file that had users
    // is believed only once the file has stayed empty for a moment.
    if (text.trim() === "" && this.entries.size > 0) {
      this.emptySince ??= Date.now();
      const wait = this.emptySince + EMPTY_REREAD_MS - Date.now();
      if (wait > 0) {
        setTimeout(() => this.scheduleReload(), wait).unref();
        return;
      }
    }
    this.emptySince = null;
    try {
      const entries = parseHtpasswd(text, this.file);
      const dummy = await dummyFor(entries);
      this.entries = entries;
      this.dummy = dummy;
      this.text = text;
      this.generation++;
      this.cache.clear();
      this.logger.info({ file: this.file, users: entries.size }, "htpasswd file reloaded");
    } catch (err) {
      if (!(err instanceof HtpasswdError)) throw err;
      this.logger.warn(
        { file: this.file, line: err.line, reason: err.reason },
        "htpasswd file has an error: keeping the last good set of users",
      );
    }
  }

  private startWatching(pollIntervalMs: number): void {
    // The directory, not the file: editors and `mv` replace the file, which ends a watch on its inode.
    try {
      const name = path.basename(this.file);
      this.watcher = watch(path.dirname(this.file), { persistent: false }, (_event, changed) => {
        if (changed === null || changed === name || changed.startsWith("..")) this.scheduleReload();
      });
      this.watcher.on("error", (err) => this.logger.warn({ file: this.file, err: err.message }, "htpasswd watch failed; polling only"));
    } catch (err) {
      this.logger.warn({ file: this.file, err: (err as Error).message }, "htpasswd watch failed; polling only");
    }
    watchFile(this.file, { persistent: false, interval: pollIntervalMs }, this.pollListener);
  }

  private scheduleReload(): void {
    if (this.closed) return;
    // Writers often truncate then write: wait for the burst of events to settle.
    if (this.reloadTimer) clearTimeout(this.reloadTimer);
    this.reloadTimer = setTimeout(() => {
      this.reloadTimer = null;
      void this.reload().catch((err: unknown) => this.logger.error({ file: this.file, err: String(err) }, "htpasswd reload failed"));
    }, RELOAD_DEBOUNCE_MS);
  }

  close(): void {
    this.closed = true;
    this.watcher?.close();
    unwatchFile(this.file, this.pollListener);
    if (this.reloadTimer) clearTimeout(this.reloadTimer);
    this.cache.clear();
  }
}

/** A hash nobody knows the password of, as costly to check as the dearest real entry. */
async function dummyFor(entries: Map<string, HtpasswdEntry>): Promise<Dummy> {
  let dearest: HtpasswdEntry | undefined;
  for (const entry of entries.values()) {
    if (!dearest || rank(entry) > rank(dearest)) dearest = entry;
  }
  const secret = randomBytes(18).toString("base64");
  switch (dearest?.kind ?? "bcrypt") {
    case "bcrypt": {
      const cost = dearest?.cost ?? 10;
      return { kind: "bcrypt", hash: await dummyBcrypt(cost, secret), rank: rank({ kind: "bcrypt", cost }) };
    }
    case "apr1":
      return { kind: "apr1", hash: aprMd5(secret, `$apr1$${randomBytes(6).toString("base64").replace(/\+/g, ".")}$`), rank: rank({ kind: "apr1", cost: 0 }) };
    case "sha1":
      return { kind: "sha1", hash: `{SHA}${createHash("sha1").update(secret).digest("base64")}`, rank: rank({ kind: "sha1", cost: 0 }) };
  }
}

function rank(entry: Pick<HtpasswdEntry, "kind" | "cost">): number {
  return entry.kind === "bcrypt" ? 100 + entry.cost : entry.kind === "apr1" ? 1 : 0;
}

const dummyBcryptByCost = new Map<number, Promise<string>>();

/** One per cost per process: hashing it costs as much as a login. */
function dummyBcrypt(cost: number, secret: string): Promise<string> {
  let hash = dummyBcryptByCost.get(cost);
  if (!hash) {
    hash = bcrypt.hash(secret, cost);
    dummyBcryptByCost.set(cost, hash);
  }
  return hash;
}
