// What must be counted once per gateway, not once per process: in-memory rate limits, failed-login counts
// and upload affinity. A single process keeps them in its own memory; a cluster worker asks the primary,
// which keeps them for all workers (so the 6th pull of a 5/min limit is refused whichever worker serves it).
// With Redis configured none of this is used: Redis is shared by every process and every gateway.
import { MemoryAffinity, type UploadAffinity, type UploadKey, type UploadLimits } from "../backends/affinity.js";
import { LimiterUnavailableError, MemoryLimiter, type LimitDecision, type Limiter, type LimitRule } from "../ratelimit/limiter.js";
import type { Rpc } from "./rpc.js";

/** A counter the primary does not answer within this is refused (the request gets 503), never waited on. */
const CALL_TIMEOUT_MS = 2000;

let primary: Rpc | null = null;

/** Called once in a cluster worker: from now on, shared counts live in the primary. */
export function shareThroughPrimary(rpc: Rpc): void {
  primary = rpc;
}

/** Counts kept in memory: this process's, or in a cluster worker the primary's. `namespace` keeps kinds apart. */
export function memoryLimits(namespace: string): Limiter {
  return primary ? new PrimaryLimiter(primary, namespace) : new MemoryLimiter();
}

/** Upload affinity without Redis: this process's memory, or in a cluster worker the primary's. */
export function memoryAffinity(limits: UploadLimits): UploadAffinity {
  return primary ? new PrimaryAffinity(primary, limits) : new MemoryAffinity({ limits });
}

class PrimaryLimiter implements Limiter {
  constructor(
    private readonly rpc: Rpc,
    private readonly namespace: string,
  ) {}

  async allow(key: string, rule: LimitRule, cost = 1): Promise<LimitDecision> {
    try {
      return await this.rpc.call<LimitDecision>("limit", { key: `${this.namespace}\n${key}`, rule, cost }, CALL_TIMEOUT_MS);
    } catch (err) {
      throw new LimiterUnavailableError(`the cluster's primary did not count: ${(err as Error).message}`);
    }
  }

  async close(): Promise<void> {}
}

/** Sends this worker's limits with each call: the primary has no configuration of its own for them. */
class PrimaryAffinity implements UploadAffinity {
  constructor(
    private readonly rpc: Rpc,
    private limits: UploadLimits,
  ) {}

  admits(key: UploadKey): Promise<boolean> {
    return this.rpc.call("affinity.admits", { key, limits: this.limits }, CALL_TIMEOUT_MS);
  }

  remember(key: UploadKey, member: string): Promise<boolean> {
    return this.rpc.call("affinity.remember", { key, member, limits: this.limits }, CALL_TIMEOUT_MS);
  }

  lookup(key: UploadKey): Promise<string | null> {
    return this.rpc.call("affinity.lookup", { key, limits: this.limits }, CALL_TIMEOUT_MS);
  }

  forget(key: UploadKey): Promise<void> {
    return this.rpc.call("affinity.forget", { key }, CALL_TIMEOUT_MS);
  }

  configure(limits: UploadLimits): void {
    this.limits = limits;
  }

  async close(): Promise<void> {}
}

/** The primary's side: the one set of counters every worker's calls land on. */
export class SharedCounters {
  readonly #limits = new MemoryLimiter();
  readonly #affinity = new MemoryAffinity();

  handlers() {
    return {
      limit: ({ key, rule, cost }: { key: string; rule: LimitRule; cost: number }) => this.#limits.allowNow(key, rule, cost),
      "affinity.admits": ({ key, limits }: { key: UploadKey; limits: UploadLimits }) => this.#affinity.hasRoom(key, limits),
      "affinity.remember": ({ key, member, limits }: { key: UploadKey; member: string; limits: UploadLimits }) => this.#affinity.set(key, member, limits),
      "affinity.lookup": ({ key, limits }: { key: UploadKey; limits: UploadLimits }) => this.#affinity.get(key, limits),
      "affinity.forget": ({ key }: { key: UploadKey }) => this.#affinity.delete(key),
    };
  }

  async close(): Promise<void> {
    await Promise.all([this.#limits.close(), this.#affinity.close()]);
  }
}
