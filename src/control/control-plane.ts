// The control plane: everything the gateway does once, whatever serves the requests below it (a data
// plane: data-plane.ts). It owns the configuration source and the reload queue (one reload at a time: all
// of the data plane prepares, then it commits, or it aborts and the running configuration stays), ACME
// (one manager, replaced when its fingerprint changes), the certificates handed down (rotation, ACME
// hand-overs, expiry warnings), the managed registries (started before a configuration that names them,
// stopped once no configuration in service or still retiring names them), the admin listener, and the
// signals (SIGHUP reloads, SIGTERM/SIGINT drain).
import { once } from "node:events";
import type http from "node:http";
import type { AddressInfo } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import type { ReloadOutcome } from "../admin-actions.js";
import { createAdminServer, listenAdmin } from "../admin.js";
import { loadAdminToken } from "../admin-token.js";
import { ManagedRegistries, type ManagedBackends, type ManagedOptions, type ManagedUrls } from "../backends/managed.js";
import { siteBackends } from "../config/helpers.js";
import { keysNeedingRestart } from "../config/restart-keys.js";
import type { GatewayConfig } from "../config/schema.js";
import type { Logger } from "../observe/log.js";
import { defaultSiteName, siteName } from "../config/site-names.js";
import type { AcmeCertificates, AcmeManagerOptions } from "../tls/acme.js";
import { acmeSiteNames, acmeSites, loadAcme } from "../tls/acme-sites.js";
import { watchCertificateExpiry } from "../tls/expiry.js";
import { rotateServedCertificates, type RotationOutcome } from "../tls/rotation.js";
import { StatusPanel } from "../status/handler.js";
import { ServedCertificates } from "../tls/served-certificates.js";
import { CertificateStore, loadSiteCertificates } from "../tls/store.js";
import type { TlsStore } from "../tls/tls-store.js";
import { fleetTimings, leaseTlsStore } from "../tls/tls-stores.js";
import type { Lease } from "../process/resources.js";
import { FleetSync } from "./fleet-sync.js";
import { X509Certificate } from "node:crypto";
import type { DataPlane, ServingAddresses } from "./data-plane.js";
import { ForwardingResponder } from "./forwarding-responder.js";

export interface ControlPlaneOptions {
  /** Where a reload without a configuration of its own reads one (serve: its --config file). */
  configSource?: () => Promise<GatewayConfig>;
  /** ACME manager tuning (tests poll pebble faster). */
  acme?: Pick<AcmeManagerOptions, "statusPolling" | "transport" | "backoff" | "lock">;
  /** Supervision of managed backends (tests shorten the restart delays). */
  managed?: ManagedOptions;
  /** The managed registries (default: started by this process); a seam for tests. */
  registries?: ManagedRegistryControl;
  /** Makes the ACME manager (default: acme.js's); a seam for tests. */
  createAcmeManager?: (config: GatewayConfig, options: Omit<AcmeManagerOptions, "dataDir" | "sites">) => AcmeCertificates | null;
}

/** The managed registries as the control plane runs them. */
export type ManagedRegistryControl = ManagedBackends & { urls(): ManagedUrls };

/** Everything the ACME manager is built from: when it changes, a reload replaces the manager. */
export function acmeFingerprint(config: GatewayConfig): string {
  return JSON.stringify({ dataDir: config.dataDir, sites: acmeSites(config) });
}

/** Built by start(): exists once the gateway runs. */
interface Running {
  addresses: ServingAddresses;
  admin: http.Server;
  adminAddress: AddressInfo;
  certificates: CertificateStore;
  served: ServedCertificates;
  stopWatching: () => void;
}

