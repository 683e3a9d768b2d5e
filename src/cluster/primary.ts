// The cluster's primary (workers > 1): it accepts no client connection itself. It supervises the workers
// (cluster/worker.ts), which share the listening sockets, and does once, for all of them, what must be one:
//
//   managed registries   started here, their URLs handed to every worker
//   in-memory counters   rate limits, failed logins, upload affinity (cluster/shared.ts)
//   ACME                 orders run here; pending challenges and new certificates go to every worker
//   reload               two phases: every worker builds and checks the new configuration, then all
//                        commit, or all abort and the old one stays: never some workers on each
//   cert rotate          new certificates made here once (one serial), then served by every worker
//   admin listener       /healthz, /readyz, /metrics summed over the workers, POST /reload, /cert/rotate
//   shutdown             every worker drains (uploads in flight finish), then the registries stop
//
// A worker that dies is logged with how it ended and restarted after a delay (1 s, doubling up to 30 s while
// it keeps dying young); the others keep serving.
import cluster, { type Worker } from "node:cluster";
import { once } from "node:events";
import { readFile } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import type { Registry } from "prom-client";
import type { ReloadOutcome } from "../admin-actions.js";
import { createAdminServer } from "../admin.js";
import { loadAdminToken } from "../admin-token.js";
import { ManagedRegistries } from "../backends/managed.js";
import { ConfigError, loadConfig } from "../config/load.js";
import { keysNeedingRestart } from "../config/restart-keys.js";
import { encodeConfig, siteBackends } from "../config/helpers.js";
import type { GatewayConfig } from "../config/schema.js";
import type { Logger } from "../observe/log.js";
import { defaultSiteName, siteName } from "../config/site-names.js";
import type { AcmeManager } from "../tls/acme.js";
import { acmeSiteNames, acmeSites, loadAcme } from "../tls/acme-sites.js";
import { AcmeChallengeResponder } from "../tls/acme-challenges.js";
import { rotateServedCertificates, type RotationOutcome } from "../tls/rotation.js";
import { ServedCertificates } from "../tls/served-certificates.js";
import { CertificateStore, loadSiteCertificates, type SiteCertificate } from "../tls/store.js";
import { Rpc } from "./rpc.js";
import { SharedCounters } from "./shared.js";
import type { ChallengeChange, WorkerPrepare, WorkerStart } from "./worker.js";

const START_TIMEOUT_MS = 60_000;
const CALL_TIMEOUT_MS = 30_000;
const RESTART_BACKOFF = { initialMs: 1000, maxMs: 30_000 };
/** A worker that ran this long before it died was healthy: its replacement starts after the initial delay. */
const STABLE_RUN_MS = 60_000;
/** How often every worker's counters are read even without a scrape: at most this much is lost when one dies. */
const SNAPSHOT_EVERY_MS = 10_000;

interface Member {
  number: number;
  worker: Worker;
  rpc: Rpc;
  ready: boolean;
  startedAt: number;
}

export interface ClusterOptions {
  file: string;
  workers: number;
  logger: Logger;
}

