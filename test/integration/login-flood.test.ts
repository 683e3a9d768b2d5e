// Runs alone: compares a login's latency under a flood with its quiet latency.
// A login flood must not lock anyone else out: 400 connections from two addresses guess a new user name
// each time (so no per-user count ever stops them) at a bcrypt cost-10 site with two hashing threads. A
// legitimate user logging in for the first time from a third address still gets in, about as fast as on a
// quiet gateway and never with a 503; a cached login does not notice; and the flooding addresses are cut
// off by their failure budget, without a hash per guess. Real registry, the gateway in-process, the flood
// from a worker thread.
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import https from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { startTestGateway, type GatewayResponse, type TestGateway } from "../helpers/gateway.js";
import { htpasswdLine } from "../helpers/htpasswd.js";
import { startLoginFlood, type FloodCounts } from "../helpers/login-flood.js";
import { waitFor } from "../helpers/process.js";
import { startRegistry, type Registry } from "../helpers/registry.js";

const HUB = "hub.registry.test";
const FLOODERS = ["127.0.0.2", "127.0.0.3"];
const LEGIT_IP = "127.0.0.4";
const ADMIN_IP = "127.0.0.1";
const PASSWORD = "Legit1234";
/**
 * Users with the same cost-10 hash: each one's first login is a real bcrypt check, none is cached. More than
 * the loops can use up on a quiet machine (20 s at ≥ 80 ms a login), so a new login never names a user the
 * file lacks (that would be a failed login, and count against the legitimate address's budget).
 */
const USERS = 1000;
/** Quiet and flood phases: each this long, this many of each. */
const PHASE_MS = 5000;
const ROUNDS = 2;
const PER_ADDRESS = 30;

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;

function p95(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(0.95 * sorted.length) - 1)]!;
}

interface Sample {
  status: number;
  ms: number;
}

async function timed(call: () => Promise<GatewayResponse>): Promise<Sample> {
  const started = performance.now();
  const res = await call();
  return { status: res.status, ms: performance.now() - started };
}

