import { mkdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
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
 * Holds the fixed ports the shipped configurations listen on (5443 and 9091) for this process until the
 * returned release is called. Test files that serve those files as written take it for their whole run,
 * so they can run beside any other file, one after another among themselves. The hold is a directory
 * naming its holder's pid: a holder that died without releasing it is recognised and replaced.
 */
export async function holdShippedPorts({ timeoutMs = 300_000 } = {}): Promise<() => Promise<void>> {
  const lock = join(tmpdir(), "registry-gateway-tests-shipped-ports.lock");
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await mkdir(lock);
      await writeFile(join(lock, "pid"), String(process.pid));
      return () => rm(lock, { recursive: true, force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
    const holder = Number(await readFile(join(lock, "pid"), "utf8").catch(() => ""));
    // No pid yet: the holder is between mkdir and writing it, unless that was long ago (or it just let go).
    const made = await stat(lock).catch(() => null);
    const stale = holder > 0 ? !alive(holder) : made !== null && Date.now() - made.mtimeMs > 5000;
    if (stale) await rm(lock, { recursive: true, force: true });
    else if (Date.now() > deadline) throw new Error(`the shipped configurations' ports stayed held by pid ${holder} for ${timeoutMs} ms`);
    else await sleep(100);
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}
