// Loopback servers scripted per test, for the forwarding seams (round trip, dispatch): a backend that
// answers as told (HTTP, or raw TCP for answers no HTTP server sends) and records what it was sent, and a
// front server standing where the gateway's pipeline stands, handing each client request to the test.
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import net, { type AddressInfo } from "node:net";
import type { EdgeContext } from "../../src/proxy/headers.js";

export interface Received {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

export interface ScriptedBackend {
  url: URL;
  /** Requests received so far (complete ones). */
  received: Received[];
  close(): Promise<void>;
}

const closers: (() => Promise<void>)[] = [];

/** Closes every server the helpers started (call from after()/afterEach()). */
export async function closeScripted(): Promise<void> {
  await Promise.all(closers.splice(0).map((close) => close()));
}

async function listen(server: net.Server): Promise<URL> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
}

function closer(server: net.Server & { closeAllConnections?: () => void }): () => Promise<void> {
  const close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections?.();
      server.close(() => resolve());
    });
  closers.push(close);
  return close;
}

/** An HTTP backend: `answer` is called with each request once its body has been read. */
export async function httpBackend(answer: (req: Received, res: ServerResponse) => void): Promise<ScriptedBackend> {
  const received: Received[] = [];
  const server = http.createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const request = { method: req.method!, url: req.url!, headers: req.headers, body: Buffer.concat(chunks) };
    received.push(request);
    answer(request, res);
  });
  return { url: await listen(server), received, close: closer(server) };
}

/** A backend that answers at the TCP level: `onRequest` is called with the socket once a request head has come. */
export async function tcpBackend(onRequest: (socket: net.Socket) => void): Promise<ScriptedBackend> {
  const received: Received[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    let text = "";
    socket.on("error", () => {});
    socket.on("data", (chunk) => {
      text += chunk.toString("latin1");
      if (!text.includes("\r\n\r\n")) return;
      const [method = "", url = ""] = text.split(" ");
      received.push({ method, url, headers: {}, body: Buffer.alloc(0) });
      text = "";
      onRequest(socket);
    });
  });
  const close = closer(server);
  return {
    url: await listen(server),
    received,
    close: () => {
      for (const socket of sockets) socket.destroy();
      return close();
    },
  };
}

/** A URL on which nothing listens (connections are refused). */
export async function refusingUrl(): Promise<URL> {
  const server = net.createServer();
  const url = await listen(server);
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return url;
}

export const EDGE: EdgeContext = { requestId: "req-1", externalOrigin: "https://gw.test", authority: "gw.test", clientIp: "127.0.0.1" };

export interface ClientAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  /** The response ended before its announced length (the connection was cut). */
  cut: boolean;
}

/**
 * A front server calling `handle` with each client request (as the pipeline calls dispatch), and a client
 * that sends `method path` (with `body`, if any) to it.
 */
export async function front(handle: (req: IncomingMessage, res: ServerResponse) => Promise<void> | void) {
  const server = http.createServer((req, res) => void handle(req, res));
  const url = await listen(server);
  closer(server);
  return {
    url,
    send(method: string, path: string, body?: Buffer): Promise<ClientAnswer> {
      return new Promise((resolve, reject) => {
        const request = http.request(new URL(path, url), { method, agent: false, headers: body ? { "content-length": body.length } : {} }, (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (chunk: Buffer) => chunks.push(chunk));
          const done = (cut: boolean) => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks), cut });
          res.on("end", () => done(false));
          res.on("aborted", () => done(true));
          res.on("error", () => done(true));
        });
        request.on("error", reject);
        request.end(body);
      });
    },
  };
}
