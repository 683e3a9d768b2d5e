// A real redis-server for tests: no persistence, loopback only, an ephemeral port unless
// one is given. stop() + start() brings it back on the same port, empty, as after a crash without disk.
import { connect } from "node:net";
import { freePort } from "./ports.js";
import { startProcess, waitFor, type ManagedProcess } from "./process.js";

export interface RedisServer {
  port: number;
  /** redis://127.0.0.1:PORT/0 */
  url: string;
  readonly process: ManagedProcess | undefined;
  /** SIGKILL: a crash, not a shutdown (no client is told). */
  kill(): Promise<void>;
  /** SIGTERM and wait. */
  stop(): Promise<void>;
  /** Starts again on the same port (after stop or kill). */
  start(): Promise<void>;
}

const BIND_ATTEMPTS = 3;

export async function startRedis(options: { port?: number } = {}): Promise<RedisServer> {
  for (let attempt = 1; ; attempt++) {
    const port = options.port ?? (await freePort());
    const server = redisOn(port);
    try {
      await server.start();
      return server;
    } catch (err) {
      // freePort() releases the port before redis binds it; another process may have won the race.
      if (options.port !== undefined || attempt >= BIND_ATTEMPTS || !/address already in use/i.test(String(err))) throw err;
    }
  }
}

function redisOn(port: number): RedisServer {
  let child: ManagedProcess | undefined;
  const server: RedisServer = {
    port,
    url: `redis://127.0.0.1:${port}/0`,
    get process() {
      return child;
    },
    async start() {
      if (child && !child.exitStatus) return;
      const started = startProcess(
        "redis-server",
        ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--protected-mode", "no"],
        { name: `redis-server :${port}` },
      );
      child = started;
      try {
        await waitFor(() => ping(port), {
          timeoutMs: 10_000,
          intervalMs: 25,
          what: `redis-server on 127.0.0.1:${port}`,
          giveUpIf: () => (started.exitStatus ? `process exited (${JSON.stringify(started.exitStatus)})` : undefined),
        });
      } catch (err) {
        await started.stop(1000);
        throw new Error(`${(err as Error).message}\n--- redis output ---\n${started.output()}`);
      }
    },
    async kill() {
      await child?.stop(0);
    },
    async stop() {
      await child?.stop(5000);
    },
  };
  return server;
}

/** True when something on the port answers PING with +PONG (RESP, no client library needed). */
export function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: "127.0.0.1", port });
    let reply = "";
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once("error", () => done(false));
    socket.once("connect", () => socket.write("PING\r\n"));
    socket.on("data", (chunk: Buffer) => {
      reply += chunk.toString();
      if (reply.includes("\r\n")) done(reply.startsWith("+PONG"));
    });
  });
}
