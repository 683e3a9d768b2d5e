// Forwarding to a backend registry with http-proxy-3: bodies streamed both ways with backpressure
// (pipe), keep-alive agents per backend, idle timeouts only, and upstream failures turned into
// registry errors. The response is written here (selfHandleResponse) so that headers are copied from
// rawHeaders (duplicates intact) and Location is rewritten on 202, which http-proxy's autoRewrite
// does not touch. Blob and manifest GETs to plain-HTTP backends are relayed socket to socket (get-relay.ts).
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import https from "node:https";
import { Readable } from "node:stream";
import { ProxyServer } from "http-proxy-3";
import { sendError } from "../registry/errors.js";
import { GetRelay } from "./get-relay.js";
import { clientResponseHeaders, forwardRequestHeaders, type EdgeContext } from "./headers.js";
import { RelayBuffers } from "./relay-buffers.js";
import { SendTimeout } from "./send-timeout.js";

/**
 * Backend sockets (and so each backend response, whose IncomingMessage takes the socket's readable
 * highWaterMark) buffer up to 256 KiB instead of Node's 16 KiB. A socket read is up to 64 KiB, so with the
 * default every read of a blob body overflows the response's buffer: the client stops reading the socket
 * and starts it again for each chunk. Measured on 256 MiB pulls: about 7–16 % less CPU per GB.
 * Backpressure is unchanged in kind, only the amount held per exchange (at most 256 KiB each way).
 */
const BACKEND_HIGH_WATER_MARK = 256 * 1024;

/**
 * Relayed GETs read the backend into buffers from one pool for the process (relay-buffers.ts). Big reads
 * (1 MiB rather than 256 KiB: one read and one TLS write per MiB; measured side by side on 256 MiB pulls, +6 %
 * MB/s and -16 % CPU per pull, docs/profile.md) for at most 8 pulls at once whose client keeps up: 8 such pulls
 * already take a core's worth of TLS; a stalled client holding one holds 2 MiB (the buffer, and its encrypted
 * copy queued in TLS). Every other pull reads 64 KiB at a time (Node's https server writes ~530 MB/s in 64 KiB
 * writes, ~710 in 1 MiB ones) and, stalled, holds 128 KiB.
 */
const RELAY_BUFFERS = new RelayBuffers({ bigBytes: 1024 * 1024, maxBig: 8, smallBytes: 64 * 1024 });

export type UpstreamFailure = "refused" | "timeout" | "reset" | "other";

export interface ForwardOutcome {
  /** Status sent to the client; 0 when the exchange was cut before a status was sent. */
  status: number;
  /** The backend (origin) the exchange was with. */
  backend: string;
  /**
   * With ForwardOptions.returnUnconnected: no connection to the backend could be made (or, for a GET/HEAD, it
   * was reset before any answer) and nothing was answered, so the caller may try another one.
   */
  notConnected?: boolean;
  /** With ForwardOptions.passOver: the backend's status, whose answer was drained and not relayed. */
  passedOver?: number;
  /** Why the backend exchange failed, if it did. */
  upstreamFailure?: UpstreamFailure;
  /** The client went away before the response was complete. */
  clientAborted: boolean;
  /** From sending the request to the backend's response headers. */
  upstreamMs?: number;
  /** Request body bytes read from the client and handed on to the backend. */
  requestBytes: number;
  /** Response body bytes relayed from the backend; absent when the backend never answered. */
  responseBytes?: number;
}

/** What the failure paths know; the byte counts and timing come from the exchange itself. */
type Settlement = Omit<ForwardOutcome, "backend" | "upstreamMs" | "requestBytes" | "responseBytes">;

