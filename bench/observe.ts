// Observability overhead: small GETs per second through two gateway processes in front of the same
// registry, identical but for one thing — "on" counts every request in the metrics and writes an access-log
// line to stdout (the defaults), "off" has `metrics.enabled: false` and `log.access: false`, so the observe
// stage is skipped entirely. Measured in the same run, interleaved, so machine noise hits both.
//
// For `npm run bench` (bench/run.ts) to call; also runnable alone:
//   node --import tsx bench/observe.ts [seconds] [rounds]     (starts its own registry; needs `npm run build`)
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { GatewayProcess } from "../test/helpers/cli.js";
import { OCI_MANIFEST } from "../test/helpers/oci.js";
import { waitFor } from "../test/helpers/process.js";
import { startRegistry } from "../test/helpers/registry.js";
import { type Endpoint, expectStatus, send } from "./client.js";
import { manifestRps } from "./measure.js";
import { startFeatureGateway } from "./proxies.js";
import { median } from "./report.js";
import { PULL_REPO, PULL_TAG, ensureManifest } from "./seed.js";
import { processCpuSeconds } from "./measure.js";

export interface ObserveBenchOptions {
  /** The registry to put behind both gateways, e.g. http://127.0.0.1:5000. Seeded if it lacks bench/pull:v1. */
  registryUrl: string;
  /** wrk duration of each sample, in seconds. */
  wrkSeconds: number;
  /** Samples per configuration, interleaved off/on, on/off, …; the median is reported. Default: 3. */
  rounds?: number;
  /** Where configs and data go; a temp dir (removed afterwards) when omitted. */
  workDir?: string;
}

export interface ObserveBenchResult {
  /** Median requests/s with metrics and the access log on (the defaults). */
  on: number;
  /** Median requests/s with both off (no observe stage). */
  off: number;
  /** (off − on) / off × 100: the cost of observing. Target ≤ 5. */
  overheadPercent: number;
  samples: { on: number[]; off: number[] };
  /**
   * Median CPU time the gateway process spent per request (user + system, from /proc/PID/stat). Far less
   * sensitive than req/s to other load on a shared machine, so it shows the cost even when req/s is noise.
   */
  cpuMicrosPerRequest: { on: number; off: number };
  cpuSamples: { on: number[]; off: number[] };
}

type Which = "on" | "off";

export async function benchObserveOverhead(options: ObserveBenchOptions): Promise<ObserveBenchResult> {
  const rounds = options.rounds ?? 3;
  const workDir = options.workDir ?? (await mkdtemp(join(tmpdir(), "rg-bench-observe-")));
  const stops: Array<() => Promise<unknown>> = [];
  try {
    const registry = new URL(options.registryUrl);
    await ensureManifest({ name: "direct", origin: registry.origin, port: Number(registry.port) });

    const quiet = await startObservedGateway(workDir, "off", registry.origin);
    stops.push(() => quiet.gateway.process.stop());
    const observed = await startObservedGateway(workDir, "on", registry.origin);
    stops.push(() => observed.gateway.process.stop());
    const gateways: Record<Which, GatewayProcess> = { off: quiet.gateway, on: observed.gateway };
    const endpoints: Record<Which, Endpoint> = { off: quiet.endpoint, on: observed.endpoint };
    await checkObserving(gateways, endpoints);

    // Warm-up, not counted: JIT, connection pools, label caches.
    for (const which of ["off", "on"] as const) await manifestRps(endpoints[which], workDir, 1);

    const samples = { on: [] as number[], off: [] as number[] };
    const cpuSamples = { on: [] as number[], off: [] as number[] };
    for (let round = 0; round < rounds; round++) {
      const order = round % 2 === 0 ? (["off", "on"] as const) : (["on", "off"] as const);
      for (const which of order) {
        const cpuBefore = await processCpuSeconds(gateways[which].process.pid);
        const result = await manifestRps(endpoints[which], workDir, options.wrkSeconds);
        const cpu = (await processCpuSeconds(gateways[which].process.pid)) - cpuBefore;
        if (result.non2xx || result.socketErrors) {
          throw new Error(`wrk via the "${which}" gateway: ${result.non2xx} non-2xx responses, ${result.socketErrors} socket errors`);
        }
        samples[which].push(result.requestsPerSecond);
        cpuSamples[which].push((cpu * 1e6) / (result.requestsPerSecond * options.wrkSeconds));
      }
    }
    const on = median(samples.on)!;
    const off = median(samples.off)!;
    return {
      on,
      off,
      overheadPercent: ((off - on) / off) * 100,
      samples,
      cpuMicrosPerRequest: { on: median(cpuSamples.on)!, off: median(cpuSamples.off)! },
      cpuSamples,
    };
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => {});
    if (!options.workDir) await rm(workDir, { recursive: true, force: true });
  }
}