export async function runPrimary(initial: GatewayConfig, { file, workers: count, logger }: ClusterOptions): Promise<void> {
  let config = initial;
  let text = await readFile(file, "utf8");
  // Before anything is started: a token file that cannot be read stops the start with nothing to undo.
  const adminCredential = await loadAdminToken(initial, logger);
  const managed = new ManagedRegistries(logger);
  await managed.start(config);
  const counters = new SharedCounters();

  // The certificates as the workers serve them, kept here too: rotation and ACME change them here first.
  const loaded = await loadSiteCertificates(config);
  const defaultSite = () => defaultSiteName(config);
  const store = new CertificateStore(loaded.certificates, defaultSite(), config.tls.minVersion);
  const served = new ServedCertificates(store, loaded.certificates, defaultSite(), acmeSiteNames(config));
  const acmeCertificates = new Map<string, { site: string; certPem: string; keyPem: string }>();
  const responder = new BroadcastingResponder((change) => broadcast("challenge", change));

  const members = new Map<number, Member>();
  let stopping = false;
  let delayMs = RESTART_BACKOFF.initialMs;
  let firstAddress: { https: AddressInfo; http: AddressInfo | null; caFile: string | null } | null = null;

  const broadcast = (method: string, args: unknown) =>
    Promise.allSettled([...members.values()].filter((m) => m.ready).map((m) => m.rpc.call(method, args, CALL_TIMEOUT_MS)));

  let queue: Promise<unknown> = Promise.resolve();
  const serialized = <T>(work: () => Promise<T>): Promise<T> => {
    const run = queue.then(work);
    queue = run.catch(() => {});
    return run;
  };

  // Node's round-robin hand-over of connections (the default on Linux) is kept: left to the kernel
  // (SCHED_NONE), one worker took every connection of a short burst, which defeats having workers. Its one
  // flaw: a connection handed to a worker that dies in that instant stays open in the primary, unanswered,
  // until the client gives up (nodejs/node#21746) — at most one per death.

  function fork(number: number): Promise<void> {
    const worker = cluster.fork({ REGISTRY_GATEWAY_WORKER: String(number) });
    const member: Member = { number, worker, rpc: new Rpc((message) => worker.send(message), counters.handlers()), ready: false, startedAt: Date.now() };
    members.set(number, member);
    const hello = new Promise<void>((resolve) => {
      worker.on("message", (message: { rg?: string }) => {
        if (message?.rg === "hello") resolve();
        else member.rpc.receive(message);
      });
    });
    worker.on("exit", (code, signal) => {
      member.rpc.disconnected();
      metricsOfWorkers.departed(number);
      if (members.get(number) === member) members.delete(number);
      if (stopping) return;
      const ranMs = Date.now() - member.startedAt;
      if (ranMs >= STABLE_RUN_MS) delayMs = RESTART_BACKOFF.initialMs;
      logger.error({ worker: number, pid: worker.process.pid, code, signal, ranMs, restartInMs: delayMs }, "worker exited: restarting it");
      const wait = delayMs;
      delayMs = Math.min(delayMs * 2, RESTART_BACKOFF.maxMs);
      setTimeout(() => {
        if (!stopping) void fork(number).catch((err: Error) => logger.error({ worker: number, err: err.message }, "worker did not start"));
      }, wait).unref();
    });
    return (async () => {
      await Promise.race([hello, once(worker, "exit").then(() => Promise.reject(new Error(`worker ${number} exited before it started`)))]);
      const start: WorkerStart = { worker: number, file, text, config: encodeConfig(config), managedUrls: managed.urls() };
      const address = await member.rpc.call<NonNullable<typeof firstAddress>>("start", start, START_TIMEOUT_MS);
      firstAddress ??= address;
      // What changed since the configuration was read: rotated certificates, ACME hand-overs, challenges.
      await member.rpc.call("certificates", { certificates: served.loaded }, CALL_TIMEOUT_MS);
      for (const certificate of acmeCertificates.values()) await member.rpc.call("acmeCertificate", certificate, CALL_TIMEOUT_MS);
      for (const change of responder.pending()) await member.rpc.call("challenge", change, CALL_TIMEOUT_MS);
      // A reload that committed while this worker started did not include it: it catches up before serving.
      if (start.text !== text) {
        const catchUp: WorkerPrepare = { text, config: encodeConfig(config), managedUrls: managed.urls() };
        const outcome = await member.rpc.call<ReloadOutcome>("prepare", catchUp, CALL_TIMEOUT_MS);
        if (!outcome.ok) {
          // Never two configurations at once: it starts again, from the one in service.
          worker.kill("SIGKILL");
          throw new Error(`worker ${number} could not take the configuration reloaded while it started: ${outcome.errors.join("; ")}`);
        }
        await member.rpc.call("commit", {}, CALL_TIMEOUT_MS);
      }
      member.ready = true;
      logger.info({ worker: number, pid: worker.process.pid }, "worker started");
    })();
  }

  let acme: AcmeManager | null = null;
  const createAcme = (forConfig: GatewayConfig) =>
    !acmeSites(forConfig).length ? null : loadAcme.loaded()!.createAcmeManager(forConfig, {
      responder,
      logger,
      onCertificate: (site, certPem, keyPem) => {
        served.acmeCertificate(site, certPem, keyPem);
        acmeCertificates.set(site, { site, certPem, keyPem });
        void broadcast("acmeCertificate", { site, certPem, keyPem });
      },
    });

  async function reload(): Promise<ReloadOutcome> {
    return serialized(async () => {
      let nextConfig: GatewayConfig;
      let nextText: string;
      try {
        nextText = await readFile(file, "utf8");
        nextConfig = await loadConfig(file);
        await managed.start(nextConfig);
        await loadAcme(nextConfig);
      } catch (err) {
        const errors = err instanceof ConfigError ? err.message.split("\n") : [(err as Error).message];
        logger.error({ errors }, "configuration reload failed: the running configuration stays in service");
        await broadcast("reloadFailed", {});
        return { ok: false, errors };
      }
      const ready = [...members.values()].filter((m) => m.ready);
      const next: WorkerPrepare = { text: nextText, config: encodeConfig(nextConfig), managedUrls: managed.urls() };
      const prepared = await Promise.allSettled(ready.map((m) => m.rpc.call<ReloadOutcome>("prepare", next, CALL_TIMEOUT_MS)));
      const errors = [
        ...new Set(prepared.flatMap((result) => (result.status === "rejected" ? [(result.reason as Error).message] : result.value.ok ? [] : result.value.errors))),
      ];
      if (errors.length > 0) {
        await Promise.allSettled(ready.map((m) => m.rpc.call("abort", {}, CALL_TIMEOUT_MS)));
        await managed.prune([config]);
        logger.error({ errors }, "configuration reload failed in a worker: no worker switched, the running configuration stays in service");
        return { ok: false, errors };
      }
      await Promise.allSettled(ready.map((m) => m.rpc.call("commit", {}, CALL_TIMEOUT_MS)));
      const previous = config;
      config = nextConfig;
      text = nextText;
      const reloaded = await loadSiteCertificates(config);
      const acmeChanged = JSON.stringify(acmeSites(previous)) !== JSON.stringify(acmeSites(config));
      served.replaceLoaded(reloaded.certificates, defaultSite(), acmeSiteNames(config), { keepHandOvers: !acmeChanged });
      if (acmeChanged) {
        acmeCertificates.clear();
        void acme?.stop();
        acme = createAcme(config);
        acme?.start().catch((err: Error) => logger.error({ err: err.message }, "the ACME manager did not start"));
      } else {
        acme?.refreshFromDisk().catch((err: Error) => logger.error({ err: err.message }, "reading stored ACME certificates failed"));
      }
      // The workers drain requests of the old configuration themselves; its registries stop after that.
      setTimeout(() => void serialized(() => managed.prune([config])), previous.timeouts.drain).unref();
      const sites = config.sites.map(siteName);
      const warnings = keysNeedingRestart(initial, config);
      logger.info({ sites, workers: ready.length }, "configuration reloaded in every worker");
      return { ok: true, sites, warnings };
    });
  }

  async function rotateCertificates(site?: string): Promise<RotationOutcome> {
    const outcome = await rotateServedCertificates({ config: () => config, acme: () => acme, served, info: () => store.info(), serialized }, site);
    // Made once here, served by every worker before the answer goes out.
    const results = await broadcast("certificates", { certificates: served.loaded });
    const failed = results.filter((r) => r.status === "rejected").map((r) => ((r as PromiseRejectedResult).reason as Error).message);
    for (const result of outcome.certificates) logger[result.outcome === "failed" ? "error" : "info"]({ ...result }, `certificate rotation: ${result.site} ${result.outcome}`);
    return failed.length ? { ...outcome, ok: false, errors: [...outcome.errors, ...failed.map((e) => `a worker did not take the new certificates: ${e}`)] } : outcome;
  }

  const metricsOfWorkers = new WorkerMetrics(() => [...members.values()].filter((m) => m.ready));
  const admin = createAdminServer(
    {
      listening: () => !stopping && [...members.values()].some((m) => m.ready),
      backends: () => {
        const resolve = managed.resolver(config);
        return config.sites.flatMap((s) => siteBackends(s).map((backend) => ({ pool: siteName(s), url: resolve(backend), healthy: true, outstanding: 0 })));
      },
    },
    config.metrics.enabled ? metricsOfWorkers : null,
    { reload, rotateCertificates },
    () => config.admin.hosts,
    adminCredential,
  );

  try {
    await Promise.all(Array.from({ length: count }, (_, index) => fork(index + 1)));
    admin.listen(config.admin.listen.port, config.admin.listen.host);
    await once(admin, "listening");
  } catch (err) {
    stopping = true;
    for (const member of members.values()) member.worker.kill("SIGKILL");
    await managed.stop();
    throw err;
  }
  const adminAddress = admin.address() as AddressInfo;
  logger.info(
    {
      workers: count,
      https: `${firstAddress!.https.address}:${firstAddress!.https.port}`,
      admin: `${adminAddress.address}:${adminAddress.port}`,
      http: firstAddress!.http ? `${firstAddress!.http.address}:${firstAddress!.http.port}` : null,
      caFile: firstAddress!.caFile,
      sites: config.sites.map((s) => ({ name: siteName(s), hosts: s.hosts })),
    },
    "gateway ready",
  );
  await loadAcme(config);
  acme = createAcme(config);
  await acme?.start().catch((err: Error) => logger.error({ err: err.message }, "the ACME manager did not start"));

  const snapshots = setInterval(() => void metricsOfWorkers.snapshot(), SNAPSHOT_EVERY_MS).unref();

  const shutdown = async (signal: string) => {
    clearInterval(snapshots);
    if (stopping) return;
    stopping = true;
    const drainMs = config.timeouts.drain;
    logger.info({ signal, drainMs }, "shutting down: every worker drains its requests in flight");
    admin.close();
    await Promise.allSettled([...members.values()].map((m) => m.rpc.call("shutdown", { drainMs }, drainMs + 10_000)));
    await Promise.all([...members.values()].map((m) => (m.worker.isDead() ? undefined : once(m.worker, "exit"))));
    await acme?.stop();
    await managed.stop();
    await counters.close();
    logger.info("gateway stopped");
    process.exit(0);
  };
  process.on("SIGTERM", () => void shutdown("SIGTERM"));
  process.on("SIGINT", () => void shutdown("SIGINT"));
  process.on("SIGHUP", () => {
    logger.info({ signal: "SIGHUP", file }, "signal received: reloading the configuration");
    void reload();
  });
}

