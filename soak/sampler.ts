// Every few seconds: the gateways' memory and descriptors (/proc), their connections to the registries (ss),
// Redis's clients (CLIENT LIST), and the traffic since the previous sample.
import { execFile } from "node:child_process";
import { readdir, readFile } from "node:fs/promises";
import { promisify } from "node:util";
import { Redis } from "ioredis";
import type { Fleet } from "./fleet.js";
import { SMALL_GET } from "./loadgen.js";
import { p99 } from "./percentile.js";
import type { Recorder } from "./recorder.js";
import type { Sample } from "./result.js";

const execFileAsync = promisify(execFile);

async function rssMb(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8").catch(() => "");
  const kib = /^VmRSS:\s+(\d+) kB$/m.exec(status);
  return kib ? Number(kib[1]) / 1024 : 0;
}

async function openFds(pid: number): Promise<number> {
  return (await readdir(`/proc/${pid}/fd`).catch(() => [])).length;
}

/** Established TCP connections whose peer is one of `ports` on loopback (the gateways' side of them). */
export async function connectionsTo(ports: readonly number[]): Promise<number> {
  const { stdout } = await execFileAsync("ss", ["-Htn", "state", "established"]);
  const wanted = new Set(ports.map((p) => `127.0.0.1:${p}`));
  return stdout.split("\n").filter((line) => wanted.has(line.trim().split(/\s+/)[3] ?? "")).length;
}

/** Clients Redis has connected, its own CLIENT LIST (this connection left out); null when Redis is down. */
export async function redisClients(port: number): Promise<number | null> {
  // No retries and no offline queue: a Redis that is down (a fault) answers null at once.
  const client = new Redis({ host: "127.0.0.1", port, lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => null, connectTimeout: 2000 });
  client.on("error", () => undefined);
  try {
    await client.connect();
    const list = (await client.client("LIST")) as string;
    return list.split("\n").filter((line) => line.startsWith("id=")).length - 1;
  } catch {
    return null;
  } finally {
    client.disconnect();
  }
}

export async function takeSample(fleet: Fleet, recorder: Recorder, previousT: number): Promise<Sample> {
  const pids = await fleet.gatewayPids();
  const [rss, fds, backendConnections, redisConnections] = await Promise.all([
    Promise.all(pids.map(rssMb)),
    Promise.all(pids.map(openFds)),
    connectionsTo(fleet.registryPorts()),
    redisClients(fleet.redis.port),
  ]);
  const t = recorder.now();
  const completed = recorder.completedBetween(previousT, t);
  const smallGets = recorder.latencies.filter((l) => l.t > previousT && l.t <= t).map((l) => l.ms);
  return {
    t: Math.round(t * 10) / 10,
    rssMb: Math.round(rss.reduce((a, b) => a + b, 0)),
    fds: fds.reduce((a, b) => a + b, 0),
    backendConnections,
    // While Redis is down it has no clients: 0, which the band check reads as "not back yet" only if it lasts.
    redisConnections: redisConnections ?? 0,
    requestRate: Math.round((completed.length / Math.max(0.001, t - previousT)) * 10) / 10,
    p99Ms: smallGets.length > 0 ? Math.round(p99(smallGets)! * 10) / 10 : null,
  };
}

/** Samples every `everyMs` until stopped. */
export function startSampler(fleet: Fleet, recorder: Recorder, samples: Sample[], everyMs: number): { stop(): Promise<void> } {
  let running = true;
  const loop = (async () => {
    let previous = recorder.now();
    while (running) {
      await new Promise((resolve) => setTimeout(resolve, everyMs));
      const sample = await takeSample(fleet, recorder, previous).catch(() => undefined);
      if (sample) {
        samples.push(sample);
        previous = sample.t;
      }
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
    },
  };
}
