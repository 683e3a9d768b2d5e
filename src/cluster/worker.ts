// A worker of the cluster (workers > 1): it accepts connections on the shared listeners and runs the
// request pipeline in a local data plane (control/local-data-plane.ts), like a gateway of one process, with
// no control plane of its own: the primary's (cluster/fleet-data-plane.ts) drives it through calls: start,
// prepare/commit/abort a reload, serve rotated or ACME certificates, answer ACME challenges, report
// readiness and metrics, shut down. The primary also keeps the in-memory counters (cluster/shared.ts).
import type { ManagedUrls } from "../backends/managed.js";
import { decodeConfig } from "../config/helpers.js";
import type { ChallengeChange, CommitOptions } from "../control/data-plane.js";
import { LocalDataPlane } from "../control/local-data-plane.js";
import { createLogger, type Logger } from "../observe/log.js";
import { metrics } from "../observe/metrics.js";
import type { SiteCertificate } from "../tls/store.js";
import { Rpc } from "./rpc.js";
import { primaryCounters } from "./shared.js";

/** A configuration as the primary hands it to a worker. */
export interface WorkerConfig {
  /** Validated by the primary, as encodeConfig wrote it. */
  config: string;
  /** Where the primary's managed registries listen. */
  managedUrls: ManagedUrls;
}

export interface WorkerStart extends WorkerConfig {
  worker: number;
}

export interface WorkerCommit extends CommitOptions {
  /** Named back in the `retired` call, once the replaced generation has no request left. */
  serial: number;
}

export function runWorker(): void {
  let plane: LocalDataPlane | null = null;
  let logger: Logger | null = null;
  const running = () => {
    if (!plane) throw new Error("this worker has not started");
    return plane;
  };
  const rpc: Rpc = new Rpc((message) => process.send!(message), {
    async start(start: WorkerStart) {
      // Validated by the primary: a worker loads neither the YAML parser nor the schema (zod).
      const config = decodeConfig(start.config);
      logger = createLogger(config.log).child({ worker: start.worker });
      metrics.setWorker(start.worker);
      plane = new LocalDataPlane(logger, { role: "worker", counters: primaryCounters(rpc) });
      const addresses = await plane.start(config, start.managedUrls);
      logger.info({ https: `${addresses.https.address}:${addresses.https.port}` }, "worker ready");
      return addresses;
    },
    prepare: ({ config, managedUrls }: WorkerConfig) => running().prepare(decodeConfig(config), managedUrls),
    async commit({ serial, ...options }: WorkerCommit) {
      const { retired } = await running().commit(options);
      void retired.finally(() => rpc.call("retired", { serial }, 30_000).catch(() => {}));
    },
    abort: () => running().abort(),
    reloaded: ({ ok }: { ok: boolean }) => running().reloaded(ok),
    readiness: () => running().readiness(),
    async certificates({ certificates }: { certificates: SiteCertificate[] }) {
      await running().replaceCertificates(certificates);
      return running().certificates.info().map((c) => ({ site: c.site, serial: c.serial }));
    },
    acmeCertificate: ({ site, certPem, keyPem }: { site: string; certPem: string; keyPem: string }) => running().acmeCertificate(site, certPem, keyPem),
    challenge: (change: ChallengeChange) => running().challenge(change),
    /** Read by the primary, which sums every worker's (cluster/worker-metrics.ts). */
    metrics: () => metrics.registry.getMetricsAsJSON(),
    async shutdown({ drainMs }: { drainMs: number }) {
      await plane?.shutdown(drainMs);
      logger?.info("worker stopped");
      // After the answer is on its way: the primary counts this as an orderly exit.
      setTimeout(() => process.exit(0), 50);
    },
  });
  process.on("message", (message) => rpc.receive(message));
  // Messages sent before this listener existed would be lost: the primary waits for this one first.
  process.send!({ rg: "hello" });
  // The primary is gone (killed): nothing would drain or restart this worker, so it leaves too.
  process.on("disconnect", () => {
    logger?.error("the cluster's primary is gone: this worker stops");
    void (plane?.shutdown(1000) ?? Promise.resolve()).finally(() => process.exit(1));
  });
  // Signals go to the whole process group (Ctrl-C): the primary decides when this worker stops.
  process.on("SIGINT", () => {});
  process.on("SIGTERM", () => {});
  process.on("SIGHUP", () => {});
}