export class ControlPlane {
  readonly responder: ForwardingResponder;
  readonly #managed: ManagedRegistryControl;
  #running: Running | null = null;
  /** As started: only a restart changes the listeners' addresses. */
  #startConfig: GatewayConfig | null = null;
  /** The configuration in service. */
  #config: GatewayConfig | null = null;
  /** Replaced configurations the data plane still runs requests on: their managed registries stay. */
  readonly #retiring = new Set<GatewayConfig>();
  #acme: AcmeCertificates | null = null;
  /** Reloads, and rotations' replacements of the served set, run one at a time. */
  #queue: Promise<unknown> = Promise.resolve();
  #stopped: Promise<void> | null = null;
  /** Where certificates and ACME state live, as started (changing tls.store or redis needs a restart). */
  #store: { lease: Lease<Promise<TlsStore>>; store: TlsStore } | null = null;
  /** With the redis store: this gateway's part in the fleet. */
  #fleet: FleetSync | null = null;

  constructor(
    private readonly dataPlane: DataPlane,
    private readonly logger: Logger,
    private readonly options: ControlPlaneOptions = {},
  ) {
    // In a fleet, an order's challenges are answered by every gateway: the CA may reach any of them.
    this.responder = new ForwardingResponder(async (change) => {
      await dataPlane.challenge(change);
      await this.#fleet?.publishChallenge(change);
    });
    this.#managed = options.registries ?? new ManagedRegistries(logger, options.managed);
  }

