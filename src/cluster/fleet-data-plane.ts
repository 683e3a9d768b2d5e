// The data plane of a cluster (workers > 1): worker processes (cluster/worker.ts) that share the listening
// sockets, each running a local data plane, driven over IPC (rpc.ts) by the control plane in the primary.
// What the primary must keep for all of them is kept here: the in-memory counters (shared.ts: rate limits,
// failed logins, upload affinity), and what a worker that starts late must be told to catch up (the
// configuration in service, rotated and ACME certificates, pending challenges).
//
//   reload     two phases: every worker builds and checks the new configuration, then all commit, or all
//              abort and the old one stays: never some workers on each
//   readiness  every worker's own view of its pools, aggregated
//   /metrics   every worker's metrics summed (worker-metrics.ts)
//
// A worker that dies is logged with how it ended and restarted after a delay (RestartBackoff); the others
// keep serving.
import cluster, { type Worker } from "node:cluster";
import { once } from "node:events";
import type { ManagedUrls } from "../backends/managed.js";
import { encodeConfig } from "../config/helpers.js";
import type { GatewayConfig } from "../config/schema.js";
import type { BackendReadiness, ChallengeChange, CommitOptions, Committed, DataPlane, Readiness, ServingAddresses } from "../control/data-plane.js";
import type { Logger } from "../observe/log.js";
import type { SiteCertificate } from "../tls/store.js";
import { RestartBackoff } from "../util/restart-backoff.js";
import { Rpc } from "./rpc.js";
import { SharedCounters } from "./shared.js";
import type { WorkerCommit, WorkerConfig, WorkerStart } from "./worker.js";
import { WorkerMetrics } from "./worker-metrics.js";

const START_TIMEOUT_MS = 60_000;
const CALL_TIMEOUT_MS = 30_000;
const READINESS_TIMEOUT_MS = 5000;
/** How often every worker's counters are read even without a scrape: at most this much is lost when one dies. */
const SNAPSHOT_EVERY_MS = 10_000;

interface Member {
  number: number;
  worker: Worker;
  rpc: Rpc;
  ready: boolean;
  startedAt: number;
  /** Commits whose replaced configuration this worker still runs requests on, by serial. */
  retiring: Map<number, () => void>;
  /** The configuration this worker serves. */
  applied: WorkerConfig | null;
  catchingUp: boolean;
}

export class FleetDataPlane implements DataPlane {
  readonly #counters = new SharedCounters();
  readonly #members = new Map<number, Member>();
  readonly #metrics = new WorkerMetrics(() => this.#ready());
  /** 1 s, doubling up to 30 s while workers keep dying young; one that ran for a minute was healthy. */
  readonly #restartDelay = new RestartBackoff({ initialMs: 1000, maxMs: 30_000, stableRunMs: 60_000 });
  #stopping = false;
  #snapshots: NodeJS.Timeout | null = null;
  /** The configuration in service, as every worker gets it. */
  #current: WorkerConfig | null = null;
  #prepared: WorkerConfig | null = null;
  /** The workers that prepared it: only they can commit it. */
  #preparedWorkers: Member[] = [];
  #commits = 0;
  /** Handed down since the last commit; a worker that starts late is given them too. */
  #certificates: readonly SiteCertificate[] | null = null;
  readonly #acmeCertificates = new Map<string, { site: string; certPem: string; keyPem: string }>();
  readonly #challenges = new Map<string, ChallengeChange>();

  constructor(
    private readonly count: number,
    private readonly logger: Logger,
  ) {}

