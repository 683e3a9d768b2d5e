// Clients that ask for a download and then read nothing: the slow-read flood. Each is a TLS connection of its
// own from one of several local addresses (127.0.0.2, …: the gateway's caps are per address), sends one GET,
// reads the response head, and stops reading: the gateway's writes back up into the kernel and then into
// the gateway. Used by the integration test and by the benchmark row.
import { readFile } from "node:fs/promises";
import tls, { type TLSSocket } from "node:tls";

export interface StallOptions {
  port: number;
  /** SNI and Host. */
  servername: string;
  ca: string | Buffer;
  /** The download's target, e.g. /v2/repo/blobs/sha256:… */
  path: string;
  /** Local addresses the connections come from, used in turn. */
  addresses: readonly string[];
  count: number;
  /** Handshakes in flight at once (the listen backlog is finite). Default 100. */
  parallel?: number;
}

export interface StalledClient {
  socket: TLSSocket;
  localAddress: string;
  localPort: number;
  /** The answer's status; 0 when the connection failed or closed before a head. */
  status: number;
  /** The answer's head, as received. */
  head: string;
  /** When the head arrived (performance.now()). */
  answeredAt: number;
}

/** Opens `count` connections, each asking for `path` and reading no more than the response head once it has it. */
export async function stallDownloads(options: StallOptions): Promise<StalledClient[]> {
  const clients: StalledClient[] = [];
  let next = 0;
  const opener = async () => {
    for (let i = next++; i < options.count; i = next++) clients.push(await stallOne(options, options.addresses[i % options.addresses.length]!));
  };
  await Promise.all(Array.from({ length: options.parallel ?? 100 }, opener));
  return clients;
}

function stallOne(options: StallOptions, localAddress: string): Promise<StalledClient> {
  return new Promise((resolve) => {
    // localAddress reaches net.connect (tls.connect's types do not list it).
    const socket = tls.connect({ host: "127.0.0.1", port: options.port, servername: options.servername, ca: options.ca, ...{ localAddress } });
    const client: StalledClient = { socket, localAddress, localPort: 0, status: 0, head: "", answeredAt: 0 };
    let bytes = Buffer.alloc(0);
    let settled = false;
    const settle = () => {
      if (settled) return;
      settled = true;
      socket.off("data", onData);
      resolve(client);
    };
    const onData = (data: Buffer) => {
      bytes = Buffer.concat([bytes, data]);
      const end = bytes.indexOf("\r\n\r\n");
      if (end < 0) return;
      client.head = bytes.toString("latin1", 0, end);
      client.status = Number(client.head.split(" ")[1]);
      client.answeredAt = performance.now();
      // From here on nothing is read.
      socket.pause();
      settle();
    };
    socket.on("error", () => settle());
    socket.once("close", () => settle());
    socket.once("secureConnect", () => {
      client.localPort = socket.localPort ?? 0;
      socket.on("data", onData);
      socket.write(`GET ${options.path} HTTP/1.1\r\nHost: ${options.servername}:${options.port}\r\n\r\n`);
    });
  });
}

/**
 * Reads what the client left unread, and resolves once the connection is closed (with the response body bytes
 * it got), or with `open: true` if it is still open after `timeoutMs` of reading.
 */
export function drain(client: StalledClient, timeoutMs: number): Promise<{ open: boolean; bytes: number }> {
  return new Promise((resolve) => {
    const { socket } = client;
    let bytes = 0;
    const timer = setTimeout(() => resolve({ open: true, bytes }), timeoutMs);
    socket.on("data", (data: Buffer) => (bytes += data.length));
    const closed = () => {
      clearTimeout(timer);
      resolve({ open: false, bytes });
    };
    if (socket.destroyed) closed();
    else socket.once("close", closed);
    socket.resume();
  });
}

/** A process's resident memory, MiB (Linux). */
export async function rssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const kib = /^VmRSS:\s+(\d+) kB$/m.exec(status);
  if (!kib) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(kib[1]) / 1024;
}

/** Samples rssMiB(pid) every `everyMs` until stopped; stop() resolves with the highest reading. */
export function sampleRss(pid: number, everyMs = 100): { stop(): Promise<number> } {
  let peak = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      peak = Math.max(peak, await rssMiB(pid).catch(() => 0));
      await new Promise((resolve) => setTimeout(resolve, everyMs));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return peak;
    },
  };
}
