// Login flood: what a flood of wrong passwords does to everyone else. One gateway process with a
// bcrypt cost-10 htpasswd site; a legitimate user pulls a manifest (Basic, a login the gateway has already
// verified and cached) in a loop, first on a quiet gateway, then while 20 connections send wrong passwords
// for ever-new user names (so the per-user throttle never stops them and every one wants a bcrypt check).
// The row is the legitimate pull's p95 during the flood over its p95 when quiet; target ≤ 2×. Hashing on
// the event loop would put ~100 ms of bcrypt in front of every pull; on worker threads behind a bounded
// queue the pull only competes for CPU.
//
// For `npm run bench` (bench/run.ts) to call; also runnable alone (needs `npm run build`):
//   node --import tsx bench/login-flood.ts [seconds per phase] [rounds]     (starts its own registry)
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import https from "node:https";
import type { LookupFunction } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { OCI_MANIFEST } from "../test/helpers/oci.js";
import { startRegistry } from "../test/helpers/registry.js";
import { type Endpoint, expectStatus, send } from "./client.js";
import { writeHtpasswd } from "./auth.js";
import { startFeatureGateway } from "./proxies.js";
import { PULL_REPO, PULL_TAG, ensureManifest } from "./seed.js";

export interface LoginFloodBenchOptions {
  /** The registry behind the gateway, e.g. http://127.0.0.1:5000. Seeded if it lacks bench/pull:v1. */
  registryUrl: string;
  /** Length of each quiet and each flood phase. Default 5. */
  seconds?: number;
  /** Quiet + flood pairs; the p95 is over every sample of a kind. Default 2. */
  rounds?: number;
  /** Wrong-password connections in the flood. Default 20. */
  floodConnections?: number;
  workDir?: string;
}

export interface LoginFloodBenchResult {
  /** p95 of the legitimate pull, ms. */
  quietP95: number;
  floodP95: number;
  /** floodP95 / quietP95. Target ≤ 2. */
  ratio: number;
  quietP50: number;
  floodP50: number;
  /** Legitimate pulls measured in each kind of phase. */
  pulls: { quiet: number; flood: number };
  /** Flood answers by HTTP status (401: checked and wrong; 503: the hashing queue was full). */
  floodStatuses: Record<string, number>;
  /** Flood requests answered per second. */
  floodPerSecond: number;
}

const USER = "bench";
/** Legitimate pullers running at once (each a sequential loop). */
const PULLERS = 2;

export async function benchLoginFlood(options: LoginFloodBenchOptions): Promise<LoginFloodBenchResult> {
  const seconds = options.seconds ?? 5;
  const rounds = options.rounds ?? 2;
  const connections = options.floodConnections ?? 20;
  const workDir = options.workDir ?? (await mkdtemp(join(tmpdir(), "rg-bench-login-flood-")));
  const stops: Array<() => Promise<unknown>> = [];
  try {
    const registry = new URL(options.registryUrl);
    await ensureManifest({ name: "direct", origin: registry.origin, port: Number(registry.port) });
    const { htpasswdFile, password } = await writeHtpasswd(workDir);
    const { gateway, endpoint } = await startFeatureGateway(workDir, "login-flood", registry.origin, {
      topLevel: ["log: { level: info, access: false }"],
      siteLines: [`    auth: { type: htpasswd, htpasswd: ${JSON.stringify(htpasswdFile)}, rules: [{ who: [${USER}], repositories: ["**"], actions: [pull] }] }`],
    });
    stops.push(() => gateway.process.stop());

    const authorization = `Basic ${Buffer.from(`${USER}:${password}`).toString("base64")}`;
    const pull = async () => {
      const started = performance.now();
      const reply = await send(endpoint, "GET", `/v2/${PULL_REPO}/manifests/${PULL_TAG}`, { headers: { accept: OCI_MANIFEST, authorization }, timeoutMs: 30_000 });
      expectStatus(reply, 200, "legitimate pull");
      return performance.now() - started;
    };
    // Must really check credentials, or the flood costs nothing.
    const anonymous = await send(endpoint, "GET", `/v2/${PULL_REPO}/manifests/${PULL_TAG}`, { headers: { accept: OCI_MANIFEST } });
    expectStatus(anonymous, 401, "anonymous pull");
    // Warm-up, not counted: JIT, connections, and the login cache (one bcrypt).
    for (let i = 0; i < 50; i++) await pull();

    const quiet: number[] = [];
    const flood: number[] = [];
    const floodStatuses: Record<string, number> = {};
    let floodAnswered = 0;
    let floodMs = 0;
    for (let round = 0; round < rounds; round++) {
      quiet.push(...(await pullFor(pull, seconds * 1000)));
      const attacker = floodFrom(endpoint, connections);
      const started = performance.now();
      flood.push(...(await pullFor(pull, seconds * 1000)));
      const statuses = await attacker.stop();
      floodMs += performance.now() - started;
      for (const status of statuses) {
        floodStatuses[status] = (floodStatuses[status] ?? 0) + 1;
        floodAnswered++;
      }
    }
    const unexpected = Object.keys(floodStatuses).filter((status) => status !== "401" && status !== "503");
    if (unexpected.length) throw new Error(`flood answered ${JSON.stringify(floodStatuses)}: expected only 401 and 503`);
    const quietP95 = percentile(quiet, 95);
    const floodP95 = percentile(flood, 95);
    return {
      quietP95,
      floodP95,
      ratio: floodP95 / quietP95,
      quietP50: percentile(quiet, 50),
      floodP50: percentile(flood, 50),
      pulls: { quiet: quiet.length, flood: flood.length },
      floodStatuses,
      floodPerSecond: floodAnswered / (floodMs / 1000),
    };
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => {});
    if (!options.workDir) await rm(workDir, { recursive: true, force: true });
  }
}

