// Upload affinity in Redis (see affinity.ts): written through, the gateway's own memory first. In a module
// of its own so that a gateway without Redis never loads ioredis.
import type { Cluster, Redis } from "ioredis";
import type { RedisConfig } from "../config/schema.js";
import type { Logger } from "../observe/log.js";
import { createClient } from "../ratelimit/redis.js";
import { AffinityUnavailableError, MemoryAffinity, type AffinityOptions, type UploadAffinity } from "./affinity.js";

export class RedisAffinity implements UploadAffinity {
  private readonly memory: MemoryAffinity;
  private readonly client: Redis | Cluster;
  private up: boolean | undefined;
  private closed = false;

  constructor(
    config: RedisConfig,
    private readonly logger: Logger,
    options: AffinityOptions = {},
  ) {
    this.memory = new MemoryAffinity(options);
    this.client = createClient(config);
    this.client.on("ready", () => this.setUp(true));
    // ioredis reports every failed reconnect attempt; only the transition is worth a log line.
    this.client.on("error", (err: Error) => this.setUp(false, err));
    this.client.on("close", () => this.setUp(false));
  }

  /** True once Redis answered and has not failed since (for tests and readiness). */
  get available(): boolean {
    return this.up === true;
  }

  async remember(pool: string, uuid: string, member: string): Promise<void> {
    this.memory.set(pool, uuid, member);
    try {
      await this.client.set(redisKey(pool, uuid), member, "PX", this.memory.ttlMs);
      this.setUp(true);
    } catch (err) {
      // Not fatal: this gateway still routes the upload from memory; only other gateways cannot.
      this.setUp(false, err as Error);
    }
  }

  async lookup(pool: string, uuid: string): Promise<string | null> {
    const known = this.memory.get(pool, uuid);
    if (known !== null) return known;
    let member: string | null;
    try {
      member = await this.client.get(redisKey(pool, uuid));
      this.setUp(true);
    } catch (err) {
      this.setUp(false, err as Error);
      throw new AffinityUnavailableError(`Redis is unavailable and upload ${uuid} was not started through this gateway`);
    }
    // Kept locally too, so this gateway can still place the upload's next requests if Redis goes away.
    if (member !== null) this.memory.set(pool, uuid, member);
    return member;
  }

  async forget(pool: string, uuid: string): Promise<void> {
    this.memory.delete(pool, uuid);
    try {
      await this.client.del(redisKey(pool, uuid));
      this.setUp(true);
    } catch (err) {
      // The key expires with its TTL; a finished upload's UUID is never used again.
      this.setUp(false, err as Error);
    }
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

function redisKey(pool: string, uuid: string): string {
  return `upload:${pool}:${uuid}`;
}
