// A worker of the cluster (workers > 1): it accepts connections on the shared listeners and runs the
// request pipeline, like a single gateway process, except for what must be one for the whole gateway. The
// primary (cluster/primary.ts) runs the managed registries, the ACME orders and the admin listener, keeps the
// in-memory counters (cluster/shared.ts), and drives this worker through calls: start, prepare/commit/abort
// a reload, serve rotated or ACME certificates, answer ACME challenges, shut down.
import { RemoteManagedRegistries, type ManagedUrls } from "../backends/managed.js";
import { decodeConfig } from "../config/helpers.js";
import { startGateway, type RunningGateway } from "../gateway.js";
import { createLogger, type Logger } from "../observe/log.js";
import { metrics } from "../observe/metrics.js";
import type { SiteCertificate } from "../tls/store.js";
import { Rpc } from "./rpc.js";
import { primaryCounters } from "./shared.js";

export interface WorkerStart {
  worker: number;
  file: string;
  text: string;
  /** The configuration the primary validated from `text`, as encodeConfig wrote it. */
  config: string;
  managedUrls: ManagedUrls;
}

/** A reload's first phase: the configuration (encodeConfig) every worker builds and checks. */
export interface WorkerPrepare {
  text: string;
  config: string;
  managedUrls: ManagedUrls;
}

export type ChallengeChange =
  | { kind: "http"; token: string; keyAuthorization: string | null }
  | { kind: "alpn"; host: string; certPem: string | null; keyPem: string | null };

export function runWorker(): void {
  let gateway: RunningGateway | null = null;
  let logger: Logger | null = null;
  const managed = new RemoteManagedRegistries({});
  const running = () => {
    if (!gateway) throw new Error("this worker has not started");
    return gateway;
  };
  const rpc = new Rpc((message) => process.send!(message), {
    async start(start: WorkerStart) {
      // Validated by the primary: a worker loads neither the YAML parser nor the schema (zod).
      const config = decodeConfig(start.config);
      logger = createLogger(config.log).child({ worker: start.worker });
      managed.update(start.managedUrls);
      metrics.setWorker(start.worker);
      gateway = await startGateway(config, logger, { worker: { managed, counters: primaryCounters(rpc) } });
      return { https: gateway.https, http: gateway.http, caFile: gateway.caFile };
    },
    prepare({ config, managedUrls }: WorkerPrepare) {
      managed.update(managedUrls);
      return running().prepareReload(decodeConfig(config));
    },
    commit: () => running().commitReload(),
    abort: () => running().abortReload(),
    // The primary could not even read the new configuration: counted here, where the metrics are.
    reloadFailed: () => metrics.configReloaded(false),
    certificates({ certificates }: { certificates: SiteCertificate[] }) {
      running().served.replaceSome(certificates);
      return running().certificates.info().map((c) => ({ site: c.site, serial: c.serial }));
    },
    acmeCertificate({ site, certPem, keyPem }: { site: string; certPem: string; keyPem: string }) {
      running().served.acmeCertificate(site, certPem, keyPem);
    },
    challenge(change: ChallengeChange) {
      const { responder } = running();
      if (change.kind === "http") {
        if (change.keyAuthorization === null) responder.removeHttpChallenge(change.token);
        else responder.addHttpChallenge(change.token, change.keyAuthorization);
      } else if (change.certPem === null || change.keyPem === null) responder.removeAlpnChallenge(change.host);
      else responder.addAlpnChallenge(change.host, change.certPem, change.keyPem);
    },
    /** Read by the primary, which sums every worker's (cluster/primary.ts WorkerMetrics). */
    metrics: () => metrics.registry.getMetricsAsJSON(),
    async shutdown({ drainMs }: { drainMs: number }) {
      await gateway?.shutdown(drainMs);
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
    void (gateway?.shutdown(1000) ?? Promise.resolve()).finally(() => process.exit(1));
  });
  // Signals go to the whole process group (Ctrl-C): the primary decides when this worker stops.
  process.on("SIGINT", () => {});
  process.on("SIGTERM", () => {});
  process.on("SIGHUP", () => {});
}