/** The comparison says nothing unless "on" really counts and logs and "off" really does neither. */
async function checkObserving(gateways: Record<Which, GatewayProcess>, endpoints: Record<Which, Endpoint>): Promise<void> {
  for (const which of ["on", "off"] as const) {
    const reply = await send(endpoints[which], "GET", `/v2/${PULL_REPO}/manifests/${PULL_TAG}`, {
      headers: { accept: OCI_MANIFEST, "x-request-id": `bench-observe-${which}` },
    });
    expectStatus(reply, 200, `manifest GET via the "${which}" gateway`);
  }
  await waitFor(() => gateways.on.logs().some((line) => line.msg === "request" && line.requestId === "bench-observe-on"), {
    timeoutMs: 5000,
    what: 'the "on" gateway\'s access-log line',
  });
  const scraped = await fetch(`http://127.0.0.1:${gateways.on.adminPort}/metrics`).then((r) => r.text());
  if (!/^registry_gateway_requests_total\{[^}]*operation="manifest"[^}]*\} [1-9]/m.test(scraped)) {
    throw new Error('the "on" gateway did not count the manifest GET in /metrics');
  }
  if (gateways.off.logs().some((line) => line.msg === "request")) throw new Error('the "off" gateway wrote an access-log line');
  const off = await fetch(`http://127.0.0.1:${gateways.off.adminPort}/metrics`);
  await off.arrayBuffer();
  if (off.status !== 404) throw new Error(`the "off" gateway's /metrics answered ${off.status}, expected 404 (metrics disabled)`);
}

// Standalone: its own registry, one result line.
if (import.meta.url === `file://${process.argv[1]}`) {
  const registry = await startRegistry();
  try {
    const result = await benchObserveOverhead({
      registryUrl: registry.url,
      wrkSeconds: Number(process.argv[2] ?? 5),
      rounds: Number(process.argv[3] ?? 3),
    });
    const list = (values: number[]) => values.map((n) => n.toFixed(0)).join("/");
    const cpu = result.cpuMicrosPerRequest;
    console.log(
      `manifest GET req/s: observing off ${result.off.toFixed(0)}, metrics + access log on ${result.on.toFixed(0)}, ` +
        `overhead ${result.overheadPercent.toFixed(1)}% (samples off ${list(result.samples.off)}, on ${list(result.samples.on)})\n` +
        `gateway CPU per request: off ${cpu.off.toFixed(0)} µs, on ${cpu.on.toFixed(0)} µs, +${(((cpu.on - cpu.off) / cpu.off) * 100).toFixed(1)}% ` +
        `(samples off ${list(result.cpuSamples.off)}, on ${list(result.cpuSamples.on)})`,
    );
  } finally {
    await registry.stop();
  }
}

/** Identical configurations but for `metrics.enabled` and `log.access`; level info in both. */
function startObservedGateway(workDir: string, which: Which, backend: string) {
  const observing = which === "on";
  return startFeatureGateway(workDir, `observe-${which}`, backend, {
    topLevel: [`log: { level: info, access: ${observing} }`, `metrics: { enabled: ${observing} }`],
  });
}
