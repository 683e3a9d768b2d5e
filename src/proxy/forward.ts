// Forwarding to backend registries: the process's backend connections (keep-alive agents for http-proxy-3,
// the GET relay's own pool) and the two halves of every forwarded request, used by backends/dispatch.ts:
// roundTrip() sends the request and returns the answer's head or a typed failure (round-trip.ts), and
// relay() / answer() write what the client gets (exchange.ts). Responses are written by the gateway, not by
// http-proxy-3, so that headers are copied from rawHeaders (duplicates intact) and Location is rewritten on
// 202, which http-proxy's autoRewrite does not touch.
import http from "node:http";
import https from "node:https";
import { answerFailure, outcomeOf, relayAnswer, type ClientSide, type ForwardOutcome } from "./exchange.js";
import { GetRelay } from "./get-relay.js";
import { ProxyEngine } from "./proxy-engine.js";
import { RelayBuffers } from "./relay-buffers.js";
import { RelayEngine } from "./relay-engine.js";
import { RoundTripper, type ResponseHead, type RoundTripError, type RoundTripRequest, type RoundTripResult } from "./round-trip.js";
import { SendTimeout } from "./send-timeout.js";

export type { ForwardOutcome } from "./exchange.js";
export type { UpstreamFailure } from "./round-trip.js";

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

export interface ForwarderOptions {
  /** A backend silent this long in the middle of an exchange is given up on (504). */
  idleTimeoutMs: number;
  /** How long an unused pooled backend connection is kept. */
  keepAliveMs: number;
  /** A response whose client takes none of its waiting bytes for this long is closed, and its backend exchange with it. */
  sendTimeoutMs: number;
}

export class Forwarder {
  private readonly agents = new Map<string, http.Agent>();
  private readonly getRelay: GetRelay;
  private readonly proxy: ProxyEngine;
  private readonly tripper: RoundTripper;
  private readonly sendTimeout: SendTimeout;

  constructor(private readonly options: ForwarderOptions) {
    this.getRelay = new GetRelay({ buffers: RELAY_BUFFERS, idleTimeoutMs: options.idleTimeoutMs, keepAliveMs: options.keepAliveMs, maxFree: 64 });
    this.proxy = new ProxyEngine((backend) => this.agentFor(backend), options.idleTimeoutMs);
    this.tripper = new RoundTripper(new RelayEngine(this.getRelay), this.proxy);
    this.sendTimeout = new SendTimeout(options.sendTimeoutMs);
  }

  /** Sends the request to `backend`; nothing is written to the client (round-trip.ts). */
  roundTrip(request: RoundTripRequest, backend: URL): Promise<RoundTripResult> {
    return this.tripper.roundTrip(request, backend);
  }

  /** Writes the backend's answer to the client; resolves when the exchange is over. */
  relay(head: ResponseHead, client: ClientSide): Promise<ForwardOutcome> {
    return relayAnswer(head, client, this.sendTimeout);
  }

  /** Answers the client for a round trip that failed (502, 504, 408), or records that it left. */
  answer(error: RoundTripError, client: ClientSide): ForwardOutcome {
    return outcomeOf(error.trip, answerFailure(error, client, this.sendTimeout));
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

