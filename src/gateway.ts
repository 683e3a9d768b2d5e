// Builds the listeners from a validated configuration, swaps configurations in (reload) and certificates
// (ACME, rotation) while running, and takes everything down again gracefully. What is derived from a
// configuration is built in gateway-state.ts, once per configuration, never per request.
import { once } from "node:events";
import http from "node:http";
import https from "node:https";
import type { AddressInfo, Socket } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import type { ReloadOutcome } from "./admin-actions.js";
import { createAdminServer } from "./admin.js";
import { ManagedRegistries, type ManagedBackends, type ManagedOptions } from "./backends/managed.js";
import { isReplicated } from "./backends/upstream.js";
import { keysNeedingRestart } from "./config/restart-keys.js";
import type { GatewayConfig } from "./config/schema.js";
import { buildGatewayState, retireState, type GatewayState } from "./gateway-state.js";
import type { Logger } from "./observe/log.js";
import { metrics } from "./observe/metrics.js";
import { ConnectionLimits } from "./proxy/connections.js";
import { requestInProgress } from "./proxy/pipelining.js";
import { rawErrorResponse, type GatewayErrorKind } from "./registry/errors.js";
import type { AcmeCertificates, AcmeManagerOptions } from "./tls/acme.js";
import { acmeSites, loadAcme } from "./tls/acme-sites.js";
import { AcmeChallengeResponder, createPlainHttpHandler, tlsChallengeHooks } from "./tls/acme-challenges.js";
import { watchCertificateExpiry } from "./tls/expiry.js";
import { rotateServedCertificates, type RotationOutcome } from "./tls/rotation.js";
import { ServedCertificates } from "./tls/served-certificates.js";
import { answerPlainHttp } from "./tls/plain-http-guard.js";
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

