// Rate-limit overhead: small GETs per second through two gateway processes in front of the same
// registry, identical but for one thing — "on" counts every manifest GET in Redis (a limit so high it
// never refuses), "off" has no limits. Measured in the same run, interleaved, so machine noise hits both.
//
// For `npm run bench` (bench/run.ts) to call; also runnable alone:
//   node --import tsx bench/ratelimit.ts [seconds]     (starts its own registry)
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { OCI_MANIFEST } from "../test/helpers/oci.js";
import { startRedis } from "../test/helpers/redis.js";
import { startRegistry } from "../test/helpers/registry.js";
import { type Endpoint, expectStatus, send } from "./client.js";
import { manifestRps } from "./measure.js";
import { startFeatureGateway } from "./proxies.js";
import { median } from "./report.js";
import { PULL_REPO, PULL_TAG, ensureManifest } from "./seed.js";
import { processCpuSeconds } from "./measure.js";

export interface RateLimitBenchOptions {
  /** The registry to put behind both gateways, e.g. http://127.0.0.1:5000. Seeded if it lacks bench/pull:v1. */
  registryUrl: string;
  /** wrk duration of each sample. */
  seconds: number;
  /** Samples per configuration, interleaved off/on/on/off…; the median is reported. Default: 3. */
  rounds?: number;
  /** Where configs and data go; a temp dir (removed afterwards) when omitted. */
  workDir?: string;
}

export interface RateLimitBenchResult {
  /** Median requests/s with the Redis limiter counting every request. */
  on: number;
  /** Median requests/s without limits. */
  off: number;
  /** (off − on) / off × 100: the cost of the limiter. Target ≤ 10. */
  overheadPercent: number;
  /**
   * Median gateway CPU time per request, µs (user + system, from /proc): steadier than req/s on a
   * shared or small machine, where the registry and wrk set the pace. Redis's own CPU is not included.
   */
  cpuMicrosPerRequest: { on: number; off: number };
  samples: { on: number[]; off: number[] };
}

export async function benchRateLimitOverhead(options: RateLimitBenchOptions): Promise<RateLimitBenchResult> {
  const rounds = options.rounds ?? 3;
  const workDir = options.workDir ?? (await mkdtemp(join(tmpdir(), "rg-bench-ratelimit-")));
  const stops: Array<() => Promise<unknown>> = [];
  try {
    const registry = new URL(options.registryUrl);
    await ensureManifest({ name: "direct", origin: registry.origin, port: Number(registry.port) });

    const redis = await startRedis();
    stops.push(() => redis.stop());
    const off = await startLimitedGateway(workDir, "off", registry.origin, null);
    stops.push(() => off.gateway.process.stop());
    const on = await startLimitedGateway(workDir, "on", registry.origin, redis.url);
    stops.push(() => on.gateway.process.stop());
    const endpoints = { off: off.endpoint, on: on.endpoint };

    // The "on" gateway must really be counting, or the comparison says nothing.
    const probe = expectStatus(await send(endpoints.on, "GET", `/v2/${PULL_REPO}/manifests/${PULL_TAG}`, { headers: { accept: OCI_MANIFEST } }), 200, "manifest GET via the rate-limited gateway");
    if (!probe.headers["ratelimit-limit"]) throw new Error("the rate-limited gateway sent no RateLimit-Limit header: the limit is not in force");

    // Warm-up, not counted: JIT, connection pools, Redis script cache.
    for (const endpoint of [endpoints.off, endpoints.on]) await manifestRps(endpoint, workDir, 1);

    const samples = { on: [] as number[], off: [] as number[] };
    const cpu = { on: [] as number[], off: [] as number[] };
    const pids = { off: off.gateway.process.pid, on: on.gateway.process.pid };
    for (let round = 0; round < rounds; round++) {
      const order = round % 2 === 0 ? (["off", "on"] as const) : (["on", "off"] as const);
      for (const which of order) {
        const cpuBefore = (await processCpuSeconds(pids[which])) * 1000;
        const result = await manifestRps(endpoints[which], workDir, options.seconds);
        cpu[which].push(((await processCpuSeconds(pids[which])) * 1000 - cpuBefore) * 1000 / (result.requestsPerSecond * options.seconds));
        if (result.non2xx || result.socketErrors) {
          throw new Error(`wrk via the "${which}" gateway: ${result.non2xx} non-2xx responses, ${result.socketErrors} socket errors`);
        }
        samples[which].push(result.requestsPerSecond);
      }
    }
    const medianOn = median(samples.on)!;
    const medianOff = median(samples.off)!;
    return {
      on: medianOn,
      off: medianOff,
      overheadPercent: ((medianOff - medianOn) / medianOff) * 100,
      cpuMicrosPerRequest: { on: median(cpu.on)!, off: median(cpu.off)! },
      samples,
    };
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => {});
    if (!options.workDir) await rm(workDir, { recursive: true, force: true });
  }
}





/**
 * Identical configurations but for `redis` + `limits`. Access logs off in both: the row measures the
 * limiter, not stdout. A limit of 10^9 per second never refuses, so every request pays for a count.
 */
function startLimitedGateway(workDir: string, which: "on" | "off", backend: string, redisUrl: string | null) {
  return startFeatureGateway(workDir, `ratelimit-${which}`, backend, {
    topLevel: ["log: { level: info, access: false }", ...(redisUrl ? [`redis: { url: "${redisUrl}" }`] : [])],
    siteLines: redisUrl ? ["    limits: [{ name: bench, operations: [pull], rate: 1000000000, per: 1s, key: ip }]"] : [],
  });
}

// Standalone: its own registry, one result line.
if (import.meta.url === `file://${process.argv[1]}`) {
  const registry = await startRegistry();
  try {
    const result = await benchRateLimitOverhead({ registryUrl: registry.url, seconds: Number(process.argv[2] ?? 5), rounds: Number(process.argv[3] ?? 3) });
    console.log(
      `manifest GET req/s: limiter off ${result.off.toFixed(0)}, Redis limiter on ${result.on.toFixed(0)}, overhead ${result.overheadPercent.toFixed(1)}%;` +
        ` gateway CPU per request off ${result.cpuMicrosPerRequest.off.toFixed(0)} µs, on ${result.cpuMicrosPerRequest.on.toFixed(0)} µs` +
        ` (samples off ${result.samples.off.map((n) => n.toFixed(0)).join("/")}, on ${result.samples.on.map((n) => n.toFixed(0)).join("/")})`,
    );
  } finally {
    await registry.stop();
  }
}
