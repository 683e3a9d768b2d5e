// Login flood: what a flood of wrong passwords does to everyone else. One gateway process with a
// bcrypt cost-10 htpasswd site; 400 keep-alive connections from two loopback addresses (127.0.0.2 and
// 127.0.0.3) send wrong passwords for ever-new user names, so no per-user count ever stops them and every
// guess wants a bcrypt check. Meanwhile, from a third address (127.0.0.4), users log in for the first time
// (GET /v2/, each a user the gateway never verified: one bcrypt check), and from 127.0.0.1 a user whose
// login the gateway has cached pulls a manifest. The row is the new login's p95 during the flood over its
// p95 when quiet; target ≤ 2×, and no legitimate request may get a 503. The flooding addresses meet their
// failure budget (logins.maxFailuresPerAddress) and are refused without hashing; the hashing queue is shared
// fairly per address, so their checks do not make anyone else wait much.
//
// For `npm run bench` (bench/run.ts) to call; also runnable alone (needs `npm run build`):
//   node --import tsx bench/login-flood.ts [seconds per phase] [rounds]     (starts its own registry)
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import https from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startLoginFlood } from "../test/helpers/login-flood.js";
import { OCI_MANIFEST } from "../test/helpers/oci.js";
import { waitFor } from "../test/helpers/process.js";
import { startRegistry } from "../test/helpers/registry.js";
import { writeHtpasswd } from "./auth.js";
import { type Endpoint, SITE_HOST, expectStatus, loopbackLookup, send } from "./client.js";
import { startFeatureGateway } from "./proxies.js";
import { PULL_REPO, PULL_TAG, ensureManifest } from "./seed.js";

export interface LoginFloodBenchOptions {
  /** The registry behind the gateway, e.g. http://127.0.0.1:5000. Seeded if it lacks bench/pull:v1. */
  registryUrl: string;
  /** Length of each quiet and each flood phase. Default 10. */
  seconds?: number;
  /** Quiet + flood pairs; the p95 is over every sample of a kind. Default 1. */
  rounds?: number;
  /** Flood connections, spread over FLOODERS. Default 400. */
  floodConnections?: number;
  workDir?: string;
}

export interface Latencies {
  quietP95: number;
  floodP95: number;
  /** floodP95 / quietP95. */
  ratio: number;
  quietP50: number;
  floodP50: number;
  /** Requests measured in each kind of phase. */
  count: { quiet: number; flood: number };
}

export interface LoginFloodBenchResult {
  /** First logins from a quiet address (one bcrypt check each): the row. Target ratio ≤ 2. */
  newLogin: Latencies;
  /** Manifest pulls with a cached login. */
  cachedPull: Latencies;
  /** Legitimate requests answered 503 (target 0), and any other status than 200. */
  legitRefused: Record<string, number>;
  /** Flood answers by HTTP status (401: checked and wrong; 429: over the address's failure budget, not checked; 503: the address's queue share was full). */
  floodStatuses: Record<string, number>;
  /** Flood requests answered per second. */
  floodPerSecond: number;
}

const USER = "bench";
const FLOODERS = ["127.0.0.2", "127.0.0.3"];
const NEW_LOGIN_ADDRESS = "127.0.0.4";
/** Users sharing the bench user's cost-10 hash: each one's first login is a real bcrypt check. */
const NEW_USERS = 5000;