export async function startGateway(config: GatewayConfig, logger: Logger, options: GatewayOptions = {}): Promise<RunningGateway> {
  // Managed backends first: the state forwards to their URLs, known once they run.
  const managed: ManagedBackends = options.worker?.managed ?? new ManagedRegistries(logger, options.managed);
  const isWorker = options.worker !== undefined;
  await managed.start(config);
  // Everything derived from the configuration, built before anything listens: a broken file stops the start.
  let current: GatewayState;
  try {
    current = await buildGatewayState(config, logger, null, managed.resolver(config));
  } catch (err) {
    await managed.stop();
    throw err;
  }
  const { ca, issued } = current.certificates;
  const loaded = current.certificates.certificates;
  const store = new CertificateStore(loaded, current.sites.defaultSite.name, config.tls.minVersion);
  const served = new ServedCertificates(store, loaded, current.sites.defaultSite.name, acmeSiteNames(config));
  // One responder for the process: an order that a manager replaced by a reload still has in flight keeps
  // being answered.
  const responder = new AcmeChallengeResponder();
  // In a cluster the primary orders once for every worker and hands the certificates over.
  // acme.js (acme-client with it) is loaded by the first configuration with an ACME site (loadAcme).
  const createAcme = (forConfig: GatewayConfig) =>
    isWorker || !acmeSites(forConfig).length ? null : loadAcme.loaded()!.createAcmeManager(forConfig, {
      ...options.acme,
      responder,
      logger,
      onCertificate: (site, certPem, keyPem) => served.acmeCertificate(site, certPem, keyPem),
    });
  if (!isWorker) await loadAcme(config);
  let acme = createAcme(config);

  let inFlight = 0;
  let draining = false;
  const backendsInService = () => current.sites.sites.flatMap((site) => site.upstreams.pools()).flatMap((pool) => pool.members.map((member) => ({ pool, member })));
  const server = https.createServer(
    {
      // SNI picks the site's certificate; no or unknown SNI gets the default site's. A TLS-ALPN-01
      // validator (ALPN acme-tls/1) gets the pending challenge's certificate instead.
      ...store.serverOptions(),
      ...tlsChallengeHooks(responder, (servername) => store.contextFor(servername)),
      maxHeaderSize: config.limits.maxHeaderBytes,
      // Our JSON error for a missing Host beats Node's bare 400.
      requireHostHeader: false,
      // Node's 300 s whole-request limit would cut a slow multi-GB layer upload: only idle limits here.
      requestTimeout: 0,
      // From the TCP accept: a connection that never sends a ClientHello is cut at this, not Node's 120 s.
      handshakeTimeout: config.timeouts.handshake,
      headersTimeout: config.timeouts.header,
      keepAliveTimeout: nodeKeepAliveTimeout(config.timeouts.keepAlive),
    },
    (req, res) => {
      inFlight++;
      if (draining) res.setHeader("Connection", "close");
      res.once("close", () => inFlight--);
      // The state in service when the request arrives serves all of it, whatever a reload swaps in meanwhile.
      const state = current;
      state.track(res);
      void state.handle(req, res);
    },
  );
  store.attach(server);
  applyTimeouts(server, config);
  server.on("clientError", (err: NodeJS.ErrnoException, socket: Socket) => answerMalformedRequest(err, socket, logger));
  const connections = new ConnectionLimits(config.limits.maxConnections, config.limits.maxConnectionsPerIp);
  server.on("connection", (socket: Socket) => connections.track(socket));
  server.on("tlsClientError", (err: NodeJS.ErrnoException, socket: Socket) => {
    metrics.tlsHandshakeFailed();
    if (answerPlainHttp(err, socket)) return;
    logger.debug({ err: err.code ?? err.message, remote: socket.remoteAddress }, "TLS handshake failed");
    // Nothing can be said on a connection without TLS (an HTTP error would wait behind the handshake
    // forever): close it, so it stops counting against the connection caps and does not hold up shutdown.
    socket.destroy();
  });

  const admin = createAdminServer(
    {
      listening: () => server.listening && !draining,
      backends: () => backendsInService().map(({ pool, member }) => ({ pool: pool.name, url: member.url, healthy: member.healthy, outstanding: member.outstanding })),
    },
    config.metrics.enabled ? metrics : null,
    { reload: () => reload(), rotateCertificates: (site) => rotateCertificates(site) },
    () => current.config.admin.hosts,
  );

  let plainHttp: http.Server | null = null;
  try {
    await listen(server, config.listen, "HTTPS");
    if (!isWorker) await listen(admin, config.admin.listen, "admin");
    if (config.http.listen) {
      const httpsPort = (server.address() as AddressInfo).port;
      plainHttp = http.createServer({ headersTimeout: config.timeouts.header }, createPlainHttpHandler({ responder, httpsPort }));
      await listen(plainHttp, config.http.listen, "plain HTTP");
    }
  } catch (err) {
    server.close();
    admin.close();
    plainHttp?.close();
    await current.discard(); // its Redis connection would keep the process alive
    await managed.stop();
    throw err;
  }

  const httpsAddress = server.address() as AddressInfo;
  const adminAddress = isWorker ? { address: "", family: "", port: 0 } : (admin.address() as AddressInfo);
  const httpAddress = plainHttp ? (plainHttp.address() as AddressInfo) : null;
  if (config.metrics.enabled) metrics.collectProcessMetrics();
  const unwatchMetrics = metrics.watch({
    requestsInFlight: () => inFlight,
    clientConnections: () => connections.open,
    certificates: () => store.info(),
    // Replicas only: a lone backend is not health-checked (backends/upstream.ts), so it has no health to report.
    backends: () =>
      backendsInService()
        .filter(({ pool }) => isReplicated(pool))
        .map(({ pool, member }) => ({ pool: pool.name, backend: member.origin, healthy: member.healthy, outstanding: member.outstanding })),
  });
  metrics.configLoaded();
  if (ca) {
    const hostsWithPort = current.sites.sites.flatMap((s) => s.hosts).filter((h) => !h.startsWith("*."));
    logger.info(
      {
        caFile: ca.certPath,
        created: ca.created,
        dockerCertsD: hostsWithPort.map((h) => `/etc/docker/certs.d/${h}:${httpsAddress.port}/ca.crt`),
      },
      "generated certificates are signed by this CA: copy caFile to each dockerCertsD path to trust it",
    );
  }
  if (issued.length) logger.info({ sites: issued }, "issued new site certificates");
  logger.info(
    {
      https: `${httpsAddress.address}:${httpsAddress.port}`,
      admin: `${adminAddress.address}:${adminAddress.port}`,
      http: httpAddress ? `${httpAddress.address}:${httpAddress.port}` : null,
      caFile: ca?.certPath ?? null,
      sites: current.sites.sites.map((s) => ({ name: s.name, hosts: s.hosts, backends: [...new Set(s.upstreams.pools().flatMap((p) => p.members.map((m) => m.origin)))] })),
    },
    // In a cluster the primary says "gateway ready" once every worker is.
    isWorker ? "worker ready" : "gateway ready",
  );
  // After the listeners: HTTP-01 and TLS-ALPN-01 are answered there. Until a site's first ACME certificate
  // arrives it is served with its generated one.
  await acme?.start().catch((err: Error) => logger.error({ err: err.message }, "the ACME manager did not start"));
  // Once per cluster (the primary's), not once per worker.
  const stopExpiryWarnings = isWorker ? () => {} : watchCertificateExpiry({ certificates: () => store.info(), config: () => current.config }, logger);

  // Reloads, and rotations' replacements of the served set, run one at a time.
  let queue: Promise<unknown> = Promise.resolve();
  const serialized = <T>(work: () => Promise<T>): Promise<T> => {
    const run = queue.then(work);
    queue = run.catch(() => {});
    return run;
  };
  /** Replaced states whose requests are still finishing. */
  const retiring = new Set<GatewayState>();
  /** Managed registries no state in service or still finishing names are stopped. */
  const pruneManaged = () => managed.prune([current.config, ...[...retiring].map((state) => state.config)]);

  const reload = (given?: GatewayConfig) => serialized(() => applyConfiguration(given));

  interface PreparedReload {
    config: GatewayConfig;
    next: GatewayState;
  }

  /** Builds everything the next configuration needs and checks every certificate; serves nothing yet. */
  async function prepareConfiguration(nextConfig: GatewayConfig): Promise<PreparedReload> {
    // Registries whose spec is unchanged keep running; new ones start before the state that uses them.
    await managed.start(nextConfig);
    if (!isWorker) await loadAcme(nextConfig);
    const next = await buildGatewayState(nextConfig, logger, current, managed.resolver(nextConfig));
    try {
      served.validate(next.certificates.certificates, next.sites.defaultSite.name);
    } catch (err) {
      await next.discard();
      throw err;
    }
    return { config: nextConfig, next };
  }

  /** Swaps a prepared configuration in for new requests; cannot fail. */
  function commitConfiguration({ config: nextConfig, next }: PreparedReload): ReloadOutcome {
    const acmeChanged = acmeFingerprint(current.config) !== acmeFingerprint(nextConfig);
    served.replaceLoaded(next.certificates.certificates, next.sites.defaultSite.name, acmeSiteNames(nextConfig), { keepHandOvers: !acmeChanged });
    const previous = current;
    current = next;
    applyTimeouts(server, nextConfig);
    connections.configure(nextConfig.limits.maxConnections, nextConfig.limits.maxConnectionsPerIp);
    logger.level = nextConfig.log.level;
    if (acmeChanged) {
      // Its orders in flight finish (and are still answered) but hand nothing over; the new one adopts them.
      void acme?.stop();
      acme = createAcme(nextConfig);
      acme?.start().catch((err: Error) => logger.error({ err: err.message }, "the ACME manager did not start"));
    } else {
      // Adopts what another process sharing the data directory stored meanwhile.
      acme?.refreshFromDisk().catch((err: Error) => logger.error({ err: err.message }, "reading stored ACME certificates failed"));
    }
    retiring.add(previous);
    // Once its requests are done, the registries only it used stop (serialized: never under a reload
    // that is about to use one again).
    void retireState(previous, previous.config.timeouts.drain).finally(() => {
      retiring.delete(previous);
      if (!draining) void serialized(pruneManaged);
    });
    // Compared with what the listeners were started with: only a restart changes those.
    const warnings = keysNeedingRestart(config, nextConfig);
    const sites = current.sites.sites.map((s) => s.name);
    metrics.configReloaded(true);
    logger.info({ sites }, "configuration reloaded: new requests use it, requests in flight finish on the old one");
    if (warnings.length) logger.warn({ keys: warnings }, `changed keys that apply only after a restart: ${warnings.join(", ")}`);
    return { ok: true, sites, warnings };
  }

  async function reloadFailed(err: unknown): Promise<ReloadOutcome> {
    await pruneManaged(); // what this attempt started
    metrics.configReloaded(false);
    const errors = (err as Error).message.split("\n");
    logger.error({ errors }, "configuration reload failed: the running configuration stays in service");
    return { ok: false, errors };
  }

  async function applyConfiguration(given?: GatewayConfig): Promise<ReloadOutcome> {
    try {
      const nextConfig = given ?? (await (options.configSource ?? noConfigSource)());
      return commitConfiguration(await prepareConfiguration(nextConfig));
    } catch (err) {
      return reloadFailed(err);
    }
  }

  /** A cluster reload's first phase waits here for its verdict; one at a time, like every reload. */
  let prepared: PreparedReload | null = null;

  async function rotateCertificates(site?: string): Promise<RotationOutcome> {
    const outcome = await rotateServedCertificates(
      { config: () => current.config, acme: () => acme, served, info: () => store.info(), serialized },
      site,
    );
    for (const result of outcome.certificates) {
      const level = result.outcome === "failed" ? "error" : "info";
      logger[level]({ ...result }, `certificate rotation: ${result.site} ${result.outcome}`);
    }
    for (const error of outcome.errors) logger.error({ err: error }, "certificate rotation refused");
    return outcome;
  }

  return {
    https: httpsAddress,
    admin: adminAddress,
    http: httpAddress,
    caFile: ca?.certPath ?? null,
    certificates: store,
    served,
    responder,
    acme: () => acme,
    inFlight: () => inFlight,
    upstreamSocketsInUse: () => current.forwarder.upstreamSocketsInUse(),
    reload,
    prepareReload: (nextConfig) =>
      serialized(async () => {
        if (prepared) await prepared.next.discard();
        try {
          prepared = await prepareConfiguration(nextConfig);
          return { ok: true, sites: prepared.next.sites.sites.map((s) => s.name), warnings: keysNeedingRestart(config, nextConfig) };
        } catch (err) {
          prepared = null;
          return reloadFailed(err);
        }
      }),
    commitReload() {
      if (!prepared) return { ok: false, errors: ["no prepared configuration to commit"] };
      const outcome = commitConfiguration(prepared);
      prepared = null;
      return outcome;
    },
    async abortReload() {
      const abandoned = prepared;
      prepared = null;
      if (abandoned) {
        await abandoned.next.discard();
        await pruneManaged();
        metrics.configReloaded(false);
      }
    },
    rotateCertificates,
    async shutdown(drainMs) {
      draining = true;
      logger.info({ inFlight, drainMs }, "shutting down: no new connections, draining requests in flight");
      const listeners = [server, admin, ...(plainHttp ? [plainHttp] : [])];
      const closed = Promise.all(listeners.map((listener) => once(listener, "close")));
      for (const listener of listeners) listener.close();
      stopExpiryWarnings();
      server.closeIdleConnections();
      const deadline = Date.now() + drainMs;
      while (inFlight > 0 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 50));
        server.closeIdleConnections();
      }
      if (inFlight > 0) logger.warn({ inFlight }, "drain time over: cutting the requests still in flight");
      for (const listener of listeners) listener.closeAllConnections();
      // An order still running when the drain time is over is abandoned; the next start orders again.
      await Promise.race([acme?.stop(), sleep(Math.max(0, deadline - Date.now()), undefined, { ref: false })]);
      const states = [current, ...retiring];
      await Promise.all(states.map((state) => state.closeStages()));
      for (const state of states) await state.release();
      // After the drain: requests in flight to a managed registry have had their chance to finish.
      await managed.stop();
      unwatchMetrics();
      await closed;
      logger.info("gateway stopped");
    },
  };
}

