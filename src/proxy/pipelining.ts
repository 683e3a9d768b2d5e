// Pipelined requests (several requests sent on one connection before the first answer). Node's server hands
// each to the handler as soon as it is parsed, so without this the gateway would run them concurrently —
// a DELETE could reach the backend before the GET sent ahead of it — and would still forward a request
// pipelined behind one it refused with `Connection: close` (a request nobody gets an answer to, and the
// very shape of a desync attack). Here requests on one connection take turns: each starts once the
// previous response is over, and none starts after a response that closes the connection.
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { ClientConnection } from "./client-connection.js";

/**
 * No client needs more requests than this queued on one connection (docker, podman and skopeo do not
 * pipeline at all); beyond it the connection is closed, so queued requests cannot pile up in memory.
 */
export const MAX_PIPELINED = 16;

/** Resolves true when the request may proceed, false when its connection is closing (drop it). */
export async function awaitTurn(req: IncomingMessage, res: ServerResponse): Promise<boolean> {
  const socket = req.socket;
  const connection = ClientConnection.of(socket);
  // Turns are kept per connection: a request on a socket no listener accepted cannot take one safely.
  if (!connection) return false;
  const previous = connection.lastTurn;
  // Over when the response is, or when the connection goes (a response still queued behind another then
  // never gets a socket, nor a close event of its own).
  const over = new Promise<void>((resolve) => {
    // The socket's listener goes with the response: a keep-alive connection serves thousands of requests.
    const done = () => {
      res.off("close", done);
      socket.off("close", done);
      resolve();
    };
    res.once("close", done);
    socket.once("close", done);
  });
  connection.lastTurn = { req, res, over };
  if (previous) {
    if (connection.waitingTurns >= MAX_PIPELINED) return false;
    connection.waitingTurns++;
    await previous.over;
    connection.waitingTurns--;
    if (closesConnection(previous.res)) return false;
  }
  return !socket.destroyed;
}

/**
 * True while a request on this connection is unfinished: a parse error on the socket then belongs to that
 * request's body (already answered or being answered), and must not get an answer of its own.
 */
export function requestInProgress(socket: Socket): boolean {
  const turn = ClientConnection.of(socket)?.lastTurn;
  return turn !== undefined && (!turn.req.complete || !turn.res.writableFinished);
}

/**
 * Ends a request that will not be served because its connection is closing. Node never gives a response
 * queued behind a closing one a socket, so it would never close either: close it here, so whatever counts
 * requests in flight (drain, metrics) sees it end.
 */
export function abandon(req: IncomingMessage, res: ServerResponse): void {
  req.socket.destroy();
  if (!res.socket) res.emit("close");
}

function closesConnection(res: ServerResponse): boolean {
  const connection = res.getHeader("connection");
  return !res.shouldKeepAlive || (typeof connection === "string" && connection.toLowerCase() === "close");
}
