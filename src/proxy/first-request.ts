// A connection must bring its first request's headers within timeouts.header of the TCP accept, its TLS
// handshake included. Node's headersTimeout alone does not do that on HTTPS: its clock starts once the
// handshake is done, it is looked at only every 30 s (the server's connectionsCheckingInterval), and a TLS
// connection that said nothing after its handshake was in fact held until the socket's idle timeout
// (timeouts.idle, 5 minutes by default) — a cheap way to fill the connection caps. Later requests on a
// kept-alive connection stay Node's business: keepAliveTimeout between requests, headersTimeout within one.
import type { Socket } from "node:net";
import { ClientConnection } from "./client-connection.js";

/**
 * Call on the TCP accept: unless a request's headers arrive within `ms` (0: no deadline), `expire` is handed
 * the connection — its TLS socket when the handshake is done (an answer can still be written), else the TCP one.
 */
export function awaitFirstRequest(connection: ClientConnection, ms: number, expire: (socket: Socket, secured: boolean) => void): void {
  if (ms <= 0) return;
  const { tcp } = connection;
  const timer = setTimeout(() => {
    connection.firstRequestTimer = undefined;
    const secured = connection.secured;
    if (secured && !secured.destroyed) expire(secured, true);
    else expire(tcp, false);
  }, ms);
  connection.firstRequestTimer = timer;
  tcp.once("close", () => {
    clearTimeout(timer);
    connection.firstRequestTimer = undefined;
  });
}

/** Call when a request's headers have arrived (`req.socket`: the TLS socket, or the TCP one of plain HTTP). */
export function requestArrived(socket: Socket): void {
  const connection = ClientConnection.of(socket);
  if (connection?.firstRequestTimer === undefined) return;
  clearTimeout(connection.firstRequestTimer);
  connection.firstRequestTimer = undefined;
}
