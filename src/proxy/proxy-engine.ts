// The general round trip, through http-proxy-3: the client's body piped to the backend with backpressure
// (or a replayed one sent), keep-alive agents per backend, an idle timeout only. The answer is not written
// by http-proxy-3 (selfHandleResponse): its head is the round trip's result, its body a MessageBody.
import type http from "node:http";
import type { IncomingMessage, ServerResponse } from "node:http";
import { Readable } from "node:stream";
import { ProxyServer } from "http-proxy-3";
import type { BodySink, Engine, ResponseBody, Trip } from "./round-trip.js";

export class ProxyEngine implements Engine {
  private readonly proxy = new ProxyServer({ selfHandleResponse: true, xfwd: false });
  /** http-proxy-3 names the client request in its events: this finds the round trip it belongs to. */
  private readonly trips = new WeakMap<IncomingMessage, Trip>();

  constructor(
    private readonly agentFor: (backend: URL) => http.Agent,
    private readonly idleTimeoutMs: number,
  ) {
    this.proxy.on("proxyReq", (proxyReq, req) => this.watchIdle(proxyReq, req, this.trips.get(req)!));
    this.proxy.on("proxyRes", (proxyRes, req) => {
      const trip = this.trips.get(req)!;
      trip.answered(proxyRes.statusCode ?? 502, proxyRes.statusMessage, proxyRes.rawHeaders, new MessageBody(proxyRes, trip));
    });
  }

  /** The target is forwarded exactly as received (toProxy: no re-serialisation through URL). */
  send(trip: Trip, req: IncomingMessage, res: ServerResponse, replay: Buffer | undefined): true {
    this.trips.set(req, trip);
    this.proxy.web(
      req,
      res,
      { target: trip.backend, agent: this.agentFor(trip.backend), toProxy: true, ...(replay ? { buffer: Readable.from([replay]) } : {}) },
      (err: NodeJS.ErrnoException) => trip.failed(err),
    );
    return true;
  }

  /**
   * Idle, never total: a multi-GB layer may take an hour, but a backend that sends and receives
   * nothing for idleTimeoutMs is gone. (http-proxy's proxyTimeout cannot tell a timeout from a reset.)
   */
  private watchIdle(proxyReq: http.ClientRequest, req: IncomingMessage, trip: Trip): void {
    trip.upstream = proxyReq;
    proxyReq.setTimeout(this.idleTimeoutMs, () => {
      trip.timedOut = true;
      // Still waiting for request body bytes: the client stalled, not the backend.
      trip.clientStalled = !req.complete;
      proxyReq.destroy();
    });
  }

  close(): void {
    this.proxy.close();
  }
}

/** A body read by Node's HTTP client. */
export class MessageBody implements ResponseBody {
  relayedBytes: number | undefined;

  constructor(
    private readonly message: IncomingMessage,
    private readonly trip: Trip,
  ) {}

  relayTo(res: ServerResponse, sink: BodySink): void {
    const message = this.message;
    this.trip.relaying(sink);
    // A backend that dies mid-body must not leave the client waiting for bytes that never come.
    const cutClient = () => {
      if (!message.complete) res.destroy();
    };
    message.once("aborted", cutClient);
    message.once("error", cutClient);
    message.once("close", cutClient);
    // Gone while its relay was held (upload affinity): those events have fired already.
    if (message.destroyed) cutClient();
    message.pipe(res);
    // The pipe owns the flow, this only counts what passes.
    this.relayedBytes = 0;
    message.on("data", (chunk: Buffer) => (this.relayedBytes! += chunk.length));
  }

  discard(): void {
    this.trip.handedOn();
    // Read to the end so the backend connection goes back to the pool.
    this.message.resume();
  }

  abort(): void {
    this.trip.handedOn();
    this.message.destroy();
  }
}