/** Listener timeouts a reload can change in place; new connections get the new values. */
function applyTimeouts(server: https.Server, config: GatewayConfig): void {
  server.timeout = config.timeouts.idle;
  server.headersTimeout = config.timeouts.header;
  server.keepAliveTimeout = nodeKeepAliveTimeout(config.timeouts.keepAlive);
  // Connections over limits.maxConnections get a clear answer (proxy/connections.ts); that answer costs a
  // handshake, so beyond twice the cap a flood is dropped at accept, without one.
  server.maxConnections = 2 * config.limits.maxConnections;
}

/**
 * Node's server closes an idle keep-alive connection 1 s after its keepAliveTimeout (a grace so that a
 * client told `Keep-Alive: timeout=N` never races the close). timeouts.keepAlive is when the gateway
 * closes: the client is told one second less (at least 1 s).
 */
function nodeKeepAliveTimeout(keepAliveMs: number): number {
  return Math.max(1000, keepAliveMs - 1000);
}

function noConfigSource(): Promise<GatewayConfig> {
  return Promise.reject(new Error("this gateway was started without a configuration file to re-read"));
}

function acmeSiteNames(config: GatewayConfig): ReadonlySet<string> {
  return new Set(acmeSites(config).map((site) => site.name));
}

/** Everything the ACME manager is built from: when it changes, a reload replaces the manager. */
function acmeFingerprint(config: GatewayConfig): string {
  return JSON.stringify({ dataDir: config.dataDir, sites: acmeSites(config) });
}