/** How one exchange may end other than relaying the backend's answer (backends/dispatch.ts). */
export interface ForwardOptions {
  /** A request body the pipeline already read (an urlencoded mount form), sent instead of the client's stream. */
  body?: Buffer;
  /** A refused connection is reported (outcome.notConnected) rather than answered 502: another backend may serve. */
  returnUnconnected?: boolean;
  /**
   * With returnUnconnected: a reset before any answer (the backend died with the request in flight) is
   * reported the same way. Only for requests safe to send twice (GET, HEAD).
   */
  resetIsUnconnected?: boolean;
  /** Statuses not relayed (a group member without the image): the answer is drained, outcome.passedOver set. */
  passOver?: (status: number) => boolean;
  /** Sees the backend's answer before it is relayed, and may hold the relay until it is done (upload affinity). */
  beforeRelay?: (status: number, rawHeaders: readonly string[]) => Promise<void> | void;
  /** A blob or manifest GET without a body: to a plain-HTTP backend it is relayed socket to socket (get-relay.ts). */
  relayGet?: boolean;
}

export interface ForwarderOptions {
  /** A backend silent this long in the middle of an exchange is given up on (504). */
  idleTimeoutMs: number;
  /** How long an unused pooled backend connection is kept. */
  keepAliveMs: number;
  /** A response whose client takes none of its waiting bytes for this long is closed, and its backend exchange with it. */
  sendTimeoutMs: number;
}

interface Exchange {
  backend: URL;
  edge: EdgeContext;
  startedAt: number;
  upstreamMs?: number;
  requestBytes: number;
  responseBytes?: number;
  timedOut: boolean;
  options: ForwardOptions;
  /** The idle timer fired while the request body was still coming: the client's fault (408). */
  clientStalled: boolean;
  /** The backend request, once it has a socket. */
  upstream?: http.ClientRequest;
  /**
   * Settled as passed over or not connected: the client's response belongs to the next exchange now, and
   * nothing that happens to this one (its drained answer failing, timing out, being cut) may touch it.
   */
  handedOn: boolean;
  settle: (outcome: Settlement) => void;
}

export class Forwarder {
  private readonly proxy: ProxyServer;
  private readonly agents = new Map<string, http.Agent>();
  private readonly exchanges = new WeakMap<IncomingMessage, Exchange>();
  /**
   * A request's headers as the client sent them. A request forwarded again (to the next group member) has
   * its headers rebuilt from these, not from the last backend's: a managed registry's token must not be
   * taken for the client's own Authorization and passed through to the next backend.
   */
  private readonly clientHeaders = new WeakMap<IncomingMessage, IncomingMessage["headers"]>();
  private readonly getRelay: GetRelay;
  private readonly sendTimeout: SendTimeout;

  constructor(private readonly options: ForwarderOptions) {
    this.getRelay = new GetRelay({ buffers: RELAY_BUFFERS, idleTimeoutMs: options.idleTimeoutMs, keepAliveMs: options.keepAliveMs, maxFree: 64 });
    this.sendTimeout = new SendTimeout(options.sendTimeoutMs);
    this.proxy = new ProxyServer({ selfHandleResponse: true, xfwd: false });
    this.proxy.on("proxyReq", (proxyReq, req) => this.watchIdle(proxyReq, req, this.exchanges.get(req)!));
    this.proxy.on("proxyRes", (proxyRes, req, res) => this.respond(proxyRes, req, res));
  }

