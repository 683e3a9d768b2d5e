// Caps on client connections: globally and per client address (the socket peer, or the client a trusted
// balancer named in a PROXY header; never an HTTP header). A connection over a cap is not cut at once: it may finish its TLS handshake (bounded by the
// handshake timeout) and gets one clear registry error, then it is closed. It holds nothing else.
import type { Socket } from "node:net";
import { ClientConnection, type ConnectionRefusal } from "./client-connection.js";

export class ConnectionLimits {
  private total = 0;
  private readonly perAddress = new Map<string, number>();

  constructor(
    private max: number,
    private maxPerAddress: number,
  ) {}

  /** A reload may change the caps; connections already open keep their verdict. */
  configure(max: number, maxPerAddress: number): void {
    this.max = max;
    this.maxPerAddress = maxPerAddress;
  }

  get open(): number {
    return this.total;
  }

  /** Call on every accepted TCP connection, before TLS. */
  track(connection: ClientConnection): void {
    const socket = connection.tcp;
    const address = connection.clientAddress;
    const fromAddress = (this.perAddress.get(address) ?? 0) + 1;
    this.perAddress.set(address, fromAddress);
    this.total++;
    if (this.total > this.max) {
      connection.refusal = { kind: "unavailable", message: "the gateway has too many open connections; try again shortly" };
    } else if (fromAddress > this.maxPerAddress) {
      connection.refusal = { kind: "tooManyRequests", message: `too many open connections from ${address}; close some and try again` };
    }
    socket.once("close", () => {
      this.total--;
      const left = (this.perAddress.get(address) ?? 1) - 1;
      if (left > 0) this.perAddress.set(address, left);
      else this.perAddress.delete(address);
    });
  }

  /** Why a request on this connection must be refused, when its connection was over a cap. */
  static refusalFor(socket: Socket): ConnectionRefusal | undefined {
    return ClientConnection.of(socket)?.refusal;
  }
}
