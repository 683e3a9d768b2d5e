// The round trip of a blob or manifest GET to a plain-HTTP backend, through the GET relay (get-relay.ts): its
// body goes socket to socket, each backend read one write to the client. An answer the relay does not take
// (chunked, 1xx, …) is read by Node's client from where the relay stopped, and becomes an ordinary head and
// body (proxy-engine.ts's MessageBody). Outcomes, timeouts and failures are the same as the other engine's.
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import type { Duplex } from "node:stream";
import type { GetRelay, HeadVerdict, RelayHandlers } from "./get-relay.js";
import { MessageBody } from "./proxy-engine.js";
import type { BodySink, Engine, ResponseBody, Trip } from "./round-trip.js";

export class RelayEngine implements Engine {
  constructor(private readonly relay: GetRelay) {}

  /** False when the request cannot be written this way (a header that is not plainly valid): use the other engine. */
  send(trip: Trip, req: IncomingMessage, res: ServerResponse): boolean {
    const body = new RelayedBody(trip);
    const handlers: RelayHandlers = {
      onHead: (head, decide) => {
        body.decide = decide;
        trip.answered(head.status, head.statusMessage, head.rawHeaders, body);
      },
      onBody: (chunk, done) => body.write(chunk, done),
      onEnd: (last, done) => body.end(last, done),
      onUnsupported: (answer) => readWithNodeClient(trip, req, res, answer),
      onFailure: (err) => trip.failed(err),
      onCut: () => body.cut(),
    };
    const handle = this.relay.get(trip.backend, req.url!, req.headers, handlers);
    if (!handle) return false;
    res.once("close", () => {
      if (!res.writableFinished) handle.abort();
    });
    return true;
  }
}

/** The body of a relayed answer: its connection reads on once told what to do with it. */
class RelayedBody implements ResponseBody {
  relayedBytes: number | undefined;
  decide: (verdict: HeadVerdict) => void = () => {};
  private res: ServerResponse | null = null;
  private wasCut = false;

  constructor(private readonly trip: Trip) {}

  relayTo(res: ServerResponse, sink: BodySink): void {
    this.res = res;
    this.relayedBytes = 0;
    this.trip.relaying(sink);
    // A backend that died while the verdict was awaited: the client is cut as it would have been mid-body.
    if (this.wasCut) res.destroy();
    else this.decide("relay");
  }

  discard(): void {
    this.trip.handedOn();
    this.decide("discard");
  }

  abort(): void {
    this.trip.handedOn();
    this.decide("abort");
  }

  write(chunk: Buffer, done: () => void): void {
    this.relayedBytes! += chunk.length;
    this.res!.write(chunk, () => done());
  }

  end(last: Buffer | null, done: () => void): void {
    const res = this.res;
    if (res === null) return done(); // discarded
    if (last) this.relayedBytes! += last.length;
    // A response cut before its last write completed may never call back: once closed, nothing refers to `last`.
    let called = false;
    const once = () => {
      if (called) return;
      called = true;
      done();
    };
    res.once("close", once);
    res.end(last ?? undefined, once);
  }

  /** A backend that dies mid-body must not leave the client waiting for bytes that never come. */
  cut(): void {
    if (this.res) this.res.destroy();
    else this.wasCut = true;
  }
}

/** An answer the relay does not take, read from the bytes the backend sent by Node's client. */
function readWithNodeClient(trip: Trip, req: IncomingMessage, res: ServerResponse, answer: Duplex): void {
  let upstream: http.ClientRequest;
  try {
    upstream = http.request({ method: "GET", path: req.url, host: trip.backend.hostname, createConnection: () => answer });
  } catch (err) {
    answer.destroy();
    trip.failed(err as NodeJS.ErrnoException);
    return;
  }
  trip.upstream = upstream;
  upstream.on("response", (proxyRes: IncomingMessage) => {
    // The connection is not reused: it ends with this answer (or with the client).
    proxyRes.once("close", () => answer.destroy());
    trip.answered(proxyRes.statusCode ?? 502, proxyRes.statusMessage, proxyRes.rawHeaders, new MessageBody(proxyRes, trip));
  });
  upstream.on("error", (err: NodeJS.ErrnoException) => {
    trip.timedOut = err.code === "ETIMEDOUT";
    trip.failed(err);
  });
  upstream.end();
  // A client that leaves ends the backend exchange (as http-proxy-3 does for its requests).
  res.once("close", () => {
    if (!res.writableFinished) upstream.destroy();
  });
}