  /**
   * Resolves when the exchange is over: response finished, failed, or the client went away. The target is
   * forwarded exactly as received (toProxy: no re-serialisation through URL); the pipeline has checked it
   * is canonical. A request without a body may be forwarded again after an outcome that answered nothing
   * (notConnected, passedOver).
   */
  forward(req: IncomingMessage, res: ServerResponse, backend: URL, edge: EdgeContext, options: ForwardOptions = {}): Promise<ForwardOutcome> {
    const { body } = options;
    // The client may have gone while earlier stages awaited (a password check, a rate limit): then nothing is
    // sent upstream, and the close events this exchange would wait for have already fired.
    if (res.destroyed || req.socket.destroyed) return Promise.resolve({ status: 0, backend: backend.origin, clientAborted: true, requestBytes: 0 });
    // Forwarded before (to a backend that was down or had no such image): its stream is over, so the
    // next exchange sends an empty body of its own.
    const replay = body ?? (req.readableEnded ? Buffer.alloc(0) : undefined);
    return new Promise((resolve) => {
      let settled = false;
      const exchange: Exchange = {
        backend,
        edge,
        options,
        startedAt: performance.now(),
        requestBytes: body?.length ?? 0,
        timedOut: false,
        clientStalled: false,
        handedOn: false,
        settle: (outcome) => {
          if (settled) return;
          settled = true;
          exchange.handedOn = outcome.passedOver !== undefined || outcome.notConnected === true;
          resolve({
            ...outcome,
            backend: backend.origin,
            upstreamMs: exchange.upstreamMs,
            requestBytes: exchange.requestBytes,
            responseBytes: exchange.responseBytes,
          });
        },
      };
      this.exchanges.set(req, exchange);
      // While the backend is in play its idle timer watches both directions (a stalled client stalls the
      // upstream socket too); the client socket's own timer would cut a slow backend answer first. After the
      // response Node's server sets the keep-alive timeout itself.
      req.socket.setTimeout(0);
      res.once("close", () => exchange.settle({ status: res.headersSent ? res.statusCode : 0, clientAborted: !res.writableFinished }));
      // A client that leaves (or whose connection is cut) ends its backend request at once, even when the
      // backend already answered and only the request body was still flowing.
      req.once("close", () => {
        if (!req.complete) exchange.upstream?.destroy();
      });
      // A client that stops reading: its connection is closed, which ends the backend exchange too (the relay
      // aborts its connection, http-proxy destroys its request): neither goes back to a keep-alive pool.
      this.sendTimeout.watch(res, () => res.destroy());
      res.once("finish", () => {
        // The backend answered before the request body was over: nothing more of it is wanted, and the
        // rest cannot be told from a next request. End both connections.
        if (!req.complete) {
          exchange.upstream?.destroy();
          req.socket.destroySoon();
        }
      });

      const clientHeaders = this.clientHeaders.get(req) ?? req.headers;
      this.clientHeaders.set(req, clientHeaders);
      req.headers = forwardRequestHeaders(clientHeaders, edge, backend);
      if (this.viaRelay(req, res, backend, exchange, replay)) return;
      this.web(req, res, backend, exchange, replay);
      // Counted as the body passes: web() has already piped req synchronously, so this extra listener
      // neither starts the flow early nor overrides the pipe's pause() under backpressure. (The socket's
      // bytesRead would include headers and, with keep-alive, other requests.)
      if (!replay) req.on("data", (chunk: Buffer) => (exchange.requestBytes += chunk.length));
    });
  }

  private web(req: IncomingMessage, res: ServerResponse, backend: URL, exchange: Exchange, replay: Buffer | undefined): void {
    this.proxy.web(
      req,
      res,
      { target: backend, agent: this.agentFor(backend), toProxy: true, ...(replay ? { buffer: Readable.from([replay]) } : {}) },
      (err: NodeJS.ErrnoException) => this.fail(err, req, res, exchange),
    );
  }

