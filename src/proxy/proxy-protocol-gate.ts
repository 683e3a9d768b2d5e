// The PROXY protocol on a listener: a connection from a trusted balancer must start with a PROXY header,
// and the address in it becomes the client's; any other connection is a direct client, and is never read
// for a header.
//
// Why untrusted peers are served as direct clients rather than refused: their own TCP address is one they
// cannot forge, so serving them gives a header no power; refusing them would add no protection of the
// client address, only lock out direct clients and health checks. A header such a peer sends is not
// parsed: it reaches TLS or HTTP as the first bytes of the connection and fails there as garbage.
// Fail closed: a trusted peer without a valid header in time (a balancer misconfigured to not send one,
// or anything else at its address) is cut before TLS, so it is never served as the balancer itself.
import { BlockList, isIP, type Server, type Socket } from "node:net";
import { Server as TlsServer } from "node:tls";
import type { ProxyProtocolConfig } from "../config/schema.js";
import { vouchForClient } from "./client-connection.js";
import { normalizeAddress } from "./client-ip.js";
import { MAX_PROXY_HEADER_BYTES, parseProxyHeader } from "./proxy-protocol.js";

type ConnectionListener = (socket: Socket) => void;

/** What the gate says: a pino logger, or a command's own (offline rotation). */
export interface GateLogger {
  debug(details: object, message: string): void;
  warn(details: object, message: string): void;
}

/** At most one warning about refused headers this often: a misconfigured balancer refuses every connection. */
const REFUSAL_WARNING_EVERY_MS = 60_000;

export class ProxyProtocolGate {
  #trusted: BlockList | undefined;
  #deadlineMs = 0;
  #lastWarningAt = -Infinity;
  #refusedSinceWarning = 0;

  constructor(
    settings: ProxyProtocolConfig | undefined,
    deadlineMs: number,
    private readonly logger: GateLogger,
  ) {
    this.configure(settings, deadlineMs);
  }

  /** A reload applies to connections accepted from then on. */
  configure(settings: ProxyProtocolConfig | undefined, deadlineMs: number): void {
    this.#deadlineMs = deadlineMs;
    if (!settings) {
      this.#trusted = undefined;
      return;
    }
    const trusted = new BlockList();
    for (const { address, prefix, family } of settings.trustedFrom) trusted.addSubnet(address, prefix, family);
    this.#trusted = trusted;
  }

  /**
   * Moves every `connection` listener `server` has now (its TLS or HTTP layer, the gateway's accounting)
   * behind the gate: call after the last one is added. A connection from a trusted peer reaches them once
   * its header is read and its client recorded; a direct one at once, as without the gate.
   */
  guard(server: Server): void {
    const listeners = server.listeners("connection") as ConnectionListener[];
    server.removeAllListeners("connection");
    const handOver = (socket: Socket) => {
      for (const listener of listeners) listener.call(server, socket);
    };
    // The bytes after a header wait in the paused socket. TLS reads them itself as it wraps the socket (and a
    // flowing socket under TLS would drop them); Node's HTTP server only sees them once the socket flows.
    const flowAfterHeader = !(server instanceof TlsServer);
    server.on("connection", (socket: Socket) => {
      if (!this.#fromTrustedPeer(socket)) return handOver(socket);
      void readProxyHeader(socket, this.#deadlineMs).then((client) => {
        if (typeof client !== "string") {
          this.#refused(socket, client.reason);
          socket.destroy();
          return;
        }
        if (socket.destroyed) return;
        // `::ffff:192.0.2.7` from a v2 IPv6 header is the IPv4 client it maps, counted as one with it.
        vouchForClient(socket, normalizeAddress(client));
        handOver(socket);
        if (flowAfterHeader) socket.resume();
      });
    });
  }

  /**
   * A balancer that sends no header (or the wrong version) has every connection refused: that must show in
   * the log at warn level, not only as closed connections, yet a flood of refusals must not flood the log.
   */
  #refused(socket: Socket, reason: string): void {
    this.#refusedSinceWarning++;
    const now = Date.now();
    if (now - this.#lastWarningAt < REFUSAL_WARNING_EVERY_MS) {
      this.logger.debug({ remote: socket.remoteAddress, err: reason }, "PROXY protocol header refused");
      return;
    }
    this.logger.warn(
      { remote: socket.remoteAddress, err: reason, refused: this.#refusedSinceWarning },
      "connections from a trusted balancer address without a valid PROXY protocol header are closed: check that the balancer sends one (HAProxy: send-proxy-v2), or leave its address out of proxyProtocol.trustedFrom",
    );
    this.#lastWarningAt = now;
    this.#refusedSinceWarning = 0;
  }

  #fromTrustedPeer(socket: Socket): boolean {
    if (!this.#trusted) return false;
    const peer = normalizeAddress(socket.remoteAddress ?? "");
    const family = isIP(peer);
    return family !== 0 && this.#trusted.check(peer, family === 6 ? "ipv6" : "ipv4");
  }
}

/**
 * Reads the PROXY header off the start of `socket` within `deadlineMs`: the client's address (the peer's own
 * for a LOCAL or UNKNOWN header), or why there is none. The bytes after the header are put back, and the
 * socket left paused, for the TLS or HTTP layer to read as the connection's first.
 */
export function readProxyHeader(socket: Socket, deadlineMs: number): Promise<string | { reason: string }> {
  return new Promise((resolve) => {
    let received = Buffer.alloc(0);
    const finish = (result: string | { reason: string }, rest?: Buffer) => {
      clearTimeout(deadline);
      socket.pause();
      socket.off("data", onData).off("error", onEnd).off("end", onEnd).off("close", onEnd);
      if (rest?.length) socket.unshift(rest);
      resolve(result);
    };
    const onData = (chunk: Buffer) => {
      // The parser settles within MAX_PROXY_HEADER_BYTES, so no more than that plus one read is ever held.
      received = Buffer.concat([received, chunk]);
      const header = parseProxyHeader(received.subarray(0, MAX_PROXY_HEADER_BYTES));
      if (header.kind === "incomplete") return;
      if (header.kind === "invalid") return finish({ reason: header.reason });
      const client = header.kind === "proxied" ? header.source.address : (socket.remoteAddress ?? "");
      finish(client, received.subarray(header.length));
    };
    const onEnd = () => finish({ reason: "the connection ended before its PROXY header" });
    const deadline = setTimeout(() => finish({ reason: "no PROXY header in time" }), deadlineMs);
    socket.on("data", onData).on("error", onEnd).on("end", onEnd).on("close", onEnd);
  });
}
