// The data plane of one process: the HTTPS and plain-HTTP listeners, the certificates they present, the
// ACME challenges they answer, and the generation in service (generation.ts: everything derived from one
// configuration). A reload builds the next generation completely (prepare), swaps it in for new requests
// (commit), and retires the old one once its last request ends. Used by a gateway of one process and by
// every worker of a cluster (cluster/worker.ts); the control plane above it is elsewhere.
import { once } from "node:events";
import type http from "node:http";
import type { AddressInfo } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { MemoryAffinity } from "../backends/affinity.js";
import { RemoteManagedRegistries, type ManagedUrls } from "../backends/managed.js";
import { isReplicated } from "../backends/upstream.js";
import type { GatewayConfig } from "../config/schema.js";
import { processCounters, type CounterStore } from "../cluster/shared.js";
import { buildGeneration, retireGeneration, type Generation } from "../generation.js";
import { createHttpsListener, createPlainHttpListener, listen, type HttpsListener, type PlainHttpListener } from "../listeners.js";
import type { Logger } from "../observe/log.js";
import { metrics } from "../observe/metrics.js";
import { createProcessContext, type FleetRole, type ProcessContext } from "../process/context.js";
import { acmeSiteNames, acmeSites } from "../tls/acme-sites.js";
import { AcmeChallengeResponder } from "../tls/acme-challenges.js";
import { ServedCertificates } from "../tls/served-certificates.js";
import { CertificateStore, type SiteCertificate } from "../tls/store.js";
import type { BackendReadiness, ChallengeChange, CommitOptions, Committed, DataPlane, Readiness, ServingAddresses } from "./data-plane.js";

/** Built by start(): what exists only once a first configuration is. */
interface Serving {
  listener: HttpsListener;
  plainHttp: PlainHttpListener | null;
  certificates: CertificateStore;
  served: ServedCertificates;
  stopWatching: () => void;
}

export class LocalDataPlane implements DataPlane {
  /** The challenges this process answers, filled by the control plane. */
  readonly responder = new AcmeChallengeResponder();
  /** Where managed backends listen, as the control plane last said. */
  readonly #managed = new RemoteManagedRegistries({});
  #serving: Serving | null = null;
  /** The generation new requests start on. */
  #current: Generation | null = null;
  /** Replaced generations whose requests are still finishing. */
  readonly #retiring = new Set<Generation>();
  /** A reload's first phase waits here for its verdict. */
  #prepared: Generation | null = null;
  #draining = false;

  /** Made by the first build: what this process is, for every generation it builds. */
  #context: ProcessContext | null = null;
  /** Counts aborts: a prepare that an abort overtook discards what it built. */
  #attempts = 0;

  constructor(
    private readonly logger: Logger,
    /** A cluster worker's: its counts live in the primary. */
    private readonly fleet: { role: FleetRole; counters: CounterStore } = { role: "single", counters: processCounters },
  ) {}

  /** The one place a generation is built: start and reload alike. */
  #build(config: GatewayConfig, managed: ManagedUrls): Promise<Generation> {
    this.#managed.update(managed);
    // metrics.enabled only changes with a restart: the first configuration's holds for the process.
    this.#context ??= createProcessContext({ ...this.fleet, logger: this.logger, metrics, metricsEnabled: config.metrics.enabled, backendsFor: (next) => this.#managed.resolver(next) });
    return buildGeneration(config, this.#context);
  }

