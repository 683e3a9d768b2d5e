// Slow-read flood: what clients that ask for a blob and then read nothing cost the gateway and everyone else.
// One gateway process (workers: 1, defaults otherwise: timeouts.send 60 s, limits.downloadsPerClient 32); a
// 16 MiB blob; 1000 TLS connections from 127.0.0.2–5 each GET it and stop reading after the response head.
// The row is a normal pull's time (the blob, by curl from 127.0.0.1) during the flood over its time when quiet
// (target ≤ 2×: at least half the speed); the note has the gateway's RSS growth (target ≤ 64 MiB), how many
// downloads were admitted or refused, and the most backend connections seen at once.
//
// For `npm run bench` (bench/run.ts) to call; also runnable alone (needs `npm run build`):
//   node --import tsx bench/slow-read.ts [connections]     (starts its own registry)
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { run } from "../test/helpers/process.js";
import { startRegistry } from "../test/helpers/registry.js";
import { pushBlob } from "../test/helpers/seed.js";
import { rssMiB, sampleRss, stallDownloads } from "../test/helpers/slow-readers.js";
import { type Endpoint, MiB, SITE_HOST } from "./client.js";
import { MB, pullMBps } from "./measure.js";
import { startFeatureGateway } from "./proxies.js";
import { PULL_REPO } from "./seed.js";

export interface SlowReadBenchOptions {
  /** The registry behind the gateway, e.g. http://127.0.0.1:5000. A 16 MiB blob is pushed to it. */
  registryUrl: string;
  /** Stalled connections. Default 1000. */
  connections?: number;
  /** Normal pulls timed in each phase. Default 5. */
  pulls?: number;
  workDir?: string;
}

export interface SlowReadBenchResult {
  /** Slowest normal pull (≈ p95 of a handful), ms (from curl's average speed over the transfer). */
  quietMs: number;
  floodMs: number;
  /** Best normal pull speed, MB/s. */
  quietMBps: number;
  floodMBps: number;
  /** Gateway RSS before the flood and its peak during it, MiB. */
  rssBefore: number;
  rssPeak: number;
  /** Flood answers by HTTP status (200: a stalled download; 429: over limits.downloadsPerClient). */
  statuses: Record<string, number>;
  /** Most established gateway → registry connections seen at once. */
  backendPeak: number;
  /** Time to open every flood connection and get its answer, s. */
  floodSeconds: number;
}

const BLOB_BYTES = 16 * MiB;
const ADDRESSES = ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"];

export async function benchSlowRead(options: SlowReadBenchOptions): Promise<SlowReadBenchResult> {
  const connections = options.connections ?? 1000;
  const pulls = options.pulls ?? 5;
  const workDir = options.workDir ?? (await mkdtemp(join(tmpdir(), "rg-bench-slow-read-")));
  const registry = new URL(options.registryUrl);
  const stops: Array<() => Promise<unknown>> = [];
  try {
    const digest = await pushBlob(registry.origin, PULL_REPO, randomBytes(BLOB_BYTES));
    const path = `/v2/${PULL_REPO}/blobs/${digest}`;
    const { gateway, endpoint } = await startFeatureGateway(workDir, "slow-read", registry.origin, { topLevel: ["log: { level: info, access: false }"] });
    stops.push(() => gateway.process.stop());
    const pid = gateway.process.pid;

    // Warm-up, not counted: JIT, the relay's buffers, a pooled backend connection.
    await pullMBps(endpoint, digest, BLOB_BYTES);
    const quiet = await pullSpeeds(endpoint, digest, pulls);
    const rssBefore = await rssMiB(pid);
    const rss = sampleRss(pid);
    let backendPeak = 0;
    let sampling = true;
    const backendSampler = (async () => {
      while (sampling) {
        const listed = await run("ss", ["-Htn", "state", "established", `( dport = :${registry.port} )`]);
        backendPeak = Math.max(backendPeak, listed.stdout.split("\n").filter((line) => line.trim() !== "").length);
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    })();
    const started = performance.now();
    const clients = await stallDownloads({ port: endpoint.port, servername: SITE_HOST, ca: endpoint.ca!, path, addresses: ADDRESSES, count: connections, parallel: 250 });
    stops.push(async () => {
      for (const client of clients) client.socket.destroy();
    });
    const floodSeconds = (performance.now() - started) / 1000;
    const flood = await pullSpeeds(endpoint, digest, pulls);
    sampling = false;
    await backendSampler;
    const rssPeak = await rss.stop();
    const statuses: Record<string, number> = {};
    for (const client of clients) statuses[client.status] = (statuses[client.status] ?? 0) + 1;
    return {
      quietMs: (BLOB_BYTES / MB / Math.min(...quiet)) * 1000,
      floodMs: (BLOB_BYTES / MB / Math.min(...flood)) * 1000,
      quietMBps: Math.max(...quiet),
      floodMBps: Math.max(...flood),
      rssBefore,
      rssPeak,
      statuses,
      backendPeak,
      floodSeconds,
    };
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => {});
    if (!options.workDir) await rm(workDir, { recursive: true, force: true });
  }
}

/** `count` curl pulls one after the other (curl: a process of its own, never slowed by the flood's sockets in this one), MB/s each. */
async function pullSpeeds(endpoint: Endpoint, digest: string, count: number): Promise<number[]> {
  const speeds: number[] = [];
  for (let i = 0; i < count; i++) speeds.push(await pullMBps(endpoint, digest, BLOB_BYTES));
  return speeds;
}

export function describeSlowRead(result: SlowReadBenchResult): string {
  return (
    `normal 16 MiB pull during a slow-read flood: slowest ${result.quietMs.toFixed(0)} → ${result.floodMs.toFixed(0)} ms, best ${result.quietMBps.toFixed(0)} → ${result.floodMBps.toFixed(0)} MB/s; ` +
    `gateway RSS ${result.rssBefore.toFixed(0)} → ${result.rssPeak.toFixed(0)} MiB (+${(result.rssPeak - result.rssBefore).toFixed(0)}, target ≤ 64); ` +
    `flood answers ${JSON.stringify(result.statuses)} in ${result.floodSeconds.toFixed(1)} s; backend connections at most ${result.backendPeak}`
  );
}

// Standalone: its own registry, one result line.
if (import.meta.url === `file://${process.argv[1]}`) {
  const registry = await startRegistry();
  try {
    console.log(describeSlowRead(await benchSlowRead({ registryUrl: registry.url, connections: Number(process.argv[2] ?? 1000) })));
  } finally {
    await registry.stop();
  }
}