type MetricsJson = Awaited<ReturnType<Registry["getMetricsAsJSON"]>>;

/** prom-client, for summing the workers' metrics: loaded by the first scrape (or worker exit), not at start. */
const promClient = () => import("prom-client");

/**
 * /metrics for the whole cluster: every worker's metrics summed (gauges as each metric's `aggregator`
 * says). A worker that dies takes its counts with it, and its replacement starts from zero: summed counters
 * would go backwards, which Prometheus reads as a reset. So each worker's last reading is kept, and when it
 * dies its counters and histograms are carried on in `carried`: the sum never drops.
 */
class WorkerMetrics {
  readonly #latest = new Map<number, MetricsJson>();
  #carried: MetricsJson | null = null;
  /** Departures are folded into `carried` one after the other; a scrape waits for them. */
  #departures: Promise<void> = Promise.resolve();
  /** prom-client's, known once it is loaded (by the first scrape, before the answer goes out). */
  contentType = "";

  constructor(private readonly live: () => Member[]) {}

  async snapshot(): Promise<void> {
    const members = this.live();
    const readings = await Promise.allSettled(members.map((m) => m.rpc.call<MetricsJson>("metrics", {}, 5000)));
    readings.forEach((reading, index) => {
      if (reading.status === "fulfilled") this.#latest.set(members[index]!.number, reading.value);
    });
  }