  async start(config: GatewayConfig, managed: ManagedUrls): Promise<ServingAddresses> {
    const first = await this.#build(config, managed);
    this.#current = first;
    const loaded = first.certificates.certificates;
    const defaultSite = first.sites.defaultSite.name;
    const certificates = new CertificateStore(loaded, defaultSite, config.tls.minVersion);
    const served = new ServedCertificates(certificates, loaded, defaultSite, acmeSiteNames(config));
    const listener = createHttpsListener(config, certificates, this.responder, this.logger, (req, res) => this.#handle(req, res), this.#context!.metrics);
    this.#serving = { listener, plainHttp: null, certificates, served, stopWatching: () => {} };
    try {
      const addresses = await this.#listen(config);
      this.#serving.stopWatching = this.#watchMetrics(config);
      this.#announce(addresses.https);
      return addresses;
    } catch (err) {
      for (const server of this.#servers()) server.close();
      this.#serving = null;
      await first.discard(); // its Redis connection would keep the process alive
      throw err;
    }
  }

  async #listen(config: GatewayConfig): Promise<ServingAddresses> {
    const serving = this.#serving!;
    await listen(serving.listener.server, config.listen, "HTTPS");
    const https = serving.listener.server.address() as AddressInfo;
    let plain: AddressInfo | null = null;
    if (config.http.listen) {
      serving.plainHttp = createPlainHttpListener(config, this.responder, https.port, this.logger);
      await listen(serving.plainHttp.server, config.http.listen, "plain HTTP");
      plain = serving.plainHttp.server.address() as AddressInfo;
    }
    return { https, http: plain, caFile: this.#current!.certificates.ca?.certPath ?? null };
  }

  #watchMetrics(config: GatewayConfig): () => void {
    const { listener, certificates } = this.#serving!;
    if (config.metrics.enabled) metrics.collectProcessMetrics();
    const unwatch = metrics.watch({
      requestsInFlight: () => this.inFlight(),
      clientConnections: () => listener.connections.open,
      certificates: () => certificates.info(),
      // Replicas only: a lone backend is not health-checked (backends/upstream.ts), so it has no health to report.
      backends: () => this.#backends(true).map((b) => ({ pool: b.pool, backend: b.origin, healthy: b.healthy, outstanding: b.outstanding })),
    });
    metrics.configLoaded();
    return unwatch;
  }

  #announce(https: AddressInfo): void {
    const { ca, issued } = this.#current!.certificates;
    if (ca) {
      const hosts = this.#current!.sites.sites.flatMap((s) => s.hosts).filter((h) => !h.startsWith("*."));
      this.logger.info(
        { caFile: ca.certPath, created: ca.created, dockerCertsD: hosts.map((h) => `/etc/docker/certs.d/${h}:${https.port}/ca.crt`) },
        "generated certificates are signed by this CA: copy caFile to each dockerCertsD path to trust it",
      );
    }
    if (issued.length) this.logger.info({ sites: issued }, "issued new site certificates");
  }