async function listen(server: http.Server, address: { host: string; port: number }, what: string): Promise<void> {
  server.listen(address.port, address.host);
  try {
    await once(server, "listening");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === "EADDRINUSE" ? "the address is already in use" : code === "EACCES" ? "permission denied" : String(err);
    throw new Error(`cannot listen for ${what} on ${address.host}:${address.port}: ${why}`, { cause: err });
  }
}

/**
 * Node's parser refused the request (oversized headers, Content-Length with Transfer-Encoding, bad
 * syntax): answer in registry JSON on this one connection, and only this one.
 */
function answerMalformedRequest(err: NodeJS.ErrnoException, socket: Socket, logger: Logger): void {
  // TLS failures (handshake timeout, bad records) reach here too; the tlsClientError listener handles them.
  if (err.code?.startsWith("ERR_SSL") || err.code?.startsWith("ERR_TLS")) return;
  // A parse error inside the body of a request that is already being answered: one answer per request.
  if (requestInProgress(socket)) {
    socket.destroy();
    return;
  }
  logger.debug({ err: err.code ?? err.message, remote: socket.remoteAddress }, "malformed request refused");
  if (!socket.writable || err.code === "ECONNRESET") {
    socket.destroy();
    return;
  }
  const [kind, message]: [GatewayErrorKind, string] =
    err.code === "HPE_HEADER_OVERFLOW"
      ? ["headersTooLarge", "the request headers are too large"]
      : err.code === "ERR_HTTP_REQUEST_TIMEOUT"
        ? ["badRequest", "the request headers did not arrive in time"]
        : ["badRequest", "the request is not valid HTTP/1.1"];
  socket.end(rawErrorResponse(kind, message));
}