  /**
   * A blob or manifest GET to a plain-HTTP backend goes through get-relay.ts; false when it cannot (it then goes through
   * web()). An answer the relay does not take (chunked, 1xx, …) is read by Node's client from where the relay
   * stopped, and relayed as web() relays. Outcomes, timeouts and failures are the same as web()'s.
   */
  private viaRelay(req: IncomingMessage, res: ServerResponse, backend: URL, exchange: Exchange, replay: Buffer | undefined): boolean {
    const { relayGet, passOver, beforeRelay } = exchange.options;
    if (!relayGet || req.method !== "GET" || backend.protocol !== "http:" || beforeRelay || (replay !== undefined && replay.length > 0)) return false;
    const handle = this.getRelay.get(backend, req.url!, req.headers, {
      onHead: (head) => {
        exchange.upstreamMs = performance.now() - exchange.startedAt;
        if (passOver?.(head.status)) {
          // Read to the end so the connection is reused; the client hears nothing of it.
          exchange.settle({ status: 0, passedOver: head.status, clientAborted: false });
          return "discard";
        }
        if (res.destroyed) return "abort";
        try {
          writeHeadAfterSetHeaders(res, head.status, head.statusMessage, clientResponseHeaders(head.rawHeaders, head.status, exchange.backend, exchange.edge));
        } catch {
          // A head Node will not write (the relay only takes plainly valid ones): nothing was sent, so no answer can be trusted.
          res.destroy();
          return "abort";
        }
        exchange.responseBytes = 0;
        return "relay";
      },
      onBody: (chunk, done) => {
        exchange.responseBytes! += chunk.length;
        res.write(chunk, () => done());
      },
      onEnd: (last, done) => {
        if (exchange.responseBytes === undefined) return done(); // passed over
        if (last) exchange.responseBytes += last.length;
        // A response cut before its last write completed may never call back: once closed, nothing refers to `last`.
        let called = false;
        const once = () => {
          if (called) return;
          called = true;
          done();
        };
        res.once("close", once);
        res.end(last ?? undefined, once);
      },
      onUnsupported: (answer) => {
        let upstream: http.ClientRequest;
        try {
          upstream = http.request({ method: "GET", path: req.url, host: backend.hostname, createConnection: () => answer });
        } catch (err) {
          answer.destroy();
          return this.fail(err as NodeJS.ErrnoException, req, res, exchange);
        }
        exchange.upstream = upstream;
        upstream.on("response", (proxyRes: IncomingMessage) => {
          // The connection is not reused: it ends with this answer (or with the client).
          proxyRes.once("close", () => answer.destroy());
          this.respond(proxyRes, req, res);
        });
        upstream.on("error", (err: NodeJS.ErrnoException) => {
          exchange.timedOut = err.code === "ETIMEDOUT";
          this.fail(err, req, res, exchange);
        });
        upstream.end();
        // A client that leaves ends the backend exchange (as http-proxy does for web()).
        res.once("close", () => {
          if (!res.writableFinished) upstream.destroy();
        });
      },
      onFailure: (err) => {
        exchange.timedOut = err.code === "ETIMEDOUT";
        this.fail(err, req, res, exchange);
      },
      // A backend that dies mid-body must not leave the client waiting for bytes that never come.
      onCut: () => {
        if (!exchange.handedOn) res.destroy();
      },
    });
    if (!handle) return false;
    res.once("close", () => {
      if (!res.writableFinished) handle.abort();
    });
    return true;
  }

  /**
   * Idle, never total: a multi-GB layer may take an hour, but a backend that sends and receives
   * nothing for idleTimeoutMs is gone. (http-proxy's proxyTimeout cannot tell a timeout from a reset.)
   */
  private watchIdle(proxyReq: http.ClientRequest, req: IncomingMessage, exchange: Exchange): void {
    exchange.upstream = proxyReq;
    proxyReq.setTimeout(this.options.idleTimeoutMs, () => {
      exchange.timedOut = true;
      // Still waiting for request body bytes: the client stalled, not the backend.
      exchange.clientStalled = !req.complete;
      proxyReq.destroy();
    });
  }

  private respond(proxyRes: IncomingMessage, req: IncomingMessage, res: ServerResponse): void {
    const exchange = this.exchanges.get(req)!;
    exchange.upstreamMs = performance.now() - exchange.startedAt;
    const status = proxyRes.statusCode ?? 502;
    const { passOver, beforeRelay } = exchange.options;
    if (passOver?.(status)) {
      // Read to the end so the backend connection goes back to the pool; the client hears nothing of it.
      proxyRes.resume();
      exchange.settle({ status: 0, passedOver: status, clientAborted: false });
      return;
    }
    const held = beforeRelay?.(status, proxyRes.rawHeaders);
    if (held) {
      // Nothing is read from the backend meanwhile: its answer waits in the socket (backpressure).
      held.then(
        () => this.relay(proxyRes, res, exchange, status),
        () => this.relay(proxyRes, res, exchange, status),
      );
      return;
    }
    this.relay(proxyRes, res, exchange, status);
  }

  private relay(proxyRes: IncomingMessage, res: ServerResponse, exchange: Exchange, status: number): void {
    // The client left while the relay was held.
    if (res.destroyed) {
      proxyRes.destroy();
      return;
    }
    // A backend that dies mid-body must not leave the client waiting for bytes that never come.
    const cutClient = () => {
      if (!proxyRes.complete) res.destroy();
    };
    proxyRes.once("aborted", cutClient);
    proxyRes.once("error", cutClient);
    proxyRes.once("close", cutClient);
    writeHeadAfterSetHeaders(res, status, proxyRes.statusMessage, clientResponseHeaders(proxyRes.rawHeaders, status, exchange.backend, exchange.edge));
    proxyRes.pipe(res);
    // Same as the request side: the pipe owns the flow, this only counts what passes.
    exchange.responseBytes = 0;
    proxyRes.on("data", (chunk: Buffer) => (exchange.responseBytes! += chunk.length));
  }

