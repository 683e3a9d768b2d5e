// The runtime of one gateway process: it owns the listeners, the certificates being served, and the
// generation in service (generation.ts: everything derived from one configuration). A reload builds the
// next generation completely, swaps it in for new requests, and retires the old one once its last request
// ends. Requests themselves run through pipeline.ts; the process model (one process, or a primary and
// workers) is cluster/'s.
import { once } from "node:events";
import type http from "node:http";
import type { AddressInfo } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { MemoryAffinity } from "./backends/affinity.js";
import type { ReloadOutcome } from "./admin-actions.js";
import { createAdminServer } from "./admin.js";
import { loadAdminToken, type AdminCredential } from "./admin-token.js";
import { ManagedRegistries, type ManagedBackends, type ManagedOptions } from "./backends/managed.js";
import { isReplicated } from "./backends/upstream.js";
import { keysNeedingRestart } from "./config/restart-keys.js";
import type { GatewayConfig } from "./config/schema.js";
import { buildGeneration, retireGeneration, type Generation } from "./generation.js";
import { createHttpsListener, createPlainHttpListener, listen, type HttpsListener, type PlainHttpListener } from "./listeners.js";
import type { Logger } from "./observe/log.js";
import { metrics } from "./observe/metrics.js";
import type { AcmeCertificates, AcmeManagerOptions } from "./tls/acme.js";
import { acmeSiteNames, acmeSites, loadAcme } from "./tls/acme-sites.js";
import { AcmeChallengeResponder } from "./tls/acme-challenges.js";
import { watchCertificateExpiry } from "./tls/expiry.js";
import { rotateServedCertificates, type RotationOutcome } from "./tls/rotation.js";
import { ServedCertificates } from "./tls/served-certificates.js";
import { CertificateStore } from "./tls/store.js";

export interface GatewayOptions {
  /** Where a reload without a configuration of its own reads one (serve: its --config file). */
  configSource?: () => Promise<GatewayConfig>;
  /** ACME manager tuning (tests poll pebble faster). */
  acme?: Pick<AcmeManagerOptions, "statusPolling" | "transport" | "backoff" | "lock">;
  /** Supervision of managed backends (tests shorten the restart delays). */
  managed?: ManagedOptions;
  /**
   * Set in a worker process of a cluster (cluster/worker.ts): the primary runs the managed registries, the
   * ACME orders and the admin listener for every worker, so this process starts none of them.
   */
  worker?: { managed: ManagedBackends };
}

export interface RunningGateway {
  https: AddressInfo;
  /** Port 0 in a cluster worker: the primary has the admin listener. */
  admin: AddressInfo;
  /** The plain-HTTP listener (ACME HTTP-01, redirects to HTTPS), when http.listen is set. */
  http: AddressInfo | null;
  /** The generated CA clients must trust, when any site uses generated certificates. */
  caFile: string | null;
  certificates: CertificateStore;
  /** What each site presents; a cluster worker is handed rotated and ACME certificates through it. */
  served: ServedCertificates;
  /** Pending ACME challenges this process answers (a cluster worker's are filled by the primary). */
  responder: AcmeChallengeResponder;
  /** The ACME manager in service; null when no site uses ACME. */
  acme(): AcmeCertificates | null;
  inFlight(): number;
  upstreamSocketsInUse(): number;
  /** Upload sessions this process's memory holds (null: they are kept by the cluster's primary). */
  uploadSessions(): number | null;
  /**
   * Builds the new configuration completely (by default re-read from configSource), then swaps it in for
   * new requests; on any error the running one stays and the outcome carries the error lines.
   */
  reload(config?: GatewayConfig): Promise<ReloadOutcome>;
  /**
   * A cluster reload in two phases (cluster/primary.ts): build the configuration and check every
   * certificate without serving it, then commit (swap it in) or abort (discard it), in every worker.
   */
  prepareReload(config: GatewayConfig): Promise<ReloadOutcome>;
  commitReload(): ReloadOutcome;
  abortReload(): Promise<void>;
  /** `cert rotate`: new certificates for one site (name or host) or all, served to new handshakes at once. */
  rotateCertificates(site?: string): Promise<RotationOutcome>;
  /** Stops accepting, lets requests in flight finish for up to drainMs, then closes everything. */
  shutdown(drainMs: number): Promise<void>;
}

