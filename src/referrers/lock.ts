// One writer at a time for a subject's referrers index: the index is read, changed and written back as a
// whole (a tag in the registry), so two writers interleaving would lose one's entry. Within a process a
// queue per key; across gateways sharing Redis a lease in Redis (SET NX PX), taken after the local queue so
// a process competes with the others with one request at a time.
import type { Cluster, Redis } from "ioredis";

export interface IndexLock {
  /** Runs `work` while holding `key`; rejects when the key could not be had in time. */
  run<T>(key: string, work: () => Promise<T>): Promise<T>;
  close(): Promise<void>;
}

export class LocalLock implements IndexLock {
  readonly #tails = new Map<string, Promise<unknown>>();

  async run<T>(key: string, work: () => Promise<T>): Promise<T> {
    const before = this.#tails.get(key) ?? Promise.resolve();
    const mine = before.catch(() => {}).then(work);
    this.#tails.set(key, mine);
    try {
      return await mine;
    } finally {
      // The last in the queue leaves no entry behind.
      if (this.#tails.get(key) === mine) this.#tails.delete(key);
    }
  }

  async close(): Promise<void> {}
}

/** How long a holder may keep the lease: longer than a read, a write and a check of the index take. */
const LEASE_MS = 15_000;
/** How long a writer waits for the lease before its write fails. */
const WAIT_MS = 20_000;
const POLL_MS = 25;

/** Deletes the lease only while it is still the holder's: one that expired may be someone else's now. */
const RELEASE_LUA = `if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("del", KEYS[1]) else return 0 end`;

export class RedisLock implements IndexLock {
  readonly #local = new LocalLock();

  constructor(
    private readonly redis: Redis | Cluster,
    private readonly leaseMs = LEASE_MS,
    private readonly waitMs = WAIT_MS,
  ) {
    // A Redis that is down fails the lease attempts themselves (retried until waitMs, then the index update is
    // reported as failed); the client's error events say the same and must not reach the process as unhandled.
    redis.on("error", () => {});
  }

  run<T>(key: string, work: () => Promise<T>): Promise<T> {
    return this.#local.run(key, async () => {
      const redisKey = `referrers-lock:${key}`;
      const token = `${process.pid}:${Math.random().toString(36).slice(2)}`;
      await this.#acquire(redisKey, token);
      try {
        return await work();
      } finally {
        await this.redis.eval(RELEASE_LUA, 1, redisKey, token).catch(() => {});
      }
    });
  }

  async #acquire(key: string, token: string): Promise<void> {
    const deadline = Date.now() + this.waitMs;
    for (;;) {
      // Refused while the connection is (re)made: tried again like a lease someone else holds.
      const taken = await this.redis.set(key, token, "PX", this.leaseMs, "NX").catch(() => null);
      if (taken === "OK") return;
      if (Date.now() > deadline) throw new Error("the referrers index is locked by another gateway for too long");
      await new Promise((resolve) => setTimeout(resolve, POLL_MS + Math.random() * POLL_MS));
    }
  }

  async close(): Promise<void> {
    this.redis.disconnect();
  }
}