  async start(config: GatewayConfig, managed: ManagedUrls): Promise<ServingAddresses> {
    this.#current = { config: encodeConfig(config), managedUrls: managed };
    // Node's round-robin hand-over of connections (the default on Linux) is kept: left to the kernel
    // (SCHED_NONE), one worker took every connection of a short burst, which defeats having workers. Its one
    // flaw: a connection handed to a worker that dies in that instant stays open in the primary, unanswered,
    // until the client gives up (nodejs/node#21746) — at most one per death.
    try {
      const addresses = await Promise.all(Array.from({ length: this.count }, (_, index) => this.#fork(index + 1)));
      this.#snapshots = setInterval(() => void this.#metrics.snapshot(), SNAPSHOT_EVERY_MS).unref();
      return { ...addresses[0]!, workers: this.count };
    } catch (err) {
      this.#stopping = true;
      for (const member of this.#members.values()) member.worker.kill("SIGKILL");
      await this.#counters.close();
      throw err;
    }
  }

  #fork(number: number): Promise<ServingAddresses> {
    const worker = cluster.fork({ REGISTRY_GATEWAY_WORKER: String(number) });
    const retiring = new Map<number, () => void>();
    const rpc = new Rpc((message) => worker.send(message), {
      ...this.#counters.handlers(),
      // The worker's replaced generation has no request left.
      retired: ({ serial }: { serial: number }) => {
        retiring.get(serial)?.();
        retiring.delete(serial);
      },
    });
    const member: Member = { number, worker, rpc, ready: false, startedAt: Date.now(), retiring, applied: null, catchingUp: false };
    this.#members.set(number, member);
    const hello = new Promise<void>((resolve) => {
      worker.on("message", (message: { rg?: string }) => {
        if (message?.rg === "hello") resolve();
        else member.rpc.receive(message);
      });
    });
    worker.on("exit", (code, signal) => this.#exited(member, code, signal));
    const exited = once(worker, "exit").then(() => Promise.reject(new Error(`worker ${number} exited before it started`)));
    return Promise.race([hello, exited]).then(() => this.#bringUp(member));
  }

  /** A new worker: its configuration, then what changed since it was read, then (if a reload committed meanwhile) the newer one. */
  async #bringUp(member: Member): Promise<ServingAddresses> {
    const started = this.#current!;
    const start: WorkerStart = { worker: member.number, ...started };
    const addresses = await member.rpc.call<ServingAddresses>("start", start, START_TIMEOUT_MS);
    if (this.#certificates) await member.rpc.call("certificates", { certificates: this.#certificates }, CALL_TIMEOUT_MS);
    for (const certificate of this.#acmeCertificates.values()) await member.rpc.call("acmeCertificate", certificate, CALL_TIMEOUT_MS);
    for (const change of this.#challenges.values()) await member.rpc.call("challenge", change, CALL_TIMEOUT_MS);
    member.applied = started;
    // A reload that committed while this worker started did not include it: it catches up before serving.
    await this.#catchUp(member);
    member.ready = true;
    this.logger.info({ worker: member.number, pid: member.worker.process.pid }, "worker started");
    return addresses;
  }

  /**
   * Brings a worker that missed commits onto the configuration in service, until it stays there (another
   * reload may commit meanwhile). One that cannot take it is killed: never two configurations at once, and
   * its replacement starts from the one in service.
   */
  async #catchUp(member: Member): Promise<void> {
    // One catch-up per worker at a time: its loop takes any commit that comes meanwhile.
    if (member.catchingUp) return;
    member.catchingUp = true;
    try {
      await this.#catchUpLoop(member);
    } finally {
      member.catchingUp = false;
    }
  }

  async #catchUpLoop(member: Member): Promise<void> {
    while (member.applied !== this.#current) {
      const target = this.#current!;
      try {
        await member.rpc.call("prepare", target, CALL_TIMEOUT_MS);
        await member.rpc.call("commit", { keepAcmeHandOvers: true, serial: 0 } satisfies WorkerCommit, CALL_TIMEOUT_MS);
      } catch (err) {
        member.worker.kill("SIGKILL");
        throw new Error(`worker ${member.number} could not take the configuration reloaded while it started: ${(err as Error).message}`);
      }
      member.applied = target;
    }
  }

  #exited(member: Member, code: number | null, signal: string | null): void {
    member.rpc.disconnected();
    this.#metrics.departed(member.number);
    // What it ran on retires with it.
    for (const done of member.retiring.values()) done();
    member.retiring.clear();
    if (this.#members.get(member.number) === member) this.#members.delete(member.number);
    if (this.#stopping) return;
    const ranMs = Date.now() - member.startedAt;
    const wait = this.#restartDelay.delayAfter(ranMs);
    this.logger.error({ worker: member.number, pid: member.worker.process.pid, code, signal, ranMs, restartInMs: wait }, "worker exited: restarting it");
    setTimeout(() => {
      if (!this.#stopping) this.#fork(member.number).catch((err: Error) => this.logger.error({ worker: member.number, err: err.message }, "worker did not start"));
    }, wait).unref();
  }

  #ready(): Member[] {
    return [...this.#members.values()].filter((m) => m.ready);
  }

  /** The same call to every worker that serves; their outcomes, in order. */
  #broadcast(method: string, args: unknown, timeoutMs = CALL_TIMEOUT_MS): Promise<PromiseSettledResult<unknown>[]> {
    return Promise.allSettled(this.#ready().map((m) => m.rpc.call(method, args, timeoutMs)));
  }

  async prepare(config: GatewayConfig, managed: ManagedUrls): Promise<void> {
    const next: WorkerConfig = { config: encodeConfig(config), managedUrls: managed };
    const workers = this.#ready();
    const prepared = await Promise.allSettled(workers.map((m) => m.rpc.call("prepare", next, CALL_TIMEOUT_MS)));
    const errors = [...new Set(prepared.flatMap((result) => (result.status === "rejected" ? (result.reason as Error).message.split("\n") : [])))];
    if (errors.length > 0) {
      this.logger.error({ errors }, "configuration reload failed in a worker: no worker switched, the running configuration stays in service");
      throw new Error(errors.join("\n"));
    }
    this.#prepared = next;
    this.#preparedWorkers = workers;
  }

  async commit({ keepAcmeHandOvers }: CommitOptions): Promise<Committed> {
    if (!this.#prepared) throw new Error("no prepared configuration to commit");
    // Before the calls: a worker starting meanwhile catches up on it.
    this.#current = this.#prepared;
    this.#prepared = null;
    this.#certificates = null; // each worker loads them anew from the configuration
    if (!keepAcmeHandOvers) this.#acmeCertificates.clear();
    const serial = ++this.#commits;
    const workers = this.#preparedWorkers.filter((member) => this.#members.get(member.number) === member);
    this.#preparedWorkers = [];
    const retired = workers.map((member) => new Promise<void>((resolve) => member.retiring.set(serial, resolve)));
    const commit: WorkerCommit = { keepAcmeHandOvers, serial };
    const calls = workers.map(async (member) => {
      try {
        await member.rpc.call("commit", commit, CALL_TIMEOUT_MS);
        member.applied = this.#current;
      } catch (err) {
        // It may still serve the replaced configuration (and use its registries): it is killed, and its exit
        // retires what it ran on; its replacement starts on the configuration in service.
        this.logger.error({ worker: member.number, err: (err as Error).message }, "a worker did not take the reloaded configuration: restarting it");
        member.worker.kill("SIGKILL");
      }
    });
    await Promise.all(calls);
    // A worker that became ready while the others prepared serves the replaced configuration: it catches up.
    for (const member of this.#ready()) {
      if (!workers.includes(member)) void this.#catchUp(member).catch((err: Error) => this.logger.error({ worker: member.number, err: err.message }, "worker restarted"));
    }
    this.logger.info({ workers: workers.length }, "configuration reloaded in every worker");
    return { retired: Promise.all(retired).then(() => {}) };
  }

  async abort(): Promise<void> {
    this.#prepared = null;
    this.#preparedWorkers = [];
    await this.#broadcast("abort", {});
  }

  reloaded(ok: boolean): void {
    void this.#broadcast("reloaded", { ok });
  }

  /** Every worker's own view of its pools, aggregated (aggregateReadiness). */
  async readiness(): Promise<Readiness> {
    const answers = await this.#broadcast("readiness", {}, READINESS_TIMEOUT_MS);
    const views = answers.flatMap((answer) => (answer.status === "fulfilled" ? [answer.value as Readiness] : []));
    const aggregated = aggregateReadiness(views);
    return this.#stopping ? { ...aggregated, listening: false } : aggregated;
  }

  metrics(): WorkerMetrics {
    return this.#metrics;
  }

  async replaceCertificates(certificates: readonly SiteCertificate[]): Promise<string[]> {
    this.#certificates = certificates;
    const results = await this.#broadcast("certificates", { certificates });
    return results.flatMap((r) => (r.status === "rejected" ? [`a worker did not take the new certificates: ${(r.reason as Error).message}`] : []));
  }

  async acmeCertificate(site: string, certPem: string, keyPem: string): Promise<void> {
    const certificate = { site, certPem, keyPem };
    this.#acmeCertificates.set(site, certificate);
    await this.#broadcast("acmeCertificate", certificate);
  }

  /** Every worker takes it (the kernel may hand the CA's connection to any). */
  async challenge(change: ChallengeChange): Promise<void> {
    const key = change.kind === "http" ? `http:${change.token}` : `alpn:${change.host}`;
    const removed = change.kind === "http" ? change.keyAuthorization === null : change.certPem === null;
    if (removed) this.#challenges.delete(key);
    else this.#challenges.set(key, change);
    await this.#broadcast("challenge", change);
  }

  /** Every worker drains (uploads in flight finish) and exits. */
  async shutdown(drainMs: number): Promise<void> {
    if (this.#snapshots) clearInterval(this.#snapshots);
    this.#stopping = true;
    this.logger.info({ drainMs }, "shutting down: every worker drains its requests in flight");
    const members = [...this.#members.values()];
    await Promise.allSettled(members.map((m) => m.rpc.call("shutdown", { drainMs }, drainMs + 10_000)));
    await Promise.all(members.map((m) => (m.worker.isDead() ? undefined : once(m.worker, "exit"))));
    await this.#counters.close();
  }
}

/**
 * The cluster's readiness from the views of the workers that answered. A backend is healthy only if every
 * one of them says so: each worker health-checks on its own, and one that cannot reach a replica sends it
 * nothing, so the pool is degraded for the requests that worker takes. Outstanding requests are the sum
 * over the workers. With no worker answering, the cluster is not listening.
 */
export function aggregateReadiness(views: readonly Readiness[]): Readiness {
  const byBackend = new Map<string, BackendReadiness>();
  for (const backend of views.flatMap((view) => view.backends)) {
    const key = `${backend.pool}\n${backend.url}`;
    const seen = byBackend.get(key);
    if (!seen) byBackend.set(key, { ...backend });
    else {
      seen.healthy &&= backend.healthy;
      seen.outstanding += backend.outstanding;
    }
  }
  return { listening: views.some((view) => view.listening), backends: [...byBackend.values()] };
}