/** PULLERS sequential loops of `pull` for `ms`; every latency, ms. */
async function pullFor(pull: () => Promise<number>, ms: number): Promise<number[]> {
  const until = performance.now() + ms;
  const samples: number[] = [];
  await Promise.all(
    Array.from({ length: PULLERS }, async () => {
      while (performance.now() < until) samples.push(await pull());
    }),
  );
  return samples;
}

const loopback = ((_hostname: string, options: { all?: boolean }, callback: (...args: unknown[]) => void) => {
  if (options.all) callback(null, [{ address: "127.0.0.1", family: 4 }]);
  else callback(null, "127.0.0.1", 4);
}) as unknown as LookupFunction;

/**
 * `connections` keep-alive connections of their own (not the pullers' agent), each sending wrong passwords
 * for a new user name back to back until stopped; stop() resolves with every status answered.
 */
function floodFrom(endpoint: Endpoint, connections: number): { stop(): Promise<number[]> } {
  const agent = new https.Agent({ keepAlive: true, maxSockets: connections, ca: endpoint.ca, lookup: loopback });
  const statuses: number[] = [];
  let running = true;
  let n = 0;
  const tag = randomBytes(3).toString("hex");
  const one = () =>
    new Promise<void>((resolve) => {
      const req = https.request(
        new URL(`/v2/${PULL_REPO}/manifests/${PULL_TAG}`, endpoint.origin),
        { agent, headers: { accept: OCI_MANIFEST, authorization: `Basic ${Buffer.from(`intruder-${tag}-${n++}:guess`).toString("base64")}` } },
        (res) => {
          res.resume();
          res.once("end", () => {
            statuses.push(res.statusCode ?? 0);
            resolve();
          });
          res.once("error", () => resolve());
        },
      );
      req.once("error", () => {
        statuses.push(0);
        resolve();
      });
      req.end();
    });
  const loops = Array.from({ length: connections }, async () => {
    while (running) await one();
  });
  return {
    async stop() {
      running = false;
      await Promise.all(loops);
      agent.destroy();
      return statuses;
    },
  };
}

function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

export function describeLoginFlood(result: LoginFloodBenchResult): string {
  return (
    `legitimate pull p95 quiet ${result.quietP95.toFixed(1)} ms, during a wrong-password flood ${result.floodP95.toFixed(1)} ms: ` +
    `${result.ratio.toFixed(2)}× (target ≤ 2×); p50 ${result.quietP50.toFixed(1)} → ${result.floodP50.toFixed(1)} ms; ` +
    `pulls ${result.pulls.quiet} quiet / ${result.pulls.flood} flood; flood ${result.floodPerSecond.toFixed(0)} answers/s ${JSON.stringify(result.floodStatuses)}`
  );
}

// Standalone: its own registry, one result line.
if (import.meta.url === `file://${process.argv[1]}`) {
  const registry = await startRegistry();
  try {
    const result = await benchLoginFlood({ registryUrl: registry.url, seconds: Number(process.argv[2] ?? 5), rounds: Number(process.argv[3] ?? 2) });
    console.log(describeLoginFlood(result));
  } finally {
    await registry.stop();
  }
}