  /** Every request: counted against the generation it starts on, which serves all of it. */
  #handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    if (this.#draining) res.setHeader("Connection", "close");
    const generation = this.#current!;
    generation.track(res);
    void generation.handle(req, res);
  }

  async prepare(config: GatewayConfig, managed: ManagedUrls): Promise<void> {
    await this.abort();
    const attempt = this.#attempts;
    const next = await this.#build(config, managed);
    try {
      this.#serving!.served.validate(next.certificates.certificates, next.sites.defaultSite.name);
      // An abort that came while this was built (the primary gave up waiting) wins: nothing is kept half-held.
      if (attempt !== this.#attempts) throw new Error("the reload was aborted while this worker prepared it");
    } catch (err) {
      await next.discard();
      throw err;
    }
    this.#prepared = next;
  }

  async commit({ keepAcmeHandOvers }: CommitOptions): Promise<Committed> {
    const next = this.#prepared;
    if (!next) throw new Error("no prepared configuration to commit");
    this.#prepared = null;
    const previous = this.#current!;
    const { served, listener, plainHttp } = this.#serving!;
    served.replaceLoaded(next.certificates.certificates, next.sites.defaultSite.name, acmeSiteNames(next.config), { keepHandOvers: keepAcmeHandOvers });
    this.#current = next;
    listener.configure(next.config);
    plainHttp?.configure(next.config);
    this.logger.level = next.config.log.level;
    this.#retiring.add(previous);
    const retired = retireGeneration(previous, previous.config.timeouts.drain).finally(() => this.#retiring.delete(previous));
    return { retired };
  }

  async abort(): Promise<void> {
    this.#attempts++;
    const abandoned = this.#prepared;
    this.#prepared = null;
    await abandoned?.discard();
  }

  reloaded(ok: boolean): void {
    metrics.configReloaded(ok);
  }

  async readiness(): Promise<Readiness> {
    return { listening: (this.#serving?.listener.server.listening ?? false) && !this.#draining, backends: this.#backends(false) };
  }

  metrics(): typeof metrics {
    return metrics;
  }

  async replaceCertificates(certificates: readonly SiteCertificate[]): Promise<string[]> {
    this.#serving!.served.replaceSome([...certificates]);
    return [];
  }

  async acmeCertificate(site: string, certPem: string, keyPem: string): Promise<void> {
    this.#serving!.served.acmeCertificate(site, certPem, keyPem);
  }

  async challenge(change: ChallengeChange): Promise<void> {
    applyChallenge(this.responder, change);
  }

  /** What this process serves (the control plane keeps its own copy of what it hands down). */
  get certificates(): CertificateStore {
    return this.#serving!.certificates;
  }

  get served(): ServedCertificates {
    return this.#serving!.served;
  }

  /** Requests in flight on every generation: the one in service and those retiring. */
  inFlight(): number {
    let count = this.#current?.inFlight ?? 0;
    for (const generation of this.#retiring) count += generation.inFlight;
    return count;
  }

  upstreamSocketsInUse(): number {
    return this.#current!.forwarder.upstreamSocketsInUse();
  }

  /** Upload sessions this process's memory holds (null: they are kept elsewhere, by Redis or the cluster's primary). */
  uploadSessions(): number | null {
    const affinity = this.#current!.affinity;
    return affinity instanceof MemoryAffinity ? affinity.size : null;
  }

  async shutdown(drainMs: number): Promise<void> {
    if (!this.#serving) return;
    this.#draining = true;
    const { listener, stopWatching } = this.#serving;
    this.logger.info({ inFlight: this.inFlight(), drainMs }, "shutting down: no new connections, draining requests in flight");
    const servers = this.#servers();
    const closed = Promise.all(servers.map((server) => once(server, "close")));
    for (const server of servers) server.close();
    stopWatching();
    listener.server.closeIdleConnections();
    const deadline = Date.now() + drainMs;
    while (this.inFlight() > 0 && Date.now() < deadline) {
      await sleep(50);
      listener.server.closeIdleConnections();
    }
    if (this.inFlight() > 0) this.logger.warn({ inFlight: this.inFlight() }, "drain time over: cutting the requests still in flight");
    for (const server of servers) server.closeAllConnections();
    await this.abort();
    const generations = [this.#current!, ...this.#retiring];
    await Promise.all(generations.map((generation) => generation.closeStages()));
    for (const generation of generations) await generation.release();
    await closed;
  }

  /** Every backend of every pool of every site; `replicasOnly`: those that are health-checked. */
  #backends(replicasOnly: boolean): BackendReadiness[] {
    const pools = (this.#current?.sites.sites ?? []).flatMap((site) => site.upstreams.pools()).filter((pool) => !replicasOnly || isReplicated(pool));
    return pools.flatMap((pool) =>
      pool.members.map((member) => ({ pool: pool.name, url: member.url.href, origin: member.origin, healthy: member.healthy, outstanding: member.outstanding })),
    );
  }

  #servers(): http.Server[] {
    if (!this.#serving) return [];
    return [this.#serving.listener.server, ...(this.#serving.plainHttp ? [this.#serving.plainHttp.server] : [])];
  }
}


function applyChallenge(responder: AcmeChallengeResponder, change: ChallengeChange): void {
  if (change.kind === "http") {
    if (change.keyAuthorization === null) responder.removeHttpChallenge(change.token);
    else responder.addHttpChallenge(change.token, change.keyAuthorization);
  } else if (change.certPem === null || change.keyPem === null) responder.removeAlpnChallenge(change.host);
  else responder.addAlpnChallenge(change.host, change.certPem, change.keyPem);
}