/** Starts a gateway process: the first generation, then the listeners; a broken configuration starts nothing. */
export async function startGateway(config: GatewayConfig, logger: Logger, options: GatewayOptions = {}): Promise<RunningGateway> {
  // A cluster worker has no admin listener: the primary's demands the token.
  const adminCredential = options.worker ? null : await loadAdminToken(config, logger);
  // Managed backends first: the generation forwards to their URLs, known once they run.
  const managed: ManagedBackends = options.worker?.managed ?? new ManagedRegistries(logger, options.managed);
  await managed.start(config);
  let first: Generation;
  try {
    first = await buildGeneration(config, logger, null, managed.resolver(config));
  } catch (err) {
    await managed.stop();
    throw err;
  }
  // acme.js (acme-client with it) is loaded by the first configuration with an ACME site.
  if (!options.worker) await loadAcme(config);
  const runtime = new GatewayRuntime(config, first, logger, options, managed, adminCredential);
  try {
    await runtime.listen();
  } catch (err) {
    await runtime.abandon();
    throw err;
  }
  await runtime.started();
  return runtime;
}

/** A prepared reload: the next generation, built and checked, not yet serving. */
interface PreparedReload {
  config: GatewayConfig;
  next: Generation;
}

class GatewayRuntime implements RunningGateway {
  https: AddressInfo = NO_ADDRESS;
  admin: AddressInfo = NO_ADDRESS;
  http: AddressInfo | null = null;
  readonly caFile: string | null;
  readonly certificates: CertificateStore;
  readonly served: ServedCertificates;
  /** One for the process: an order that a replaced ACME manager still has in flight keeps being answered. */
  readonly responder = new AcmeChallengeResponder();

  readonly #isWorker: boolean;
  readonly #listener: HttpsListener;
  readonly #adminServer: http.Server;
  #plainHttp: PlainHttpListener | null = null;
  /** The generation new requests start on. */
  #current: Generation;
  /** Replaced generations whose requests are still finishing. */
  readonly #retiring = new Set<Generation>();
  /** A cluster reload's first phase waits here for its verdict. */
  #prepared: PreparedReload | null = null;
  #acme: AcmeCertificates | null;
  #draining = false;
  /** Reloads, and rotations' replacements of the served set, run one at a time. */
  #queue: Promise<unknown> = Promise.resolve();
  #stopWatching: () => void = () => {};

