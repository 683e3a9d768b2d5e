// Builds the listeners and the pipeline from a validated configuration, and takes them down again
// gracefully. Everything derived from configuration is computed here, once, never per request.
import { once } from "node:events";
import type http from "node:http";
import https from "node:https";
import type { AddressInfo, Socket } from "node:net";
import { createAdminServer } from "./admin.js";
import { buildSecurity } from "./auth/build.js";
import type { GatewayConfig } from "./config/schema.js";
import type { Logger } from "./observe/log.js";
import { createAccessLogger } from "./observe/access-log.js";
import { metrics } from "./observe/metrics.js";
import { createRequestObserver } from "./observe/observer.js";
import { createPipeline, type PipelineState } from "./pipeline.js";
import { clientAddressResolver } from "./proxy/client-ip.js";
import { Forwarder } from "./proxy/forward.js";
import { createRateLimitStage } from "./ratelimit/stage.js";
import { rawErrorResponse, type GatewayErrorKind } from "./registry/errors.js";
import { SiteMap } from "./sites.js";
import { CertificateStore, loadSiteCertificates } from "./tls/store.js";

export interface RunningGateway {
  https: AddressInfo;
  admin: AddressInfo;
  /** The generated CA clients must trust, when any site uses generated certificates. */
  caFile: string | null;
  certificates: CertificateStore;
  inFlight(): number;
  upstreamSocketsInUse(): number;
  /** Stops accepting, lets requests in flight finish for up to drainMs, then closes everything. */
  shutdown(drainMs: number): Promise<void>;
}

export async function startGateway(config: GatewayConfig, logger: Logger): Promise<RunningGateway> {
  // Auth first: a broken htpasswd file or signing key stops the start before anything listens.
  const security = await buildSecurity(config, logger);
  const sites = new SiteMap(config, security.bySite);
  const { certificates, ca, issued } = await loadSiteCertificates(config);
  const store = new CertificateStore(certificates, sites.defaultSite.name, config.tls.minVersion);
  const forwarder = new Forwarder({ idleTimeoutMs: config.timeouts.idle, keepAliveMs: config.timeouts.keepAlive });
  const observer = createRequestObserver({
    metrics: config.metrics.enabled ? metrics : null,
    accessLog: config.log.access ? createAccessLogger(logger) : null,
  });
  const rateLimit = await createRateLimitStage(config, sites.sites, logger, config.metrics.enabled ? metrics : null);
  const clientAddress = clientAddressResolver(config.trustedProxies);
  const state: PipelineState = { sites, forwarder, logger, observer, clientAddress, rateLimit };
  const handle = createPipeline(() => state);

  let inFlight = 0;
  let draining = false;
  const server = https.createServer(
    {
      // SNI picks the site's certificate; no or unknown SNI gets the default site's.
      ...store.serverOptions(),
      ALPNProtocols: ["http/1.1"],
      maxHeaderSize: config.limits.maxHeaderBytes,
      // Our JSON error for a missing Host beats Node's bare 400.
      requireHostHeader: false,
      // Node's 300 s whole-request limit would cut a slow multi-GB layer upload: only idle limits here.
      requestTimeout: 0,
      headersTimeout: config.timeouts.header,
      keepAliveTimeout: config.timeouts.keepAlive,
    },
    (req, res) => {
      inFlight++;
      if (draining) res.setHeader("Connection", "close");
      res.once("close", () => inFlight--);
      void handle(req, res);
    },
  );
  store.attach(server);
  server.timeout = config.timeouts.idle;
  server.on("clientError", (err: NodeJS.ErrnoException, socket: Socket) => answerMalformedRequest(err, socket, logger));
  let clientConnections = 0;
  server.on("connection", (socket: Socket) => {
    clientConnections++;
    socket.once("close", () => clientConnections--);
  });
  server.on("tlsClientError", (err: NodeJS.ErrnoException, socket: Socket) => {
    metrics.tlsHandshakeFailed();
    logger.debug({ err: err.code ?? err.message, remote: socket.remoteAddress }, "TLS handshake failed");
  });

  const admin = createAdminServer({
    listening: () => server.listening && !draining,
    backends: () => sites.sites.map((s) => s.backend),
  }, config.metrics.enabled ? metrics : null);

  try {
    await listen(server, config.listen, "HTTPS");
  } catch (err) {
    await rateLimit?.close(); // its Redis connection would keep the process alive
    throw err;
  }
  try {
    await listen(admin, config.admin.listen, "admin");
  } catch (err) {
    server.close();
    await rateLimit?.close();
    throw err;
  }

  const httpsAddress = server.address() as AddressInfo;
  const adminAddress = admin.address() as AddressInfo;
  if (config.metrics.enabled) metrics.collectProcessMetrics();
  const unwatchMetrics = metrics.watch({
    requestsInFlight: () => inFlight,
    clientConnections: () => clientConnections,
    certificates: () => store.info(),
  });
  metrics.configLoaded();
  if (ca) {
    const hostsWithPort = sites.sites.flatMap((s) => s.hosts).filter((h) => !h.startsWith("*."));
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
      caFile: ca?.certPath ?? null,
      sites: sites.sites.map((s) => ({ name: s.name, hosts: s.hosts, backend: s.backend.origin })),
    },
    "gateway ready",
  );

  return {
    https: httpsAddress,
    admin: adminAddress,
    caFile: ca?.certPath ?? null,
    certificates: store,
    inFlight: () => inFlight,
    upstreamSocketsInUse: () => forwarder.upstreamSocketsInUse(),
    async shutdown(drainMs) {
      draining = true;
      logger.info({ inFlight, drainMs }, "shutting down: no new connections, draining requests in flight");
      const closed = Promise.all([once(server, "close"), once(admin, "close")]);
      server.close();
      admin.close();
      server.closeIdleConnections();
      const deadline = Date.now() + drainMs;
      while (inFlight > 0 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 50));
        server.closeIdleConnections();
      }
      if (inFlight > 0) logger.warn({ inFlight }, "drain time over: cutting the requests still in flight");
      server.closeAllConnections();
      admin.closeAllConnections();
      forwarder.close();
      security.close();
      await rateLimit?.close();
      unwatchMetrics();
      await closed;
      logger.info("gateway stopped");
    },
  };
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
