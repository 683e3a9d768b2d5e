// A login flood must not lock anyone else out: 400 connections from two addresses guess a new user name
// each time (so no per-user count ever stops them) at a bcrypt cost-10 site with one hashing thread. A
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
/** Users with the same cost-10 hash: each one's first login is a real bcrypt check, none is cached. */
const USERS = 120;
const FLOOD_MS = 8_000;
const PER_ADDRESS = 30;

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;

function p95(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(0.95 * sorted.length) - 1)]!;
}

async function timed(call: () => Promise<GatewayResponse>): Promise<{ status: number; ms: number }> {
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

  before(async () => {
    workDir = await mkdtemp(join(tmpdir(), "rg-login-flood-"));
    const htpasswd = join(workDir, "htpasswd");
    const hash = (await htpasswdLine("admin", PASSWORD, 10)).slice("admin:".length);
    const names = ["admin", ...Array.from({ length: USERS }, (_, i) => `user-${i}`)];
    await writeFile(htpasswd, names.map((name) => `${name}:${hash}\n`).join(""));
    registry = await startRegistry();
    gateway = await startTestGateway({
      // One hashing thread, as `auto` gives on two cores; budgets and queue bounds at their defaults.
      logins: { hashWorkers: 1 },
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

  it("a new login from a third address succeeds within 2× its quiet p95, never 503; a cached one is unaffected; the flooders hit their budget", async () => {
    // Quiet: warm-up, then the baselines.
    for (let i = 0; i < 3; i++) await newLogin();
    assert.equal((await cachedLogin()).status, 200);
    const quiet: number[] = [];
    const quietCached: number[] = [];
    for (let i = 0; i < 15; i++) {
      const login = await newLogin();
      assert.equal(login.status, 200);
      quiet.push(login.ms);
      quietCached.push((await cachedLogin()).ms);
    }

    const flood = startLoginFlood({ port: gateway.port, ca: gateway.caPem, host: HUB, addresses: FLOODERS, connections: 400 });
    const during: { status: number; ms: number }[] = [];
    const cached: { status: number; ms: number }[] = [];
    let counts: FloodCounts;
    try {
      // From the first guesses on: 400 TLS handshakes at once are a connection flood, not a login flood.
      await waitFor(async () => {
        const { byAddress } = await flood.counts();
        return FLOODERS.every((address) => byAddress[address] !== undefined);
      }, {
        timeoutMs: 30_000,
        what: "both flooding addresses to be answered",
      });
      const until = performance.now() + FLOOD_MS;
      await Promise.all([
        (async () => {
          while (performance.now() < until) during.push(await newLogin());
        })(),
        (async () => {
          while (performance.now() < until) cached.push(await cachedLogin());
        })(),
      ]);
    } finally {
      counts = await flood.stop();
    }
    const summary = `quiet p95 ${p95(quiet).toFixed(0)} ms, flood p95 ${p95(during.map((d) => d.ms)).toFixed(0)} ms over ${during.length} logins; cached p95 ${p95(quietCached).toFixed(0)} → ${p95(cached.map((c) => c.ms)).toFixed(0)} ms; flood ${JSON.stringify(counts)}`;
    process.stderr.write(`${summary}\n`);

    // The flood really was one: many requests from both addresses, and both were throttled.
    for (const address of FLOODERS) assert.ok((counts.byAddress[address]?.["429"] ?? 0) > 100, `${address} was refused by its budget: ${summary}`);
    assert.ok(counts.messages["too many failed logins from this address; try again later"]! > 0, summary);
    // Every guess that got its 401 had its password hashed; past the budget none did. An address's budget is
    // 30 failures back to back plus 30 a minute: in FLOOD_MS at most 30 + 6 more each, whatever the speed.
    for (const address of FLOODERS) {
      const checked = counts.byAddress[address]?.["401"] ?? 0;
      assert.ok(checked <= PER_ADDRESS + Math.ceil((PER_ADDRESS * (FLOOD_MS + 2000)) / 60_000), `${address}: ${checked} guesses hashed: ${summary}`);
    }

    assert.ok(during.length >= 10, summary);
    assert.deepEqual([...new Set(during.map((d) => d.status))], [200], `every new login got in: ${summary}`);
    assert.ok(p95(during.map((d) => d.ms)) <= 2 * p95(quiet), `new login p95 within 2× quiet: ${summary}`);
    assert.deepEqual([...new Set(cached.map((c) => c.status))], [200], summary);
    assert.ok(p95(cached.map((c) => c.ms)) <= Math.max(2 * p95(quietCached), p95(quiet)), `a cached login waits for no hash: ${summary}`);
  });
});