  async exposition(): Promise<string> {
    const { AggregatorRegistry } = await promClient();
    this.contentType = AggregatorRegistry.PROMETHEUS_CONTENT_TYPE;
    await this.snapshot();
    await this.#departures;
    const all = [...this.#latest.values(), ...(this.#carried ? [this.#carried] : [])];
    return all.length ? AggregatorRegistry.aggregate(all).metrics() : "";
  }

  /** Worker `number` is gone: what it counted stays counted. */
  departed(number: number): void {
    const last = this.#latest.get(number);
    this.#latest.delete(number);
    if (!last) return;
    // prom-client's JSON says "counter" / "histogram" at run time; its typings call that an enum.
    const cumulative = last.filter((metric) => ["counter", "histogram"].includes(String(metric.type)));
    this.#departures = this.#departures.then(async () => {
      const { AggregatorRegistry } = await promClient();
      this.#carried = await AggregatorRegistry.aggregate([cumulative, ...(this.#carried ? [this.#carried] : [])]).getMetricsAsJSON();
    });
  }
}

/** The responder ACME orders fill here, repeating every change to every worker (which answer the CA). */
class BroadcastingResponder extends AcmeChallengeResponder {
  readonly #pending = new Map<string, ChallengeChange>();
  #lastAnnounced: Promise<unknown> = Promise.resolve();

  constructor(private readonly announce: (change: ChallengeChange) => Promise<unknown>) {
    super();
  }

  /** Every worker has taken the challenges added so far (the kernel may hand the CA's connection to any). */
  override async published(): Promise<void> {
    await this.#lastAnnounced;
  }

  /** Every challenge pending now, for a worker that starts while orders are in flight. */
  pending(): ChallengeChange[] {
    return [...this.#pending.values()];
  }

  override addHttpChallenge(token: string, keyAuthorization: string): void {
    super.addHttpChallenge(token, keyAuthorization);
    this.#change(`http:${token}`, { kind: "http", token, keyAuthorization });
  }

  override removeHttpChallenge(token: string): void {
    super.removeHttpChallenge(token);
    this.#change(`http:${token}`, { kind: "http", token, keyAuthorization: null });
  }

  override addAlpnChallenge(host: string, certPem: string, keyPem: string): void {
    super.addAlpnChallenge(host, certPem, keyPem);
    this.#change(`alpn:${host}`, { kind: "alpn", host, certPem, keyPem });
  }

  override removeAlpnChallenge(host: string): void {
    super.removeAlpnChallenge(host);
    this.#change(`alpn:${host}`, { kind: "alpn", host, certPem: null, keyPem: null });
  }

  #change(key: string, change: ChallengeChange): void {
    const removed = change.kind === "http" ? change.keyAuthorization === null : change.certPem === null;
    if (removed) this.#pending.delete(key);
    else this.#pending.set(key, change);
    this.#lastAnnounced = this.announce(change);
  }
}

export type { SiteCertificate };