  /** Starts the data plane on `config`, then the admin listener and ACME; a broken configuration starts nothing. */
  async start(config: GatewayConfig): Promise<void> {
    // Before anything is started: a token file that cannot be read stops the start with nothing to undo.
    const credential = await loadAdminToken(config, this.logger);
    // So is a TLS store without its key or out of reach; held from here on, the data plane shares it.
    this.#store = await holdTlsStore(config);
    if (config.redis && config.tls.store === undefined && this.#store.store.kind === "files") {
      // Said once: a fleet whose gateways lack the store key would otherwise each keep certificates to itself.
      this.logger.warn(
        { store: "files" },
        "certificates stay in dataDir although redis is configured: no store key (GATEWAY_TLS_STORE_KEY or tls.storeKeyFile) to seal them in Redis; set one to share them with a fleet, or tls.store: files",
      );
    }
    let addresses: ServingAddresses;
    try {
      // Managed backends first: the data plane forwards to their URLs, known once they run.
      await this.#managed.start(config);
      await loadAcme(config); // acme.js (acme-client with it) is loaded by the first configuration with an ACME site
      addresses = await this.dataPlane.start(config, this.#managed.urls());
    } catch (err) {
      await this.#managed.stop();
      await this.#store.lease.release();
      throw err;
    }
    this.#startConfig = this.#config = config;
    try {
      const loaded = (await loadSiteCertificates(config, { store: this.#store.store })).certificates;
      const certificates = new CertificateStore(loaded, defaultSiteName(config), config.tls.minVersion);
      const served = new ServedCertificates(certificates, loaded, defaultSiteName(config), acmeSiteNames(config));
      this.#fleet = this.#createFleetSync(this.#store.store);
      const readiness = { readiness: async () => ({ ...(await this.dataPlane.readiness()), ...(this.#stopped ? { listening: false } : {}) }) };
      const dataPlaneMetrics = config.metrics.enabled ? this.dataPlane.metrics() : null;
      const exporter = this.#fleet ? this.#fleet.metrics(dataPlaneMetrics) : dataPlaneMetrics;
      const status = new StatusPanel({
        config: () => this.#config!,
        certificates: () => certificates.info(),
        resolver: (current) => this.#managed.resolver(current),
        readiness,
        exposition: exporter && (() => exporter.exposition()),
      });
      const admin = createAdminServer(
        readiness,
        exporter,
        { reload: () => this.reload(), rotateCertificates: (site) => this.rotateCertificates(site) },
        () => this.#config!.admin.hosts,
        credential,
        status,
      );
      this.#running = { addresses, admin, adminAddress: NO_ADDRESS, certificates, served, stopWatching: () => {} };
      await listenAdmin(admin, config.admin.listen);
      this.#running.adminAddress = admin.address() as AddressInfo;
    } catch (err) {
      this.#running?.admin.close();
      await this.#store?.lease.release();
      await this.dataPlane.shutdown(0);
      await this.#managed.stop();
      throw err;
    }
    await this.#started();
  }

  /** Once serving: the ready line, then the ACME manager (its challenges are answered below) and the expiry warnings. */
  async #started(): Promise<void> {
    const config = this.#config!;
    const running = this.#running!;
    const { https, http: plain, caFile, workers } = running.addresses;
    const resolve = this.#managed.resolver(config);
    this.logger.info(
      {
        https: `${https.address}:${https.port}`,
        admin: `${running.adminAddress.address}:${running.adminAddress.port}`,
        http: plain ? `${plain.address}:${plain.port}` : null,
        caFile,
        ...(workers ? { workers } : {}),
        sites: config.sites.map((s) => ({ name: siteName(s), hosts: s.hosts, backends: [...new Set(siteBackends(s).map((b) => resolve(b).origin))] })),
      },
      "gateway ready",
    );
    // Until a site's first ACME certificate arrives it is served with its generated one.
    this.#acme = this.#createAcme(config);
    await this.#acme?.start().catch((err: Error) => this.logger.error({ err: err.message }, "the ACME manager did not start"));
    await this.#fleet?.start().catch((err: Error) => this.logger.error({ err: err.message }, "joining the fleet's TLS store notices failed: the periodic check still picks up changes"));
    running.stopWatching = watchCertificateExpiry({ certificates: () => running.certificates.info(), config: () => this.#config! }, this.logger);
  }

  get addresses(): ServingAddresses {
    return this.#running!.addresses;
  }

  get adminAddress(): AddressInfo {
    return this.#running!.adminAddress;
  }

  /** The certificates as handed down (rotation and ACME change them here first). */
  get served(): ServedCertificates {
    return this.#running!.served;
  }

  acme(): AcmeCertificates | null {
    return this.#acme;
  }

  /**
   * Builds the new configuration completely in the data plane (by default re-read from configSource), then
   * swaps it in for new requests; on any error the running one stays and the outcome carries the error lines.
   */
  reload(given?: GatewayConfig): Promise<ReloadOutcome> {
    return this.#serialized(async () => {
      // A reload queued behind a shutdown would build a generation nothing retires.
      if (this.#stopped) return { ok: false, errors: ["the gateway is shutting down"] };
      let next: GatewayConfig;
      try {
        next = given ?? (await (this.options.configSource ?? noConfigSource)());
        // Registries whose spec is unchanged keep running; new ones start before the configuration that uses them.
        await this.#managed.start(next);
        await loadAcme(next);
        await this.dataPlane.prepare(next, this.#managed.urls());
      } catch (err) {
        return this.#reloadFailed(err);
      }
      return this.#commit(next);
    });
  }

  async #reloadFailed(err: unknown): Promise<ReloadOutcome> {
    await this.dataPlane.abort();
    await this.#pruneManaged(); // what this attempt started
    this.dataPlane.reloaded(false);
    const errors = (err as Error).message.split("\n");
    this.logger.error({ errors }, "configuration reload failed: the running configuration stays in service");
    return { ok: false, errors };
  }

  /** Every part of the data plane prepared `next`: it is swapped in. */
  async #commit(next: GatewayConfig): Promise<ReloadOutcome> {
    const previous = this.#config!;
    const acmeChanged = acmeFingerprint(previous) !== acmeFingerprint(next);
    const { retired } = await this.dataPlane.commit({ keepAcmeHandOvers: !acmeChanged });
    this.#config = next;
    this.logger.level = next.log.level;
    this.#retiring.add(previous);
    // The one moment registries stop: once the replaced configuration's requests are done (serialized:
    // never under a reload that is about to use one again).
    void retired
      .catch((err: Error) => this.logger.error({ err: err.message }, "retiring the replaced configuration failed"))
      .finally(() => {
        this.#retiring.delete(previous);
        if (!this.#stopped) void this.#serialized(() => this.#pruneManaged());
      });
    await this.#replaceServed(next, acmeChanged);
    this.#replaceAcme(next, acmeChanged);
    this.dataPlane.reloaded(true);
    // Compared with what the listeners were started with: only a restart changes those.
    const warnings = keysNeedingRestart(this.#startConfig!, next);
    const sites = next.sites.map(siteName);
    this.logger.info({ sites }, "configuration reloaded: new requests use it, requests in flight finish on the old one");
    if (warnings.length) this.logger.warn({ keys: warnings }, `changed keys that apply only after a restart: ${warnings.join(", ")}`);
    return { ok: true, sites, warnings };
  }

  /** This copy of the served set follows the data plane's: rotation and expiry warnings read it. */
  async #replaceServed(next: GatewayConfig, acmeChanged: boolean): Promise<void> {
    try {
      const loaded = (await loadSiteCertificates(next)).certificates;
      this.served.replaceLoaded(loaded, defaultSiteName(next), acmeSiteNames(next), { keepHandOvers: !acmeChanged });
    } catch (err) {
      this.logger.error({ err: (err as Error).message }, "reading the reloaded certificates failed: rotation and expiry warnings use the previous ones");
    }
  }

  #replaceAcme(next: GatewayConfig, acmeChanged: boolean): void {
    if (acmeChanged) {
      // Its orders in flight finish (and are still answered) but hand nothing over; the new one adopts them.
      void this.#acme?.stop();
      this.#acme = this.#createAcme(next);
      this.#acme?.start().catch((err: Error) => this.logger.error({ err: err.message }, "the ACME manager did not start"));
    } else {
      // Adopts what another process sharing the data directory stored meanwhile.
      this.#acme?.refreshFromDisk().catch((err: Error) => this.logger.error({ err: err.message }, "reading stored ACME certificates failed"));
    }
  }

  /** `cert rotate`: new certificates made here once, then served by the whole data plane before the answer goes out. */
  async rotateCertificates(site?: string): Promise<RotationOutcome> {
    const running = this.#running!;
    const outcome = await rotateServedCertificates(
      { config: () => this.#config!, acme: () => this.#acme, served: running.served, info: () => running.certificates.info(), serialized: (work) => this.#serialized(work) },
      site,
    );
    const failed = await this.dataPlane.replaceCertificates(running.served.loaded);
    for (const result of outcome.certificates) {
      const level = result.outcome === "failed" ? "error" : "info";
      this.logger[level]({ ...result }, `certificate rotation: ${result.site} ${result.outcome}`);
    }
    for (const error of outcome.errors) this.logger.error({ err: error }, "certificate rotation refused");
    this.#fleet?.reportSoon();
    if (!failed.length) return outcome;
    return { ...outcome, ok: false, errors: [...outcome.errors, ...failed] };
  }

  /** Stops accepting, lets requests in flight finish for up to drainMs, then stops ACME and the registries. */
  shutdown(drainMs: number): Promise<void> {
    this.#stopped ??= this.#shutdown(drainMs);
    return this.#stopped;
  }

  async #shutdown(drainMs: number): Promise<void> {
    const running = this.#running!;
    running.stopWatching();
    const adminClosed = once(running.admin, "close");
    running.admin.close();
    const deadline = Date.now() + drainMs;
    // A reload or rotation under way finishes first: the data plane then drains what it swapped in.
    await this.#serialized(async () => {});
    await this.dataPlane.shutdown(drainMs);
    running.admin.closeAllConnections();
    // An order still running when the drain time is over is abandoned; the next start orders again.
    await Promise.race([this.#acme?.stop(), sleep(Math.max(0, deadline - Date.now()), undefined, { ref: false })]);
    // After the drain: requests in flight to a managed registry have had their chance to finish.
    await this.#managed.stop();
    this.#fleet?.stop();
    await this.#store?.lease.release();
    await adminClosed;
    this.logger.info("gateway stopped");
  }

  /** SIGHUP re-reads the configuration; SIGTERM and SIGINT drain and exit. */
  handleSignals(): void {
    const stop = (signal: string) => {
      if (this.#stopped) return;
      this.logger.info({ signal }, "signal received");
      void this.shutdown(this.#config!.timeouts.drain).then(() => process.exit(0));
    };
    process.on("SIGTERM", () => stop("SIGTERM"));
    process.on("SIGINT", () => stop("SIGINT"));
    // The outcome (or every error, with the old configuration kept) is logged.
    process.on("SIGHUP", () => {
      this.logger.info({ signal: "SIGHUP" }, "signal received: reloading the configuration");
      void this.reload();
    });
  }

  #serialized<T>(work: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(work);
    this.#queue = run.catch(() => {});
    return run;
  }

  /** Managed registries no configuration in service or still retiring names are stopped. */
  #pruneManaged(): Promise<void> {
    return this.#managed.prune([this.#config!, ...this.#retiring]);
  }

  #createAcme(config: GatewayConfig): AcmeCertificates | null {
    if (!acmeSites(config).length) return null;
    const create = this.options.createAcmeManager ?? loadAcme.loaded()!.createAcmeManager;
    return create(config, {
      ...testAcmeTimings(),
      ...this.options.acme,
      ...(this.#store ? { store: this.#store.store } : {}),
      responder: this.responder,
      logger: this.logger,
      onCertificate: (site, certPem, keyPem) => {
        this.served.acmeCertificate(site, certPem, keyPem);
        void this.dataPlane.acmeCertificate(site, certPem, keyPem).then(() => this.#fleet?.reportSoon());
      },
    });
  }

  #createFleetSync(store: TlsStore): FleetSync | null {
    if (!store.fleet) return null;
    return new FleetSync(
      store.fleet,
      {
        refresh: () => this.#refreshFromStore(store),
        applyChallenge: (change) => this.dataPlane.challenge(change),
        served: () => this.#running?.certificates.info() ?? [],
      },
      this.logger,
      fleetTimings(),
    );
  }

  /** Serves what another gateway stored: generated leaves it issued or rotated, ACME certificates it obtained. */
  async #refreshFromStore(store: TlsStore): Promise<void> {
    if (!this.#running || this.#stopped) return;
    const running = this.#running;
    // Both kinds are picked up whatever happens to the other: a failure is thrown once both had their turn.
    const generated = this.#serialized(() => this.#refreshGenerated(running, store));
    await Promise.all([generated, this.#acme?.refreshFromDisk()]);
  }

  async #refreshGenerated(running: Running, store: TlsStore): Promise<void> {
    const config = this.#config!;
    const generated = new Set(config.sites.filter((site) => site.tls.source === "generated").map(siteName));
    if (generated.size === 0) return;
    const { certificates } = await loadSiteCertificates(config, { sites: generated, store, adoptOnly: true });
    const serving = new Map(running.certificates.info().map((info) => [info.site, info.serial]));
    const changed = certificates.filter((certificate) => new X509Certificate(certificate.certPem).serialNumber !== serving.get(certificate.site));
    if (changed.length === 0) return;
    running.served.replaceSome(changed);
    const failed = await this.dataPlane.replaceCertificates(running.served.loaded);
    for (const certificate of changed) this.logger.info({ site: certificate.site, serial: new X509Certificate(certificate.certPem).serialNumber }, "certificate from the shared TLS store in service");
    for (const err of failed) this.logger.error({ err }, "serving a certificate from the shared TLS store failed");
  }
}

async function holdTlsStore(config: GatewayConfig): Promise<{ lease: Lease<Promise<TlsStore>>; store: TlsStore }> {
  const lease = leaseTlsStore(config);
  try {
    return { lease, store: await lease.value };
  } catch (err) {
    await lease.release();
    throw err;
  }
}

/** A gateway run as a process by the fleet tests retries and polls pebble faster (never set in production). */
function testAcmeTimings(): Pick<AcmeManagerOptions, "backoff" | "statusPolling"> {
  const { acmeRetryMs, acmePollMs } = fleetTimings();
  return {
    ...(acmeRetryMs ? { backoff: { initialMs: acmeRetryMs, maxMs: acmeRetryMs * 4 } } : {}),
    ...(acmePollMs ? { statusPolling: { minMs: acmePollMs, maxMs: acmePollMs * 5, attempts: 40 } } : {}),
  };
}

/** The admin address before the listener is open. */
const NO_ADDRESS: AddressInfo = { address: "", family: "", port: 0 };

function noConfigSource(): Promise<GatewayConfig> {
  return Promise.reject(new Error("this gateway was started without a configuration file to re-read"));
}