describe("a login flood from two addresses does not lock anyone else out", () => {
  let workDir: string;
  let registry: Registry;
  let gateway: TestGateway;
  let nextUser = 0;
  // Clients keep their connections, as docker does between the requests of a login or a pull.
  const agents = [new https.Agent({ keepAlive: true, maxSockets: 1 }), new https.Agent({ keepAlive: true, maxSockets: 1 })];

  const v2 = (user: string, password: string, localAddress: string, agent: https.Agent) =>
    gateway.request(HUB, { path: "/v2/", headers: { authorization: basic(user, password) }, localAddress, agent });
  /** A login nobody made before: one bcrypt check. */
  const newLogin = () => timed(() => v2(`user-${nextUser++}`, PASSWORD, LEGIT_IP, agents[0]!));
  const cachedLogin = () => timed(() => v2("admin", PASSWORD, ADMIN_IP, agents[1]!));

  /** A loop of new logins and one of cached logins, side by side, for `ms`. */
  async function measureFor(ms: number, into: { fresh: Sample[]; cached: Sample[] }): Promise<void> {
    const until = performance.now() + ms;
    await Promise.all([
      (async () => {
        while (performance.now() < until) into.fresh.push(await newLogin());
      })(),
      (async () => {
        while (performance.now() < until) into.cached.push(await cachedLogin());
      })(),
    ]);
  }

  before(async () => {
    workDir = await mkdtemp(join(tmpdir(), "rg-login-flood-"));
    const htpasswd = join(workDir, "htpasswd");
    const hash = (await htpasswdLine("admin", PASSWORD, 10)).slice("admin:".length);
    const names = ["admin", ...Array.from({ length: USERS }, (_, i) => `user-${i}`)];
    await writeFile(htpasswd, names.map((name) => `${name}:${hash}\n`).join(""));
    registry = await startRegistry();
    gateway = await startTestGateway({
      // Two hashing threads (`auto` on three cores); budgets and queue bounds at their defaults.
      logins: { hashWorkers: 2 },
      log: { level: "warn", access: false },
      sites: [{ name: "hub", hosts: [HUB], backend: registry.url, default: true, auth: { type: "htpasswd", htpasswd, rules: [{ who: ["admin"], repositories: ["**"], actions: ["pull"] }] } }],
    });
  });

  after(async () => {
    for (const agent of agents) agent.destroy();
    await gateway?.stop();
    await registry?.stop();
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  it("a new login from a third address succeeds within 2× its quiet p95, never 503; a cached one is unaffected; the flooders hit their budget", { timeout: 120_000 }, async () => {
    // Warm-up: JIT, the hashing thread, admin's login remembered.
    for (let i = 0; i < 3; i++) assert.equal((await newLogin()).status, 200);
    assert.equal((await cachedLogin()).status, 200);

    const floodStarted = performance.now();
    const flood = startLoginFlood({ port: gateway.port, ca: gateway.caPem, host: HUB, addresses: FLOODERS, connections: 400 });
    const quiet = { fresh: [] as Sample[], cached: [] as Sample[] };
    const during = { fresh: [] as Sample[], cached: [] as Sample[] };
    let counts: FloodCounts;
    try {
      // From the first guesses on: 400 TLS handshakes at once are a connection flood, not a login flood.
      await waitFor(
        async () => {
          const { byAddress } = await flood.counts();
          return FLOODERS.every((address) => byAddress[address] !== undefined);
        },
        { timeoutMs: 30_000, what: "both flooding addresses to be answered" },
      );
      // Quiet and flood phases alternate on the same connections, so a machine whose load drifts (other
      // work on the same cores) weighs on both alike.
      for (let round = 0; round < ROUNDS; round++) {
        await flood.pause();
        await measureFor(PHASE_MS, quiet);
        await flood.resume();
        await measureFor(PHASE_MS, during);
      }
    } finally {
      counts = await flood.stop();
    }
    const ms = (samples: Sample[]) => samples.map((sample) => sample.ms);
    const summary =
      `new login p95 quiet ${p95(ms(quiet.fresh)).toFixed(0)} ms, flood ${p95(ms(during.fresh)).toFixed(0)} ms (${quiet.fresh.length} / ${during.fresh.length} logins); ` +
      `cached p95 ${p95(ms(quiet.cached)).toFixed(0)} → ${p95(ms(during.cached)).toFixed(0)} ms; flood ${JSON.stringify(counts)}`;
    process.stderr.write(`${summary}\n`);

    // The flood really was one, and both addresses were refused by their failure budget.
    assert.ok(counts.messages["too many failed logins from this address; try again later"]! > 0, summary);
    for (const address of FLOODERS) assert.ok((counts.byAddress[address]?.["429"] ?? 0) > 50, `${address} was refused by its budget: ${summary}`);
    // Only a guess answered 401 had its password hashed; past the budget none is. 30 failures back to back
    // and 30 a minute after (a refusal for a full queue share counts too): at most this many, however fast.
    const elapsedMs = performance.now() - floodStarted;
    for (const address of FLOODERS) {
      const hashed = counts.byAddress[address]?.["401"] ?? 0;
      assert.ok(hashed <= PER_ADDRESS + Math.ceil((PER_ADDRESS * elapsedMs) / 60_000), `${address}: ${hashed} guesses hashed in ${elapsedMs.toFixed(0)} ms: ${summary}`);
    }

    assert.ok(during.fresh.length >= 6, summary);
    assert.ok(nextUser <= USERS, `the loops used ${nextUser} new users, the file has ${USERS}`);
    assert.deepEqual([...new Set([...quiet.fresh, ...during.fresh].map((d) => d.status))], [200], `every new login got in: ${summary}`);
    assert.ok(p95(ms(during.fresh)) <= 2 * p95(ms(quiet.fresh)), `new login p95 within 2× quiet: ${summary}`);
    assert.deepEqual([...new Set([...quiet.cached, ...during.cached].map((c) => c.status))], [200], summary);
    // A remembered login waits for no hash: under a hash's time even during the flood.
    assert.ok(p95(ms(during.cached)) <= Math.max(2 * p95(ms(quiet.cached)), p95(ms(quiet.fresh))), `a cached login waits for no hash: ${summary}`);
  });
});
