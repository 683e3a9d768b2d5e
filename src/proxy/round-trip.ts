// One round trip to a backend: the request sent as the gateway authorized it (raw target, headers rewritten
// for that backend, the body streamed or replayed) and either the answer's head, its body not yet read past
// what came with the head, or a typed error saying how far the request got. The caller decides what happens
// next (backends/dispatch.ts): relay the answer to the client (exchange.ts), drain it and ask another backend,
// or send the request again. Two engines send: the GET relay (relay-engine.ts) for blob and manifest GETs to
// plain-HTTP backends, and http-proxy-3 (proxy-engine.ts) for everything else.
import type { ClientRequest, IncomingHttpHeaders, IncomingMessage, ServerResponse } from "node:http";
import { forwardRequestHeaders, type EdgeContext } from "./headers.js";

export type UpstreamFailure = "refused" | "timeout" | "reset" | "other";

/**
 * How a round trip ended without an answer:
 *   unconnected  no connection could be made: the backend never saw the request, which may go elsewhere
 *   reset        the connection was lost with the request sent and no answer yet
 *   timeout      the backend (or, clientStalled, the client's request body) was silent for the idle timeout
 *   failed       anything else (an answer Node's parser refuses, …)
 *   clientGone   the client left first: nobody is waiting for an answer
 */
export type RoundTripErrorKind = "unconnected" | "reset" | "timeout" | "failed" | "clientGone";

export interface RoundTripRequest {
  req: IncomingMessage;
  res: ServerResponse;
  edge: EdgeContext;
  /** The headers as the client sent them: each round trip rewrites them for its own backend. */
  clientHeaders: IncomingHttpHeaders;
  /** A request body the pipeline already read (an urlencoded mount form), sent instead of the client's stream. */
  body?: Buffer;
  /** A blob or manifest GET without a body: to a plain-HTTP backend it goes through the GET relay. */
  pull: boolean;
}

/** After the head: a body failure is answered by whoever relays it (exchange.ts). */
export interface BodySink {
  failed(error: RoundTripError): void;
}

export interface ResponseBody {
  /** Body bytes written to the client; undefined until relayTo. */
  readonly relayedBytes: number | undefined;
  /** Streams the body to `res` with backpressure; a backend that dies mid-body cuts the client's response. */
  relayTo(res: ServerResponse, sink: BodySink): void;
  /** Reads the body to its end and drops it, so the connection is reused; the client hears nothing of it. */
  discard(): void;
  /** Drops the body and its connection. */
  abort(): void;
}

export interface ResponseHead {
  ok: true;
  status: number;
  statusMessage: string | undefined;
  rawHeaders: readonly string[];
  body: ResponseBody;
  trip: Trip;
}

export interface RoundTripError {
  ok: false;
  kind: RoundTripErrorKind;
  /** The idle timer fired while the request body was still coming: the client's fault (408), not the backend's. */
  clientStalled: boolean;
  trip: Trip;
}

export type RoundTripResult = ResponseHead | RoundTripError;

/** The state of one round trip, shared by its engine, its body and the exchange that relays it. */
export class Trip {
  readonly startedAt = performance.now();
  /** From sending the request to the backend's response head. */
  upstreamMs: number | undefined;
  /** Request body bytes handed on to the backend. */
  requestBytes: number;
  timedOut = false;
  clientStalled = false;
  /** The backend request (http-proxy-3 and Node's client), once it has one: cut when the client leaves. */
  upstream: ClientRequest | undefined;
  private state: "waiting" | "answered" | "relaying" | "over" = "waiting";
  private sink: BodySink | null = null;
  private early: RoundTripError | null = null;

  constructor(
    readonly backend: URL,
    replay: Buffer | undefined,
    private readonly resolve: (result: RoundTripResult) => void,
  ) {
    this.requestBytes = replay?.length ?? 0;
  }

  get waiting(): boolean {
    return this.state === "waiting";
  }

  answered(status: number, statusMessage: string | undefined, rawHeaders: readonly string[], body: ResponseBody): void {
    if (this.state !== "waiting") return;
    this.state = "answered";
    this.upstreamMs = performance.now() - this.startedAt;
    this.resolve({ ok: true, status, statusMessage, rawHeaders, body, trip: this });
  }

  /** A failure of the backend exchange: before the head it is the round trip's result, after it the body's. */
  failed(err: NodeJS.ErrnoException): void {
    const error: RoundTripError = { ok: false, kind: this.timedOut ? "timeout" : errorKind(err), clientStalled: this.clientStalled, trip: this };
    this.fail(error);
  }