  constructor(
    /** As started: only a restart changes the listeners' addresses. */
    private readonly startConfig: GatewayConfig,
    first: Generation,
    private readonly logger: Logger,
    private readonly options: GatewayOptions,
    private readonly managed: ManagedBackends,
    adminCredential: AdminCredential | null,
  ) {
    this.#isWorker = options.worker !== undefined;
    this.#current = first;
    const loaded = first.certificates.certificates;
    const defaultSite = first.sites.defaultSite.name;
    this.caFile = first.certificates.ca?.certPath ?? null;
    this.certificates = new CertificateStore(loaded, defaultSite, startConfig.tls.minVersion);
    this.served = new ServedCertificates(this.certificates, loaded, defaultSite, acmeSiteNames(startConfig));
    this.#acme = this.#createAcme(startConfig);
    this.#listener = createHttpsListener(startConfig, this.certificates, this.responder, logger, (req, res) => this.#handle(req, res));
    this.#adminServer = createAdminServer(
      {
        listening: () => this.#listener.server.listening && !this.#draining,
        backends: () => this.#backends().map(({ pool, member }) => ({ pool: pool.name, url: member.url, healthy: member.healthy, outstanding: member.outstanding })),
      },
      startConfig.metrics.enabled ? metrics : null,
      { reload: () => this.reload(), rotateCertificates: (site) => this.rotateCertificates(site) },
      () => this.#current.config.admin.hosts,
      adminCredential,
    );
  }

  /** Every request: counted against the generation it starts on, which serves all of it. */
  #handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    if (this.#draining) res.setHeader("Connection", "close");
    const generation = this.#current;
    generation.track(res);
    void generation.handle(req, res);
  }

  /** Requests in flight on every generation: the one in service and those retiring. */
  inFlight(): number {
    let count = this.#current.inFlight;
    for (const generation of this.#retiring) count += generation.inFlight;
    return count;
  }

  acme(): AcmeCertificates | null {
    return this.#acme;
  }

  upstreamSocketsInUse(): number {
    return this.#current.forwarder.upstreamSocketsInUse();
  }

  uploadSessions(): number | null {
    const affinity = this.#current.affinity;
    return affinity instanceof MemoryAffinity ? affinity.size : null;
  }

  async listen(): Promise<void> {
    const config = this.startConfig;
    await listen(this.#listener.server, config.listen, "HTTPS");
    this.https = this.#listener.server.address() as AddressInfo;
    if (!this.#isWorker) {
      await listen(this.#adminServer, config.admin.listen, "admin");
      this.admin = this.#adminServer.address() as AddressInfo;
    }
    if (config.http.listen) {
      this.#plainHttp = createPlainHttpListener(config, this.responder, this.https.port);
      await listen(this.#plainHttp.server, config.http.listen, "plain HTTP");
      this.http = this.#plainHttp.server.address() as AddressInfo;
    }
  }

  /** A start that failed to listen: closes what was opened. */
  async abandon(): Promise<void> {
    for (const server of this.#servers()) server.close();
    await this.#current.discard(); // its Redis connection would keep the process alive
    await this.managed.stop();
  }

  /** Once listening: metrics, the ready line, then the ACME manager (its challenges are answered here). */
  async started(): Promise<void> {
    const config = this.startConfig;
    const connections = this.#listener.connections;
    if (config.metrics.enabled) metrics.collectProcessMetrics();
    const unwatchMetrics = metrics.watch({
      requestsInFlight: () => this.inFlight(),
      clientConnections: () => connections.open,
      certificates: () => this.certificates.info(),
      // Replicas only: a lone backend is not health-checked (backends/upstream.ts), so it has no health to report.
      backends: () =>
        this.#backends()
          .filter(({ pool }) => isReplicated(pool))
          .map(({ pool, member }) => ({ pool: pool.name, backend: member.origin, healthy: member.healthy, outstanding: member.outstanding })),
    });
    metrics.configLoaded();
    this.#announce();
    // Until a site's first ACME certificate arrives it is served with its generated one.
    await this.#acme?.start().catch((err: Error) => this.logger.error({ err: err.message }, "the ACME manager did not start"));
    // Once per cluster (the primary's), not once per worker.
    const stopExpiryWarnings = this.#isWorker
      ? () => {}
      : watchCertificateExpiry({ certificates: () => this.certificates.info(), config: () => this.#current.config }, this.logger);
    this.#stopWatching = () => {
      stopExpiryWarnings();
      unwatchMetrics();
    };
  }

  #announce(): void {
    const { ca, issued } = this.#current.certificates;
    const sites = this.#current.sites.sites;
    if (ca) {
      const hostsWithPort = sites.flatMap((s) => s.hosts).filter((h) => !h.startsWith("*."));
      this.logger.info(
        {
          caFile: ca.certPath,
          created: ca.created,
          dockerCertsD: hostsWithPort.map((h) => `/etc/docker/certs.d/${h}:${this.https.port}/ca.crt`),
        },
        "generated certificates are signed by this CA: copy caFile to each dockerCertsD path to trust it",
      );
    }
    if (issued.length) this.logger.info({ sites: issued }, "issued new site certificates");
    this.logger.info(
      {
        https: `${this.https.address}:${this.https.port}`,
        admin: `${this.admin.address}:${this.admin.port}`,
        http: this.http ? `${this.http.address}:${this.http.port}` : null,
        caFile: this.caFile,
        sites: sites.map((s) => ({ name: s.name, hosts: s.hosts, backends: [...new Set(s.upstreams.pools().flatMap((p) => p.members.map((m) => m.origin)))] })),
      },
      // In a cluster the primary says "gateway ready" once every worker is.
      this.#isWorker ? "worker ready" : "gateway ready",
    );
  }

  reload(given?: GatewayConfig): Promise<ReloadOutcome> {
    return this.#serialized(async () => {
      try {
        const nextConfig = given ?? (await (this.options.configSource ?? noConfigSource)());
        return this.#commit(await this.#prepare(nextConfig));
      } catch (err) {
        return this.#reloadFailed(err);
      }
    });
  }

  prepareReload(nextConfig: GatewayConfig): Promise<ReloadOutcome> {
    return this.#serialized(async () => {
      if (this.#prepared) await this.#prepared.next.discard();
      try {
        this.#prepared = await this.#prepare(nextConfig);
        return { ok: true, sites: this.#prepared.next.sites.sites.map((s) => s.name), warnings: keysNeedingRestart(this.startConfig, nextConfig) };
      } catch (err) {
        this.#prepared = null;
        return this.#reloadFailed(err);
      }
    });
  }

  commitReload(): ReloadOutcome {
    if (!this.#prepared) return { ok: false, errors: ["no prepared configuration to commit"] };
    const outcome = this.#commit(this.#prepared);
    this.#prepared = null;
    return outcome;
  }

  async abortReload(): Promise<void> {
    const abandoned = this.#prepared;
    this.#prepared = null;
    if (abandoned) {
      await abandoned.next.discard();
      await this.#pruneManaged();
      metrics.configReloaded(false);
    }
  }

  /** Builds everything the next configuration needs and checks every certificate; serves nothing yet. */
  async #prepare(nextConfig: GatewayConfig): Promise<PreparedReload> {
    // Registries whose spec is unchanged keep running; new ones start before the generation that uses them.
    await this.managed.start(nextConfig);
    if (!this.#isWorker) await loadAcme(nextConfig);
    const next = await buildGeneration(nextConfig, this.logger, this.#current, this.managed.resolver(nextConfig));
    try {
      this.served.validate(next.certificates.certificates, next.sites.defaultSite.name);
    } catch (err) {
      await next.discard();
      throw err;
    }
    return { config: nextConfig, next };
  }

  /** Swaps a prepared generation in for new requests; cannot fail. */
  #commit({ config: nextConfig, next }: PreparedReload): ReloadOutcome {
    const previous = this.#current;
    const acmeChanged = acmeFingerprint(previous.config) !== acmeFingerprint(nextConfig);
    this.served.replaceLoaded(next.certificates.certificates, next.sites.defaultSite.name, acmeSiteNames(nextConfig), { keepHandOvers: !acmeChanged });
    this.#current = next;
    this.#listener.configure(nextConfig);
    this.#plainHttp?.configure(nextConfig);
    this.logger.level = nextConfig.log.level;
    if (acmeChanged) {
      // Its orders in flight finish (and are still answered) but hand nothing over; the new one adopts them.
      void this.#acme?.stop();
      this.#acme = this.#createAcme(nextConfig);
      this.#acme?.start().catch((err: Error) => this.logger.error({ err: err.message }, "the ACME manager did not start"));
    } else {
      // Adopts what another process sharing the data directory stored meanwhile.
      this.#acme?.refreshFromDisk().catch((err: Error) => this.logger.error({ err: err.message }, "reading stored ACME certificates failed"));
    }
    this.#retiring.add(previous);
    // Once its requests are done, the registries only it used stop (serialized: never under a reload
    // that is about to use one again).
    void retireGeneration(previous, previous.config.timeouts.drain).finally(() => {
      this.#retiring.delete(previous);
      if (!this.#draining) void this.#serialized(() => this.#pruneManaged());
    });
    // Compared with what the listeners were started with: only a restart changes those.
    const warnings = keysNeedingRestart(this.startConfig, nextConfig);
    const sites = next.sites.sites.map((s) => s.name);
    metrics.configReloaded(true);
    this.logger.info({ sites }, "configuration reloaded: new requests use it, requests in flight finish on the old one");
    if (warnings.length) this.logger.warn({ keys: warnings }, `changed keys that apply only after a restart: ${warnings.join(", ")}`);
    return { ok: true, sites, warnings };
  }

  async #reloadFailed(err: unknown): Promise<ReloadOutcome> {
    await this.#pruneManaged(); // what this attempt started
    metrics.configReloaded(false);
    const errors = (err as Error).message.split("\n");
    this.logger.error({ errors }, "configuration reload failed: the running configuration stays in service");
    return { ok: false, errors };
  }

  async rotateCertificates(site?: string): Promise<RotationOutcome> {
    const outcome = await rotateServedCertificates(
      {
        config: () => this.#current.config,
        acme: () => this.#acme,
        served: this.served,
        info: () => this.certificates.info(),
        serialized: (work) => this.#serialized(work),
      },
      site,
    );
    for (const result of outcome.certificates) {
      const level = result.outcome === "failed" ? "error" : "info";
      this.logger[level]({ ...result }, `certificate rotation: ${result.site} ${result.outcome}`);
    }
    for (const error of outcome.errors) this.logger.error({ err: error }, "certificate rotation refused");
    return outcome;
  }

  async shutdown(drainMs: number): Promise<void> {
    this.#draining = true;
    const server = this.#listener.server;
    this.logger.info({ inFlight: this.inFlight(), drainMs }, "shutting down: no new connections, draining requests in flight");
    const listeners = this.#servers();
    const closed = Promise.all(listeners.map((listener) => once(listener, "close")));
    for (const listener of listeners) listener.close();
    this.#stopWatching();
    server.closeIdleConnections();
    const deadline = Date.now() + drainMs;
    while (this.inFlight() > 0 && Date.now() < deadline) {
      await sleep(50);
      server.closeIdleConnections();
    }
    if (this.inFlight() > 0) this.logger.warn({ inFlight: this.inFlight() }, "drain time over: cutting the requests still in flight");
    for (const listener of listeners) listener.closeAllConnections();
    // An order still running when the drain time is over is abandoned; the next start orders again.
    await Promise.race([this.#acme?.stop(), sleep(Math.max(0, deadline - Date.now()), undefined, { ref: false })]);
    const generations = [this.#current, ...this.#retiring];
    await Promise.all(generations.map((generation) => generation.closeStages()));
    for (const generation of generations) await generation.release();
    // After the drain: requests in flight to a managed registry have had their chance to finish.
    await this.managed.stop();
    await closed;
    this.logger.info("gateway stopped");
  }

  #serialized<T>(work: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(work);
    this.#queue = run.catch(() => {});
    return run;
  }

  /** Managed registries no generation in service or still finishing names are stopped. */
  #pruneManaged(): Promise<void> {
    return this.managed.prune([this.#current.config, ...[...this.#retiring].map((generation) => generation.config)]);
  }

  /** In a cluster the primary orders once for every worker and hands the certificates over. */
  #createAcme(config: GatewayConfig): AcmeCertificates | null {
    if (this.#isWorker || !acmeSites(config).length) return null;
    return loadAcme.loaded()!.createAcmeManager(config, {
      ...this.options.acme,
      responder: this.responder,
      logger: this.logger,
      onCertificate: (site, certPem, keyPem) => this.served.acmeCertificate(site, certPem, keyPem),
    });
  }

  #backends() {
    return this.#current.sites.sites.flatMap((site) => site.upstreams.pools()).flatMap((pool) => pool.members.map((member) => ({ pool, member })));
  }

  #servers(): http.Server[] {
    return [this.#listener.server, ...(this.#isWorker ? [] : [this.#adminServer]), ...(this.#plainHttp ? [this.#plainHttp.server] : [])];
  }
}

/** The admin address of a cluster worker (the primary has the admin listener), and of a listener not yet open. */
const NO_ADDRESS: AddressInfo = { address: "", family: "", port: 0 };

function noConfigSource(): Promise<GatewayConfig> {
  return Promise.reject(new Error("this gateway was started without a configuration file to re-read"));
}

/** Everything the ACME manager is built from: when it changes, a reload replaces the manager. */
function acmeFingerprint(config: GatewayConfig): string {
  return JSON.stringify({ dataDir: config.dataDir, sites: acmeSites(config) });
}

