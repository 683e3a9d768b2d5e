// One client connection, made by the listener when it accepts the TCP connection. What the gateway keeps
// per connection lives on it — the verdict of the connection caps (connections.ts), the first request's
// deadline (first-request.ts), the turns pipelined requests take (pipelining.ts) — and goes away with it.
// The request path finds it from `req.socket`: the listener sets one symbol-keyed property on the TCP
// socket at the accept, and on the TLS socket over it once the handshake is done.
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Socket } from "node:net";
import type { Server as TlsServer, TLSSocket } from "node:tls";
import type { GatewayErrorKind } from "../registry/errors.js";

/** Why every request on a connection over a cap is refused. */
export interface ConnectionRefusal {
  kind: Extract<GatewayErrorKind, "unavailable" | "tooManyRequests">;
  message: string;
}

/** A request's turn on its connection: over when its response is, or when the connection goes. */
export interface Turn {
  req: IncomingMessage;
  res: ServerResponse;
  over: Promise<void>;
}

/** The property a listener's sockets carry their connection in. Set only here. */
const CLIENT_CONNECTION = Symbol("registry-gateway client connection");

/** The client address a trusted balancer vouched for in a PROXY header (proxy-protocol-gate.ts). */
const VOUCHED_CLIENT = Symbol("registry-gateway vouched client address");

type CarrierSocket = Socket & { [CLIENT_CONNECTION]?: ClientConnection; [VOUCHED_CLIENT]?: string };

/** Called by the PROXY protocol gate on the TCP socket, before its connection is made. */
export function vouchForClient(tcp: Socket, address: string): void {
  (tcp as CarrierSocket)[VOUCHED_CLIENT] = address;
}

export class ClientConnection {
  /** Set at the accept when the connection is over a cap: each request on it gets this answer, then it closes. */
  refusal: ConnectionRefusal | undefined;
  /** Running from the accept until the first request's headers arrive. */
  firstRequestTimer: NodeJS.Timeout | undefined;
  /** The request that took the last turn on this connection. */
  lastTurn: Turn | undefined;
  /** Requests waiting behind the one in progress. */
  waitingTurns = 0;
  /**
   * The client's address, for everything keyed by client: the connection caps, the request's client address
   * (and so rate limits, login throttles, logs). The TCP peer, unless a trusted balancer named the client
   * in a PROXY header. The only place it is decided.
   */
  readonly clientAddress: string;
  #secured: TLSSocket | undefined;

  constructor(readonly tcp: Socket) {
    (tcp as CarrierSocket)[CLIENT_CONNECTION] = this;
    this.clientAddress = (tcp as CarrierSocket)[VOUCHED_CLIENT] ?? tcp.remoteAddress ?? "";
  }

  /** The connection a socket of a listener belongs to: its TCP socket, or the TLS socket over it. */
  static of(socket: Socket): ClientConnection | undefined {
    return (socket as CarrierSocket)[CLIENT_CONNECTION];
  }

  /** The TLS socket over the TCP one, once its handshake is done. */
  get secured(): TLSSocket | undefined {
    return this.#secured;
  }

  /** On `secureConnection`: requests, which arrive on the TLS socket, find this connection from it. */
  secure(tls: TLSSocket): void {
    this.#secured = tls;
    (tls as CarrierSocket)[CLIENT_CONNECTION] = this;
  }
}

/**
 * The connections one TLS listener accepted that are still open. Node gives a TLS socket no public link to
 * the TCP socket under it, and the TLS server hands over only the TLS socket (at `secureConnection`, or at
 * `tlsClientError` for a handshake that failed). Both sockets report the same addresses and ports, and no
 * two open TCP connections share all four: that finds the connection.
 */
export class AcceptedConnections {
  readonly #open = new Map<string, ClientConnection>();

  /** Call on the TCP accept. */
  accept(tcp: Socket): ClientConnection {
    const connection = new ClientConnection(tcp);
    const key = addressesOf(tcp);
    // Without addresses (the client reset the connection already) no TLS socket can be matched to it.
    if (key !== undefined) {
      this.#open.set(key, connection);
      tcp.once("close", () => {
        if (this.#open.get(key) === connection) this.#open.delete(key);
      });
    }
    return connection;
  }

  /** The connection under a TLS socket the listener's TLS server made, while its TCP socket is open. */
  under(tls: Socket): ClientConnection | undefined {
    const key = addressesOf(tls);
    return key === undefined ? undefined : this.#open.get(key);
  }

  get size(): number {
    return this.#open.size;
  }
}

function addressesOf(socket: Socket): string | undefined {
  const { remoteAddress, remotePort, localAddress, localPort } = socket;
  if (remoteAddress === undefined || remotePort === undefined || localAddress === undefined || localPort === undefined) return undefined;
  return `${remoteAddress} ${remotePort} ${localAddress} ${localPort}`;
}

/**
 * Gives every TCP connection `server` accepts its ClientConnection (handed to `onAccept`), and the TLS socket
 * over it the same one, before the HTTP layer takes that socket: the first request already finds it. Its caps
 * verdict and turns live on the connection, so a TLS socket without one is not served (fail closed).
 */
export function trackConnections(server: TlsServer, onAccept: (connection: ClientConnection) => void): AcceptedConnections {
  const accepted = new AcceptedConnections();
  server.on("connection", (socket: Socket) => onAccept(accepted.accept(socket)));
  server.prependListener("secureConnection", (tls: TLSSocket) => {
    const connection = accepted.under(tls);
    if (connection) connection.secure(tls);
    else tls.destroy();
  });
  return accepted;
}
