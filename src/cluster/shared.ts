// What must be counted once per gateway, not once per process: in-memory rate limits, failed-login counts
// and upload affinity. A single process keeps them in its own memory; a cluster worker asks the primary,
// which keeps them for all workers (so the 6th pull of a 5/min limit is refused whichever worker serves it).
// With Redis configured none of this is used: Redis is shared by every process and every gateway.
//
// Which of the two a process uses is decided once, when its ProcessContext is made (process/context.ts).
// Counts are scoped by the settings they are counted under (a limit's rule, a login budget): a reload with
// the same settings keeps counting on the same scope, one that changes them starts afresh, in a single
// process (a counter per scope in the resource pool) and in the primary alike (the scope goes with each call).
import { createHash } from "node:crypto";
import { MemoryAffinity, type UploadAffinity, type UploadKey, type UploadLimits, type UploadRecord } from "../backends/affinity.js";
import type { UploadProgress } from "../uploads/offsets.js";
import { LimiterUnavailableError, MemoryLimiter, type LimitDecision, type Limiter, type LimitRule } from "../ratelimit/limiter.js";
import { resourceKey } from "../process/resources.js";
import type { Rpc } from "./rpc.js";

/** A counter the primary does not answer within this is refused (the request gets 503), never waited on. */
const CALL_TIMEOUT_MS = 2000;

/** Where in-memory counts live: this process, or the cluster's primary. */
export interface CounterStore {
  /** Counts of `namespace` (a kind of count) under `settings`: other settings, other counts. */
  limiter(namespace: string, settings: unknown): Limiter;
  /** Upload affinity without Redis. */
  affinity(limits: UploadLimits): UploadAffinity;
}

/** Counts in this process's memory (a single process, or tests). */
export const processCounters: CounterStore = {
  limiter: () => new MemoryLimiter(),
  affinity: (limits) => new MemoryAffinity({ limits }),
};

/** In a cluster worker: every count lives in the primary, which every worker asks. */
export function primaryCounters(rpc: Rpc): CounterStore {
  return {
    limiter: (namespace, settings) => new PrimaryLimiter(rpc, countScope(namespace, settings)),
    affinity: (limits) => new PrimaryAffinity(rpc, limits),
  };
}

/** `namespace` and a digest of the settings: short on the wire, the same in every worker. */
export function countScope(namespace: string, settings: unknown): string {
  return `${namespace}:${createHash("sha256").update(resourceKey(namespace, settings)).digest("base64url").slice(0, 22)}`;
}

class PrimaryLimiter implements Limiter {
  constructor(
    private readonly rpc: Rpc,
    private readonly scope: string,
  ) {}

  async allow(key: string, rule: LimitRule, cost = 1): Promise<LimitDecision> {
    try {
      return await this.rpc.call<LimitDecision>("limit", { scope: this.scope, key, rule, cost }, CALL_TIMEOUT_MS);
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

  remember(key: UploadKey, member: string, progress?: UploadProgress): Promise<boolean> {
    return this.rpc.call("affinity.remember", { key, member, limits: this.limits, progress }, CALL_TIMEOUT_MS);
  }

  lookup(key: UploadKey): Promise<string | null> {
    return this.rpc.call("affinity.lookup", { key, limits: this.limits }, CALL_TIMEOUT_MS);
  }

  record(key: UploadKey): Promise<UploadRecord | null> {
    return this.rpc.call("affinity.record", { key, limits: this.limits }, CALL_TIMEOUT_MS);
  }

  advance(key: UploadKey, progress: UploadProgress): Promise<void> {
    return this.rpc.call("affinity.advance", { key, progress, limits: this.limits }, CALL_TIMEOUT_MS);
  }

  forget(key: UploadKey): Promise<void> {
    return this.rpc.call("affinity.forget", { key }, CALL_TIMEOUT_MS);
  }

  configure(limits: UploadLimits): void {
    this.limits = limits;
  }

  async close(): Promise<void> {}
}

/**
 * The primary's side: the one set of counters every worker's calls land on. A count is kept under the scope
 * the worker names (its settings): the same settings after a reload find their counts, changed ones start
 * afresh, and the counts of a scope no longer used expire within their period (MemoryLimiter sweeps them).
 */
export class SharedCounters {
  readonly #limits = new MemoryLimiter();
  readonly #affinity = new MemoryAffinity();

  handlers() {
    return {
      limit: ({ scope, key, rule, cost }: { scope?: string; key: string; rule: LimitRule; cost: number }) =>
        this.#limits.allowNow(scope === undefined ? key : `${scope}\n${key}`, rule, cost),
      "affinity.admits": ({ key, limits }: { key: UploadKey; limits: UploadLimits }) => this.#affinity.hasRoom(key, limits),
      "affinity.remember": ({ key, member, limits, progress }: { key: UploadKey; member: string; limits: UploadLimits; progress?: UploadProgress }) =>
        this.#affinity.set(key, member, limits, progress),
      "affinity.lookup": ({ key, limits }: { key: UploadKey; limits: UploadLimits }) => this.#affinity.get(key, limits),
      "affinity.record": ({ key, limits }: { key: UploadKey; limits: UploadLimits }) => this.#affinity.getRecord(key, limits),
      "affinity.advance": ({ key, progress, limits }: { key: UploadKey; progress: UploadProgress; limits: UploadLimits }) =>
        this.#affinity.setProgress(key, progress, limits),
      "affinity.forget": ({ key }: { key: UploadKey }) => this.#affinity.delete(key),
    };
  }

  async close(): Promise<void> {
    await Promise.all([this.#limits.close(), this.#affinity.close()]);
  }
}
