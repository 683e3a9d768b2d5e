// The sockets a gateway process listens on: the HTTPS listener clients use (TLS by SNI, connection caps,
// Node's HTTP parser configured for registry traffic), and the plain-HTTP one for ACME HTTP-01 and
// redirects. What happens to a request once parsed is the runtime's business (gateway.ts).
import { once } from "node:events";
import http from "node:http";
import https from "node:https";
import type { Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import type { GatewayConfig } from "./config/schema.js";
import type { Logger } from "./observe/log.js";
import { ClientConnection, trackConnections } from "./proxy/client-connection.js";
import { ConnectionLimits } from "./proxy/connections.js";
import { holdBody } from "./proxy/continue.js";
import { ProxyProtocolGate } from "./proxy/proxy-protocol-gate.js";
import { awaitFirstRequest, requestArrived } from "./proxy/first-request.js";
import { requestInProgress } from "./proxy/pipelining.js";
import { rawErrorResponse, type GatewayErrorKind } from "./registry/errors.js";
import { type AcmeChallengeResponder, createPlainHttpHandler, tlsChallengeHooks } from "./tls/acme-challenges.js";
import { answerPlainHttp } from "./tls/plain-http-guard.js";
import type { CertificateStore } from "./tls/store.js";

export interface HttpsListener {
  server: https.Server;
  connections: ConnectionLimits;
  /** Timeouts and connection caps a reload changes in place; new connections get the new values. */
  configure(config: GatewayConfig): void;
}

export function createHttpsListener(
  config: GatewayConfig,
  store: CertificateStore,
  responder: AcmeChallengeResponder,
  logger: Logger,
  onRequest: (req: http.IncomingMessage, res: http.ServerResponse) => void,
  /** Where failed handshakes are counted (the process's metrics). */
  events: { tlsHandshakeFailed(): void },
): HttpsListener {
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
      // Within a request; the first one's headers must also arrive within this of the accept (proxy/first-request.ts).
      headersTimeout: config.timeouts.header,
      keepAliveTimeout: nodeKeepAliveTimeout(config.timeouts.keepAlive),
    },
    (req, res) => {
      requestArrived(req.socket);
      onRequest(req, res);
    },
  );
  store.attach(server);
  // Without a checkContinue listener Node answers 100 Continue before the request is even authenticated.
  server.on("checkContinue", (req: http.IncomingMessage, res: http.ServerResponse) => {
    requestArrived(req.socket);
    holdBody(req, res);
    onRequest(req, res);
  });
  server.on("clientError", (err: NodeJS.ErrnoException, socket: Socket) => answerMalformedRequest(err, socket, logger));
  const connections = new ConnectionLimits(config.limits.maxConnections, config.limits.maxConnectionsPerIp);
  let headerTimeout = config.timeouts.header;
  const accepted = trackConnections(server, (connection) => {
    connections.track(connection);
    awaitFirstRequest(connection, headerTimeout, (expired, secured) => closeWithoutRequest(expired, secured, logger));
  });
  server.on("tlsClientError", (err: NodeJS.ErrnoException, socket: Socket) => {
    events.tlsHandshakeFailed();
    if (answerPlainHttp(err, accepted.under(socket)?.tcp)) return;
    logger.debug({ err: err.code ?? err.message, remote: accepted.under(socket)?.clientAddress ?? socket.remoteAddress }, "TLS handshake failed");
    // Nothing can be said on a connection without TLS (an HTTP error would wait behind the handshake
    // forever): close it, so it stops counting against the connection caps and does not hold up shutdown.
    socket.destroy();
  });
  // Last: the TLS layer's and the accounting's connection listeners go behind it, so the caps count the client.
  const proxyProtocol = new ProxyProtocolGate(config.proxyProtocol, config.timeouts.handshake, logger);
  proxyProtocol.guard(server);
  const configure = (next: GatewayConfig) => {
    headerTimeout = next.timeouts.header;
    proxyProtocol.configure(next.proxyProtocol, next.timeouts.handshake);
    server.timeout = next.timeouts.idle;
    server.headersTimeout = next.timeouts.header;
    server.keepAliveTimeout = nodeKeepAliveTimeout(next.timeouts.keepAlive);
    // Connections over limits.maxConnections get a clear answer (proxy/connections.ts); that answer costs a
    // handshake, so beyond twice the cap a flood is dropped at accept, without one.
    server.maxConnections = 2 * next.limits.maxConnections;
    connections.configure(next.limits.maxConnections, next.limits.maxConnectionsPerIp);
  };
  configure(config);
  return { server, connections, configure };
}

export interface PlainHttpListener {
  server: http.Server;
  /** The header timeout a reload changes in place; new connections and requests get the new value. */
  configure(config: GatewayConfig): void;
}

/** The plain-HTTP listener: ACME HTTP-01 answers, everything else redirected to HTTPS. */
export function createPlainHttpListener(config: GatewayConfig, responder: AcmeChallengeResponder, httpsPort: number, logger: Logger): PlainHttpListener {
  const handler = createPlainHttpHandler({ responder, httpsPort });
  const server = http.createServer({ headersTimeout: config.timeouts.header }, (req, res) => {
    requestArrived(req.socket);
    handler(req, res);
  });
  let headerTimeout = config.timeouts.header;
  server.on("connection", (socket: Socket) => awaitFirstRequest(new ClientConnection(socket), headerTimeout, (expired) => expired.destroy()));
  const proxyProtocol = new ProxyProtocolGate(config.proxyProtocol, config.timeouts.handshake, logger);
  proxyProtocol.guard(server);
  const configure = (next: GatewayConfig) => {
    headerTimeout = next.timeouts.header;
    proxyProtocol.configure(next.proxyProtocol, next.timeouts.handshake);
    server.headersTimeout = next.timeouts.header;
  };
  return { server, configure };
}

export async function listen(server: http.Server, address: { host: string; port: number }, what: string): Promise<void> {
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
 * Node's server closes an idle keep-alive connection 1 s after its keepAliveTimeout (a grace so that a
 * client told `Keep-Alive: timeout=N` never races the close). timeouts.keepAlive is when the gateway
 * closes: the client is told one second less (at least 1 s).
 */
function nodeKeepAliveTimeout(keepAliveMs: number): number {
  return Math.max(1000, keepAliveMs - 1000);
}

/**
 * No request within timeouts.header of the accept. Once TLS is up the client is told why, as Node's own header
 * timeout would; either way the connection is closed, whether or not the client reads the answer.
 */
function closeWithoutRequest(connection: Socket, secured: boolean, logger: Logger): void {
  if (!secured || !connection.writable) {
    connection.destroy();
    return;
  }
  connection.once("finish", () => connection.destroy());
  answerMalformedRequest(Object.assign(new Error("no request in time"), { code: "ERR_HTTP_REQUEST_TIMEOUT" }), connection, logger);
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