export async function benchLoginFlood(options: LoginFloodBenchOptions): Promise<LoginFloodBenchResult> {
  const seconds = options.seconds ?? 10;
  const rounds = options.rounds ?? 1;
  const connections = options.floodConnections ?? 400;
  const workDir = options.workDir ?? (await mkdtemp(join(tmpdir(), "rg-bench-login-flood-")));
  const stops: Array<() => Promise<unknown>> = [];
  try {
    const registry = new URL(options.registryUrl);
    await ensureManifest({ name: "direct", origin: registry.origin, port: Number(registry.port) });
    const { htpasswdFile, password, hash } = await writeHtpasswd(workDir);
    const newUsers = Array.from({ length: NEW_USERS }, (_, i) => `new-${i}`);
    await writeFile(htpasswdFile, [USER, ...newUsers].map((user) => `${user}:${hash}\n`).join(""));
    const { gateway, endpoint } = await startFeatureGateway(workDir, "login-flood", registry.origin, {
      topLevel: ["log: { level: info, access: false }"],
      siteLines: [`    auth: { type: htpasswd, htpasswd: ${JSON.stringify(htpasswdFile)}, rules: [{ who: [${USER}], repositories: ["**"], actions: [pull] }] }`],
    });
    stops.push(() => gateway.process.stop());

    const refused: Record<string, number> = {};
    const timed = async (what: string, request: () => ReturnType<typeof send>) => {
      const started = performance.now();
      const reply = await request();
      if (reply.status !== 200) refused[reply.status] = (refused[reply.status] ?? 0) + 1;
      expectStatus(reply, reply.status === 503 ? 503 : 200, what);
      return performance.now() - started;
    };
    const authorization = (user: string) => `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;
    const pull = () =>
      timed("cached pull", () =>
        send(endpoint, "GET", `/v2/${PULL_REPO}/manifests/${PULL_TAG}`, { headers: { accept: OCI_MANIFEST, authorization: authorization(USER) }, timeoutMs: 30_000 }),
      );
    // A client of its own from the third address, keeping its connection as docker does during a login.
    const newLoginAgent = new https.Agent({ keepAlive: true, maxSockets: 1, ca: endpoint.ca, lookup: loopbackLookup, localAddress: NEW_LOGIN_ADDRESS });
    stops.push(async () => newLoginAgent.destroy());
    let nextUser = 0;
    const newLogin = () => {
      if (nextUser >= NEW_USERS) throw new Error(`more than ${NEW_USERS} new logins: the phases are too long for the users written`);
      const user = newUsers[nextUser++]!;
      return timed("new login", () => send(endpoint, "GET", "/v2/", { headers: { authorization: authorization(user) }, agent: newLoginAgent, timeoutMs: 30_000 }));
    };
    // Must really check credentials, or the flood costs nothing.
    expectStatus(await send(endpoint, "GET", `/v2/${PULL_REPO}/manifests/${PULL_TAG}`, { headers: { accept: OCI_MANIFEST } }), 401, "anonymous pull");
    // Warm-up, not counted: JIT, connections, the cached login, the hashing thread.
    for (let i = 0; i < 20; i++) await pull();
    for (let i = 0; i < 5; i++) await newLogin();

    const quiet = { newLogin: [] as number[], pull: [] as number[] };
    const flood = { newLogin: [] as number[], pull: [] as number[] };
    const floodStatuses: Record<string, number> = {};
    let floodAnswered = 0;
    let floodMs = 0;
    for (let round = 0; round < rounds; round++) {
      await measureFor(seconds * 1000, newLogin, pull, quiet);
      const attacker = startLoginFlood({ port: endpoint.port, ca: endpoint.ca!, host: SITE_HOST, addresses: FLOODERS, connections });
      try {
        // From the first answers to both addresses on: 400 TLS handshakes at once are a connection flood.
        await waitFor(async () => {
          const { byAddress } = await attacker.counts();
          return FLOODERS.every((address) => byAddress[address] !== undefined);
        }, {
          timeoutMs: 60_000,
          what: "answers to both flooding addresses",
        });
        const before = await attacker.counts();
        const started = performance.now();
        await measureFor(seconds * 1000, newLogin, pull, flood);
        floodMs += performance.now() - started;
        const after = await attacker.counts();
        for (const [status, count] of Object.entries(after.statuses)) {
          const answered = count - (before.statuses[status] ?? 0);
          floodStatuses[status] = (floodStatuses[status] ?? 0) + answered;
          floodAnswered += answered;
        }
      } finally {
        await attacker.stop();
      }
    }
    const unexpected = Object.keys(floodStatuses).filter((status) => !["401", "429", "503"].includes(status));
    if (unexpected.length) throw new Error(`flood answered ${JSON.stringify(floodStatuses)}: expected only 401, 429 and 503`);
    return {
      newLogin: latencies(quiet.newLogin, flood.newLogin),
      cachedPull: latencies(quiet.pull, flood.pull),
      legitRefused: refused,
      floodStatuses,
      floodPerSecond: floodAnswered / (floodMs / 1000),
    };
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => {});
    if (!options.workDir) await rm(workDir, { recursive: true, force: true });
  }
}

/** A sequential loop of new logins and one of cached pulls for `ms`; every latency, ms. */
async function measureFor(ms: number, newLogin: () => Promise<number>, pull: () => Promise<number>, into: { newLogin: number[]; pull: number[] }): Promise<void> {
  const until = performance.now() + ms;
  await Promise.all([
    (async () => {
      while (performance.now() < until) into.newLogin.push(await newLogin());
    })(),
    (async () => {
      while (performance.now() < until) into.pull.push(await pull());
    })(),
  ]);
}

function latencies(quiet: number[], flood: number[]): Latencies {
  const quietP95 = percentile(quiet, 95);
  const floodP95 = percentile(flood, 95);
  return {
    quietP95,
    floodP95,
    ratio: floodP95 / quietP95,
    quietP50: percentile(quiet, 50),
    floodP50: percentile(flood, 50),
    count: { quiet: quiet.length, flood: flood.length },
  };
}

function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/** The note of the bench row: everything but the new login's p95s, which are the row. */
export function loginFloodNote(result: LoginFloodBenchResult): string {
  const { newLogin, cachedPull } = result;
  return (
    `new login p50 ${newLogin.quietP50.toFixed(0)} → ${newLogin.floodP50.toFixed(0)} ms, ${newLogin.count.quiet} / ${newLogin.count.flood} logins; ` +
    `cached pull p95 ${cachedPull.quietP95.toFixed(1)} → ${cachedPull.floodP95.toFixed(1)} ms (${cachedPull.ratio.toFixed(2)}×); ` +
    `legitimate requests refused: ${JSON.stringify(result.legitRefused)}; flood answered ${result.floodPerSecond.toFixed(0)}/s ${JSON.stringify(result.floodStatuses)}`
  );
}

export function describeLoginFlood(result: LoginFloodBenchResult): string {
  const { newLogin } = result;
  return (
    `new login p95 quiet ${newLogin.quietP95.toFixed(0)} ms, during a 400-connection flood from two addresses ${newLogin.floodP95.toFixed(0)} ms: ` +
    `${newLogin.ratio.toFixed(2)}× (target ≤ 2×); ${loginFloodNote(result)}`
  );
}

// Standalone: its own registry, one result line.
if (import.meta.url === `file://${process.argv[1]}`) {
  const registry = await startRegistry();
  try {
    const result = await benchLoginFlood({ registryUrl: registry.url, seconds: Number(process.argv[2] ?? 10), rounds: Number(process.argv[3] ?? 1) });
    console.log(describeLoginFlood(result));
  } finally {
    await registry.stop();
  }
}
