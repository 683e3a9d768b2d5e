// A connection must bring its first request's headers within timeouts.header of the TCP accept, its TLS
// handshake included. Node's headersTimeout alone does not do that on HTTPS: its clock starts once the
// handshake is done, it is looked at only every 30 s (the server's connectionsCheckingInterval), and a TLS
// connection that said nothing after its handshake was in fact held until the socket's idle timeout
// (timeouts.idle, 5 minutes by default) — a cheap way to fill the connection caps. Later requests on a
// kept-alive connection stay Node's business: keepAliveTimeout between requests, headersTimeout within one.
import type { Socket } from "node:net";
import type { TLSSocket } from "node:tls";

interface Deadline {
  timer: NodeJS.Timeout;
  /** The TLS socket over this TCP connection, once its handshake is done. */
  secured?: TLSSocket;
}

/** By TCP socket, until the first request arrives or the connection closes. */
const deadlines = new WeakMap<Socket, Deadline>();

/**
 * Call on the TCP accept: unless a request's headers arrive within `ms` (0: no deadline), `expire` is handed
 * the connection — its TLS socket when the handshake is done (an answer can still be written), else the TCP one.
 */
export function awaitFirstRequest(tcp: Socket, ms: number, expire: (connection: Socket, secured: boolean) => void): void {
  if (ms <= 0) return;
  const deadline: Deadline = {
    timer: setTimeout(() => {
      deadlines.delete(tcp);
      if (deadline.secured && !deadline.secured.destroyed) expire(deadline.secured, true);
      else expire(tcp, false);
    }, ms),
  };
  deadlines.set(tcp, deadline);
  tcp.once("close", () => {
    clearTimeout(deadline.timer);
    deadlines.delete(tcp);
  });
}

/** Call on `secureConnection`: an expired deadline then answers on the TLS socket. */
export function handshakeDone(secured: TLSSocket): void {
  const deadline = deadlines.get(tcpOf(secured));
  if (deadline) deadline.secured = secured;
}

/** Call when a request's headers have arrived (`req.socket`: the TLS socket, or the TCP one of plain HTTP). */
export function requestArrived(socket: Socket): void {
  const tcp = tcpOf(socket);
  const deadline = deadlines.get(tcp);
  if (!deadline) return;
  clearTimeout(deadline.timer);
  deadlines.delete(tcp);
}

/** A server-side TLS socket's `_parent` is the TCP socket the `connection` event saw. */
function tcpOf(socket: Socket): Socket {
  return deadlines.has(socket) ? socket : ((socket as Socket & { _parent?: Socket })._parent ?? socket);
}
