// The client's side of a forwarded request, written once whatever was tried before: the backend's answer
// relayed (headers rewritten by headers.ts, body streamed with backpressure, a stalled reader closed by the
// send timeout), or the failure of the round trip answered as a registry error. Each ends in the request's
// ForwardOutcome (metrics, access log).
import type { IncomingMessage, ServerResponse } from "node:http";
import { sendError } from "../registry/errors.js";
import { clientResponseHeaders, type EdgeContext } from "./headers.js";
import { upstreamFailure, type ResponseHead, type RoundTripError, type Trip, type UpstreamFailure } from "./round-trip.js";
import type { SendTimeout } from "./send-timeout.js";

export interface ForwardOutcome {
  /** Status sent to the client; 0 when the exchange was cut before a status was sent. */
  status: number;
  /** The backend (origin) the exchange was with. */
  backend: string;
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

export interface ClientSide {
  req: IncomingMessage;
  res: ServerResponse;
  edge: EdgeContext;
}

/** How an exchange ended; the byte counts and timing come from its round trip. */
type Settlement = Omit<ForwardOutcome, "backend" | "upstreamMs" | "requestBytes" | "responseBytes">;

export function outcomeOf(trip: Trip, settlement: Settlement, responseBytes?: number): ForwardOutcome {
  return { ...settlement, backend: trip.backend.origin, upstreamMs: trip.upstreamMs, requestBytes: trip.requestBytes, responseBytes };
}

/** Relays the backend's answer to the client; resolves once the response is over (finished, cut, or the client gone). */
export function relayAnswer(head: ResponseHead, client: ClientSide, sendTimeout: SendTimeout): Promise<ForwardOutcome> {
  const { res } = client;
  const { body, trip, status } = head;
  return new Promise((resolve) => {
    let settled = false;
    const settle = (settlement: Settlement) => {
      if (settled) return;
      settled = true;
      resolve(outcomeOf(trip, settlement, body.relayedBytes));
    };
    const closed = () => settle({ status: res.headersSent ? res.statusCode : 0, clientAborted: !res.writableFinished });
    // The client left while the relay was held (upload affinity): its close has been and gone.
    if (res.destroyed) {
      body.abort();
      closed();
      return;
    }
    res.once("close", closed);
    // A client that stops reading: its connection is closed, which ends the backend exchange too (the relay
    // aborts its connection, http-proxy destroys its request): neither goes back to a keep-alive pool.
    sendTimeout.watch(res, () => res.destroy());
    try {
      writeHeadAfterSetHeaders(res, status, head.statusMessage, clientResponseHeaders(head.rawHeaders, status, trip.backend, client.edge));
    } catch {
      // A head Node will not write: nothing was sent, so no answer can be trusted.
      body.abort();
      res.destroy();
      return;
    }
    body.relayTo(res, { failed: (error) => settle(answerFailure(error, client)) });
  });
}

/** Answers a round trip that failed (before its answer, or in the middle of its body) as the registry error it is. */
export function answerFailure(error: RoundTripError, client: ClientSide, sendTimeout?: SendTimeout): Settlement {
  const { req, res } = client;
  const failure = upstreamFailure(error.kind);
  if (error.kind === "clientGone" || res.destroyed || res.writableEnded) {
    return { status: res.headersSent ? res.statusCode : 0, upstreamFailure: failure, clientAborted: !res.writableFinished };
  }
  sendTimeout?.watch(res, () => res.destroy());
  const sent = error.clientStalled
    ? sendError(res, "clientTimeout", "the request body stopped arriving", { Connection: "close" })
    : error.kind === "timeout"
      ? sendError(res, "backendTimeout", "the backend registry did not answer in time", { Connection: "close" })
      : sendError(res, "backendUnavailable", "the backend registry is unavailable", req.complete ? {} : { Connection: "close" });
  if (!sent) res.destroy();
  return { status: sent ? res.statusCode : 0, upstreamFailure: failure, clientAborted: false };
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
