import { connect, createServer } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";

/**
 * Asks the kernel for an unused TCP port by binding to port 0.
 * The port is released before returning, so another process could grab it in
 * between; callers that start servers should retry on "address already in use".
 */
export function freePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once("error", reject);
    server.listen({ host, port: 0, exclusive: true }, () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close((err) => (err ? reject(err) : port > 0 ? resolve(port) : reject(new Error("no port assigned"))));
    });
  });
}

/** True when something accepts a TCP connection on 127.0.0.1:port (the connection is closed at once). */
export function isListening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: "127.0.0.1", port });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

/**
 * Holds the fixed ports the shipped configurations and their examples use (5443 and 9091, and the backends
 * 5001 and 5002 the example files name) for this process until the returned release is called. Test files
 * that serve those files as written take it for their whole run, so they can run beside any other file, one
 * after another among themselves. The hold is a listening TCP port that nothing else uses: only one process
 * can have it, and the kernel lets go of it when its holder dies, however it dies. (Not an abstract unix
 * socket: Node 20 and Node 26 name the same one differently, so a test on each held it at once.)
 */
const SHIPPED_PORTS_HOLD = 5442;

export async function holdShippedPorts({ timeoutMs = 300_000 } = {}): Promise<() => Promise<void>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const server = createServer();
    const held = await new Promise<boolean>((resolve, reject) => {
      server.once("error", (err: NodeJS.ErrnoException) => (err.code === "EADDRINUSE" ? resolve(false) : reject(err)));
      server.listen({ host: "127.0.0.1", port: SHIPPED_PORTS_HOLD, exclusive: true }, () => resolve(true));
    });
    if (held) {
      // The hold alone must not keep a test process alive.
      server.unref();
      return () => new Promise<void>((resolve) => server.close(() => resolve()));
    }
    if (Date.now() > deadline) throw new Error(`the shipped configurations' ports stayed held by another test process for ${timeoutMs} ms`);
    await sleep(100);
  }
}