  fail(error: RoundTripError): void {
    if (this.state === "waiting") {
      this.state = "over";
      this.resolve(error);
    } else if (this.state === "relaying") this.sink!.failed(error);
    else if (this.state === "answered") this.early ??= error;
  }

  clientGone(): void {
    if (this.state !== "waiting") return;
    this.upstream?.destroy();
    this.fail({ ok: false, kind: "clientGone", clientStalled: false, trip: this });
  }

  relaying(sink: BodySink): void {
    if (this.state !== "answered") return;
    this.state = "relaying";
    this.sink = sink;
    if (this.early) sink.failed(this.early);
  }

  /** Drained or dropped: nothing that happens to this backend exchange concerns the client any more. */
  handedOn(): void {
    this.state = "over";
  }
}

export function upstreamFailure(kind: RoundTripErrorKind): UpstreamFailure | undefined {
  switch (kind) {
    case "unconnected":
      return "refused";
    case "timeout":
      return "timeout";
    case "reset":
      return "reset";
    case "failed":
      return "other";
    case "clientGone":
      return undefined;
  }
}

function errorKind(err: NodeJS.ErrnoException): RoundTripErrorKind {
  switch (err.code) {
    case "ECONNREFUSED":
    case "ENOTFOUND":
    case "EAI_AGAIN":
    case "EHOSTUNREACH":
      return "unconnected";
    case "ETIMEDOUT":
    case "ESOCKETTIMEDOUT":
      return "timeout";
    case "ECONNRESET":
    case "EPIPE":
      return "reset";
    default:
      return "failed";
  }
}

/** Sends one round trip's request and reports its answer or failure to the trip. */
export interface Engine {
  /** False when this engine cannot send this request (nothing was sent): another one must. */
  send(trip: Trip, req: IncomingMessage, res: ServerResponse, replay: Buffer | undefined): boolean;
}

/** Sends requests through whichever engine takes them. */
export class RoundTripper {
  constructor(
    /** For pulls from plain-HTTP backends. */
    private readonly relay: Engine,
    /** For everything. */
    private readonly general: Engine,
  ) {}

  roundTrip(request: RoundTripRequest, backend: URL): Promise<RoundTripResult> {
    const { req, res, edge } = request;
    // Forwarded before (to a backend that was down or had no such image): its stream is over, so this
    // round trip sends an empty body of its own.
    const replay = request.body ?? (req.readableEnded ? Buffer.alloc(0) : undefined);
    return new Promise((resolve) => {
      const trip = new Trip(backend, replay, resolve);
      // The client may have gone while earlier stages awaited (a password check, a rate limit): then nothing is
      // sent upstream, and the close events this would wait for have already fired.
      if (res.destroyed || req.socket.destroyed) {
        trip.requestBytes = 0;
        trip.clientGone();
        return;
      }
      watchClient(req, res, trip);
      req.headers = forwardRequestHeaders(request.clientHeaders, edge, backend);
      const pull = request.pull && req.method === "GET" && backend.protocol === "http:" && (replay === undefined || replay.length === 0);
      if (pull && this.relay.send(trip, req, res, replay)) return;
      this.general.send(trip, req, res, replay);
      // Counted as the body passes: the engine has already piped req synchronously, so this extra listener
      // neither starts the flow early nor overrides the pipe's pause() under backpressure. (The socket's
      // bytesRead would include headers and, with keep-alive, other requests.)
      if (!replay) req.on("data", (chunk: Buffer) => (trip.requestBytes += chunk.length));
    });
  }
}

function watchClient(req: IncomingMessage, res: ServerResponse, trip: Trip): void {
  // While the backend is in play its idle timer watches both directions (a stalled client stalls the
  // upstream socket too); the client socket's own timer would cut a slow backend answer first. After the
  // response Node's server sets the keep-alive timeout itself.
  req.socket.setTimeout(0);
  res.once("close", () => trip.clientGone());
  // A client that leaves (or whose connection is cut) ends its backend request at once, even when the
  // backend already answered and only the request body was still flowing.
  req.once("close", () => {
    if (!req.complete) trip.upstream?.destroy();
  });
  res.once("finish", () => {
    // The backend answered before the request body was over: nothing more of it is wanted, and the
    // rest cannot be told from a next request. End both connections.
    if (!req.complete) {
      trip.upstream?.destroy();
      req.socket.destroySoon();
    }
  });
}
