// Replicas of one registry behind one name: the choice of replica (least outstanding, round-robin ties,
// exclude, panic mode) and health (active checks against real loopback servers, passive ejection).
import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { after, afterEach, describe, it } from "node:test";
import { BackendPool, type HealthCheckOptions, type PoolMember } from "../../../src/backends/pool.js";
import { LeaseSet, ResourcePool } from "../../../src/process/resources.js";
import { freePort } from "../../helpers/ports.js";
import { waitFor } from "../../helpers/process.js";
import { capturingLogger } from "../../helpers/logs.js";

/** A replica answering GET /v2/ with `status` (changeable), counting the checks it received. */
interface Replica {
  url: URL;
  status: number;
  /** Milliseconds before answering; Infinity: never. */
  delayMs: number;
  hits: number;
}

const servers: http.Server[] = [];
const pools: BackendPool[] = [];

async function replica(status = 200): Promise<Replica> {
  const state: Replica = {
    url: new URL("http://127.0.0.1"),
    status,
    delayMs: 0,
    hits: 0,
  };
  const server = http.createServer((_req, res) => {
    // The status as of arrival: a check counted before a change of status gets the old one.
    const { status: answer, delayMs } = state;
    state.hits++;
    if (delayMs === Infinity) return;
    setTimeout(() => res.writeHead(answer, { "Content-Type": "application/json" }).end("{}"), delayMs);
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  state.url = new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  return state;
}


const FAST: HealthCheckOptions = { intervalMs: 30, timeoutMs: 200, unhealthyThreshold: 3, healthyThreshold: 2 };
const agent = new http.Agent({ keepAlive: true });

function pool(urls: URL[], health: HealthCheckOptions = FAST, onChange?: () => void) {
  const { logger, lines } = capturingLogger();
  const changes: string[] = [];
  const created = new BackendPool("registry", urls, health, {
    agentFor: () => agent,
    logger,
    onHealthChange: (name, member, healthy) => {
      changes.push(`${name} ${member} ${healthy ? "up" : "down"}`);
      onChange?.();
    },
  });
  pools.push(created);
  return { pool: created, lines, changes };
}

/** Three addresses that are never contacted (no start()): choice only. */
const A = new URL("http://127.0.0.1:1");
const B = new URL("http://127.0.0.1:2");
const C = new URL("http://127.0.0.1:3");
const origins = (picked: (PoolMember | null)[]) => picked.map((m) => m?.origin ?? null);
const ports = (picked: (PoolMember | null)[]) => picked.map((m) => (m ? m.url.port : null)).join("");

afterEach(() => {
  for (const p of pools.splice(0)) p.stop();
});

after(async () => {
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  agent.destroy();
});

describe("BackendPool choice", () => {
  it("rotates among members with equally many requests in flight", () => {
    const { pool: p } = pool([A, B, C]);
    assert.equal(ports(Array.from({ length: 7 }, () => p.pick())), "1231231");
  });

  it("picks the member with the fewest requests in flight, counted by acquire until released", () => {
    const { pool: p } = pool([A, B, C]);
    const [a, b, c] = p.members as [PoolMember, PoolMember, PoolMember];
    const releaseA1 = p.acquire(a);
    p.acquire(a);
    const releaseB = p.acquire(b);
    assert.equal(p.pick()?.origin, c.origin);
    p.acquire(c);
    p.acquire(c);
    assert.equal(p.pick()?.origin, b.origin, "b has 1, a and c have 2");
    releaseA1();
    releaseA1(); // idempotent: counted once
    assert.deepEqual(p.status().map((s) => s.outstanding), [1, 1, 2]);
    releaseB();
    assert.equal(p.pick()?.origin, b.origin);
    assert.equal(p.member(a.origin), a);
    assert.equal(p.member("http://127.0.0.1:9"), undefined);
  });

  it("never picks an excluded member, and picks nothing when all are excluded", () => {
    const { pool: p } = pool([A, B, C]);
    const notB = new Set([B.origin]);
    assert.equal(ports(Array.from({ length: 4 }, () => p.pick(notB))), "1313");
    assert.equal(p.pick(new Set([A.origin, B.origin, C.origin])), null);
  });

  it("skips unhealthy members even when they are idle", () => {
    const { pool: p } = pool([A, B, C]);
    const [a, b] = p.members as [PoolMember, PoolMember, PoolMember];
    p.reportConnectionFailure(a, "ECONNREFUSED");
    p.acquire(b);
    p.acquire(b);
    assert.equal(ports(Array.from({ length: 3 }, () => p.pick())), "333");
  });

  it("panic mode: with no healthy member left it still picks, least outstanding first, honouring exclude", () => {
    const { pool: p } = pool([A, B, C]);
    const [a, b, c] = p.members as [PoolMember, PoolMember, PoolMember];
    p.reportConnectionFailure(c, "ECONNRESET");
    assert.equal(p.pick(new Set([A.origin, B.origin]))?.origin, c.origin, "only unhealthy members left after exclude");
    p.reportConnectionFailure(a, "ECONNREFUSED");
    p.reportConnectionFailure(b, "ECONNREFUSED");
    p.acquire(a);
    assert.deepEqual(origins([p.pick(), p.pick()]).sort(), [b.origin, c.origin].sort());
    assert.equal(p.pick(new Set([B.origin, C.origin]))?.origin, a.origin);
    assert.equal(p.pick(new Set([A.origin, B.origin, C.origin])), null);
  });

  it("refuses an empty pool and a member listed twice", () => {
    assert.throws(() => pool([]), /no members/);
    assert.throws(() => pool([A, new URL("http://127.0.0.1:1/v2/")]), /listed twice/);
  });
});

describe("BackendPool health", () => {
  it("takes a member answering 500 out after unhealthyThreshold checks and back after healthyThreshold", async () => {
    const bad = await replica(500);
    const good = await replica(200);
    // Checks the replica had received at each transition (the next one is an interval away).
    const hitsAtChange: number[] = [];
    const { pool: p, lines, changes } = pool([bad.url, good.url], FAST, () => hitsAtChange.push(bad.hits));
    const member = p.members[0]!;
    p.start();
    await waitFor(() => !member.healthy, { intervalMs: 5, timeoutMs: 2000, what: "unhealthy" });
    assert.deepEqual(hitsAtChange, [3], "unhealthy on the third failed check (unhealthyThreshold 3)");
    assert.equal(member.lastError, "GET /v2/ answered 500");
    assert.equal(p.pick()?.origin, good.url.origin);
    assert.equal(p.members[1]!.healthy, true);

    bad.status = 200;
    const recoveringFrom = bad.hits;
    await waitFor(() => member.healthy, { intervalMs: 5, timeoutMs: 2000, what: "healthy again" });
    assert.deepEqual(hitsAtChange, [3, recoveringFrom + 2], "healthy on the second good check (healthyThreshold 2)");
    assert.equal(member.lastError, null);
    assert.deepEqual(changes, [`registry ${bad.url.origin} down`, `registry ${bad.url.origin} up`]);
    assert.deepEqual(
      lines.map((l) => [l.level, l.pool, l.backend]),
      [["warn", "registry", bad.url.origin], ["info", "registry", bad.url.origin]],
      "each transition logged once",
    );
    assert.equal(lines[0]!.reason, "GET /v2/ answered 500");
  });

  it("counts a 401 (a registry that wants credentials) as up", async () => {
    const locked = await replica(401);
    const { pool: p, changes } = pool([locked.url]);
    p.start();
    await waitFor(() => locked.hits >= 5, { intervalMs: 5, what: "five checks" });
    assert.equal(p.members[0]!.healthy, true);
    assert.deepEqual(changes, []);
  });

  it("takes a closed port out, naming the connection error", async () => {
    const closed = new URL(`http://127.0.0.1:${await freePort()}`);
    const { pool: p } = pool([closed]);
    p.start();
    await waitFor(() => !p.members[0]!.healthy, { intervalMs: 5, timeoutMs: 2000, what: "unhealthy" });
    assert.deepEqual(p.status(), [{ backend: closed.origin, healthy: false, outstanding: 0, lastError: "ECONNREFUSED" }]);
  });

  it("counts a check without an answer within timeoutMs as failed", async () => {
    const silent = await replica(200);
    silent.delayMs = Infinity;
    const { pool: p } = pool([silent.url], { intervalMs: 20, timeoutMs: 50, unhealthyThreshold: 2, healthyThreshold: 1 });
    p.start();
    await waitFor(() => !p.members[0]!.healthy, { intervalMs: 5, timeoutMs: 2000, what: "unhealthy" });
    assert.equal(p.members[0]!.lastError, "no answer within 50 ms");
  });

  it("ejects at once on a connection failure, logs it once, and lets the active check bring it back", async () => {
    const flaky = await replica(200);
    const { pool: p, lines, changes } = pool([flaky.url]);
    const member = p.members[0]!;
    p.reportConnectionFailure(member, "ECONNRESET");
    p.reportConnectionFailure(member, "ECONNREFUSED");
    assert.equal(member.healthy, false);
    assert.equal(member.lastError, "ECONNREFUSED");
    assert.deepEqual(changes, [`registry ${flaky.url.origin} down`]);
    assert.deepEqual(lines.map((l) => [l.level, l.reason]), [["warn", "ECONNRESET"]]);
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(member.healthy, false, "without active checks nothing brings it back");
    p.start();
    await waitFor(() => member.healthy, { intervalMs: 5, timeoutMs: 2000, what: "healthy again" });
    assert.ok(flaky.hits >= 2, `back after ${flaky.hits} checks (healthyThreshold 2)`);
    assert.deepEqual(changes, [`registry ${flaky.url.origin} down`, `registry ${flaky.url.origin} up`]);
  });

  it("ignores a check that was sent before a passive ejection", async () => {
    const slow = await replica(200);
    slow.delayMs = 150;
    const { pool: p } = pool([slow.url], { intervalMs: 60_000, timeoutMs: 1000, unhealthyThreshold: 1, healthyThreshold: 1 });
    p.start();
    await waitFor(() => slow.hits === 1, { intervalMs: 5, what: "the check to arrive" });
    p.reportConnectionFailure(p.members[0]!, "ECONNRESET");
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(p.members[0]!.healthy, false, "the 200 answered a check from before the failure");
  });

  it("stop() ends the checks", async () => {
    const watched = await replica(200);
    const { pool: p } = pool([watched.url]);
    p.start();
    await waitFor(() => watched.hits >= 2, { intervalMs: 5, what: "two checks" });
    p.stop();
    const hits = watched.hits;
    await new Promise((resolve) => setTimeout(resolve, 150));
    assert.equal(watched.hits, hits);
  });
});

describe("BackendPool state kept by the process across reloads", () => {
  /** A pool as a generation builds it: its replicas' state leased from the process's resources. */
  function generation(resources: ResourcePool, urls: URL[], health: HealthCheckOptions = FAST) {
    const leases = new LeaseSet(resources);
    const { logger } = capturingLogger();
    const built = new BackendPool("registry", urls, health, { agentFor: () => agent, logger, resources: leases });
    pools.push(built);
    return { pool: built, retire: async () => (built.stop(), leases.releaseAll()) };
  }

  it("a replica ejected, and requests in flight, are still so in the next generation's pool; other health settings start afresh", async () => {
    const resources = new ResourcePool();
    const dead = await replica(500);
    const old = generation(resources, [A, dead.url], { ...FAST, intervalMs: 60_000 });
    old.pool.reportConnectionFailure(old.pool.member(dead.url.origin)!, "ECONNREFUSED");
    const done = old.pool.acquire(old.pool.member(A.origin)!);
    const next = generation(resources, [A, dead.url], { ...FAST, intervalMs: 60_000 });
    await old.retire();
    assert.equal(next.pool.member(dead.url.origin)!.healthy, false, "a reload does not make a dead replica healthy");
    assert.equal(next.pool.member(A.origin)!.outstanding, 1, "nor forget a request still in flight");
    done();
    assert.equal(next.pool.member(A.origin)!.outstanding, 0);
    const changed = generation(resources, [A, dead.url], { ...FAST, intervalMs: 50_000 });
    assert.equal(changed.pool.member(dead.url.origin)!.healthy, true, "other health-check settings: checked afresh");
    await Promise.all([next.retire(), changed.retire()]);
    assert.equal(resources.size(), 0, "the last generation out gives everything back");
  });

  it("one health-check timer per replica however many generations check it, stopped with the last", async () => {
    const resources = new ResourcePool();
    const watched = await replica(200);
    const health = { ...FAST, intervalMs: 40 };
    const generations = [generation(resources, [watched.url], health), generation(resources, [watched.url], health), generation(resources, [watched.url], health)];
    for (const { pool: p } of generations) p.start();
    assert.equal(resources.size("health-checks"), 1);
    const started = performance.now();
    await new Promise((resolve) => setTimeout(resolve, 400));
    const rounds = Math.floor((performance.now() - started) / health.intervalMs) + 1;
    assert.ok(watched.hits <= rounds + 1, `${watched.hits} checks in ${rounds} intervals: one timer, not three`);
    await generations[0]!.retire();
    await generations[1]!.retire();
    const hits = watched.hits;
    await new Promise((resolve) => setTimeout(resolve, 150));
    assert.ok(watched.hits > hits, "the generation still in service keeps checking");
    await generations[2]!.retire();
    // A check already on its way when the last generation retired may still arrive; none may start after.
    await new Promise((resolve) => setTimeout(resolve, health.intervalMs));
    const last = watched.hits;
    await new Promise((resolve) => setTimeout(resolve, 150));
    assert.equal(watched.hits, last, "stopped with the last generation");
  });
});