  private fail(err: NodeJS.ErrnoException, req: IncomingMessage, res: ServerResponse, exchange: Exchange): void {
    if (exchange.handedOn) return;
    const failure = exchange.timedOut ? "timeout" : upstreamFailure(err);
    const unanswered = failure === "refused" || (failure === "reset" && exchange.options.resetIsUnconnected === true && exchange.upstreamMs === undefined);
    if (unanswered && exchange.options.returnUnconnected && !res.headersSent) {
      exchange.settle({ status: 0, upstreamFailure: failure, notConnected: true, clientAborted: false });
      return;
    }
    if (res.destroyed || res.writableEnded) {
      exchange.settle({ status: res.headersSent ? res.statusCode : 0, upstreamFailure: failure, clientAborted: !res.writableFinished });
      return;
    }
    const sent = exchange.clientStalled
      ? sendError(res, "clientTimeout", "the request body stopped arriving", { Connection: "close" })
      : failure === "timeout"
        ? sendError(res, "backendTimeout", "the backend registry did not answer in time", { Connection: "close" })
        : sendError(res, "backendUnavailable", "the backend registry is unavailable", req.complete ? {} : { Connection: "close" });
    if (!sent) res.destroy();
    exchange.settle({ status: sent ? res.statusCode : 0, upstreamFailure: failure, clientAborted: false });
  }

  agentFor(backend: URL): http.Agent {
    let agent = this.agents.get(backend.origin);
    if (!agent) {
      // highWaterMark is handed on to each socket the agent creates (net.createConnection options).
      const options: http.AgentOptions & { highWaterMark: number } = {
        keepAlive: true,
        keepAliveMsecs: 1000,
        maxFreeSockets: 64,
        timeout: this.options.keepAliveMs,
        highWaterMark: BACKEND_HIGH_WATER_MARK,
      };
      agent = backend.protocol === "https:" ? new https.Agent(options) : new http.Agent(options);
      this.agents.set(backend.origin, agent);
    }
    return agent;
  }

  /** Backend sockets carrying a request right now (pooled idle ones not counted). */
  upstreamSocketsInUse(): number {
    let count = this.getRelay.inUse;
    for (const agent of this.agents.values()) {
      for (const list of Object.values(agent.sockets)) count += list?.length ?? 0;
    }
    return count;
  }

  close(): void {
    this.sendTimeout.close();
    for (const agent of this.agents.values()) agent.destroy();
    this.agents.clear();
    this.getRelay.close();
    this.proxy.close();
  }
}

/**
 * Node 20's writeHead(status, rawList) on a response that already carries headers (X-Request-Id, which the
 * pipeline sets before any stage can answer) goes through setHeader, which keeps only the last of repeated
 * names: several WWW-Authenticate challenges would collapse into one. appendHeader keeps every one. A
 * header set earlier wins over the backend's of the same name (the request id is the gateway's).
 */
function writeHeadAfterSetHeaders(res: ServerResponse, status: number, message: string | undefined, headers: readonly string[]): void {
  const preset = res.getHeaderNames();
  if (preset.length === 0) {
    res.writeHead(status, message, headers as string[]);
    return;
  }
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!;
    if (!preset.includes(name.toLowerCase())) res.appendHeader(name, headers[i + 1]!);
  }
  res.writeHead(status, message);
}

function upstreamFailure(err: NodeJS.ErrnoException): UpstreamFailure {
  switch (err.code) {
    case "ECONNREFUSED":
    case "ENOTFOUND":
    case "EAI_AGAIN":
    case "EHOSTUNREACH":
      return "refused";
    case "ETIMEDOUT":
    case "ESOCKETTIMEDOUT":
      return "timeout";
    case "ECONNRESET":
    case "EPIPE":
      return "reset";
    default:
      return "other";
  }
}
