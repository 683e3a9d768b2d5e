// Observability overhead (issue #5): small GETs per second through two gateway processes in front of the same
// registry, identical but for one thing — "on" counts every request in the metrics and writes an access-log
// line to stdout (the defaults), "off" has `metrics.enabled: false` and `log.access: false`, so the observe
// stage is skipped entirely. Measured in the same run, interleaved, so machine noise hits both.
//
// For `npm run bench` (bench/run.ts) to call; also runnable alone:
//   node --import tsx bench/observe.ts [seconds] [rounds]     (starts its own registry; needs `npm run build`)
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startGatewayProcess, type GatewayProcess } from "../test/helpers/cli.js";
import { OCI_MANIFEST } from "../test/helpers/oci.js";
import { waitFor } from "../test/helpers/process.js";
import { startRegistry } from "../test/helpers/registry.js";
import { type Endpoint, SITE_HOST, expectStatus, send } from "./client.js";
import { manifestRps } from "./measure.js";
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

    const gateways: Record<Which, GatewayProcess> = {
      off: await startBenchGateway(workDir, "off", registry.origin),
      on: await startBenchGateway(workDir, "on", registry.origin),
    };
    stops.push(() => gateways.off.process.stop(), () => gateways.on.process.stop());
    const endpoints: Record<Which, Endpoint> = { off: await endpointOf(gateways.off, "off"), on: await endpointOf(gateways.on, "on") };
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



/** Identical configurations but for `metrics.enabled` and `log.access`; level info in both. */
async function startBenchGateway(workDir: string, which: Which, backend: string): Promise<GatewayProcess> {
  const configFile = join(workDir, `gateway-observe-${which}.yaml`);
  const observing = which === "on";
  const lines = [
    "listen: 127.0.0.1:0",
    'admin: { listen: "127.0.0.1:0" }',
    `dataDir: ${JSON.stringify(join(workDir, `gateway-observe-${which}-data`))}`,
    `log: { level: info, access: ${observing} }`,
    `metrics: { enabled: ${observing} }`,
    "sites:",
    `  - hosts: [${SITE_HOST}]`,
    `    backend: ${backend}`,
    "",
  ];
  await writeFile(configFile, lines.join("\n"));
  return startGatewayProcess(configFile);
}

async function endpointOf(gateway: GatewayProcess, name: string): Promise<Endpoint> {
  if (!gateway.caFile) throw new Error(`the "${name}" gateway names no CA file (expected generated certificates)`);
  return { name, origin: `https://${SITE_HOST}:${gateway.httpsPort}`, port: gateway.httpsPort, ca: await readFile(gateway.caFile, "utf8"), caFile: gateway.caFile };
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
