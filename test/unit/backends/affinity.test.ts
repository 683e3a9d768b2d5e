// Which replica holds an upload session: in memory (expiry, bound) and shared through a real redis-server
// (two gateways see each other's sessions; a Redis that goes away does not break uploads this gateway
// started, and one it cannot place is refused rather than guessed).
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Redis } from "ioredis";
import { AffinityUnavailableError, createUploadAffinity, MemoryAffinity } from "../../../src/backends/affinity.js";
import { RedisAffinity } from "../../../src/backends/affinity-redis.js";
import { redis as redisSchema } from "../../../src/config/schema.js";
import { createLogger } from "../../../src/observe/log.js";
import { waitFor } from "../../helpers/process.js";
import { startRedis, type RedisServer } from "../../helpers/redis.js";
import { capturingLogger } from "../../helpers/logs.js";

const R1 = "http://10.0.0.1:5000";
const R2 = "http://10.0.0.2:5000";


describe("MemoryAffinity", () => {
  function onClock(options: { ttlMs?: number; maxEntries?: number } = {}) {
    let now = 1_000_000;
    const affinity = new MemoryAffinity({ ...options, now: () => now });
    return { affinity, advance: (ms: number) => (now += ms) };
  }

  it("remembers a session per pool until forgotten", async () => {
    const { affinity } = onClock();
    await affinity.remember("hub", "u1", R1);
    await affinity.remember("team", "u1", R2);
    assert.equal(await affinity.lookup("hub", "u1"), R1);
    assert.equal(await affinity.lookup("team", "u1"), R2);
    assert.equal(await affinity.lookup("hub", "u2"), null);
    await affinity.forget("hub", "u1");
    assert.equal(await affinity.lookup("hub", "u1"), null);
    assert.equal(await affinity.lookup("team", "u1"), R2);
  });

  it("forgets a session ttlMs after it was remembered (default: a week, as distribution purges uploads)", async () => {
    const { affinity, advance } = onClock({ ttlMs: 1000 });
    await affinity.remember("hub", "u1", R1);
    advance(999);
    assert.equal(await affinity.lookup("hub", "u1"), R1);
    advance(1);
    assert.equal(await affinity.lookup("hub", "u1"), null);
    assert.equal(new MemoryAffinity().ttlMs, 7 * 24 * 60 * 60 * 1000);
  });

  it("prunes expired sessions without being asked for them", async () => {
    const { affinity, advance } = onClock({ ttlMs: 1000 });
    for (let i = 0; i < 10; i++) await affinity.remember("hub", `old${i}`, R1);
    advance(1000);
    await affinity.remember("hub", "new", R2);
    assert.equal(affinity.size, 1);
  });

  it("holds at most maxEntries sessions, forgetting the oldest first", async () => {
    const { affinity } = onClock({ maxEntries: 3 });
    for (const uuid of ["a", "b", "c"]) await affinity.remember("hub", uuid, R1);
    await affinity.remember("hub", "a", R2); // remembered again: now the newest
    await affinity.remember("hub", "d", R1);
    assert.equal(affinity.size, 3);
    assert.deepEqual(
      await Promise.all(["a", "b", "c", "d"].map((uuid) => affinity.lookup("hub", uuid))),
      [R2, null, R1, R1],
    );
  });

  it("is what createUploadAffinity gives without Redis", async () => {
    assert.ok((await createUploadAffinity(undefined, createLogger({ level: "silent", format: "json" }))) instanceof MemoryAffinity);
  });
});

describe("RedisAffinity on a real redis-server", () => {
  let server: RedisServer;
  const opened: RedisAffinity[] = [];

  async function gateway(options: { ttlMs?: number } = {}) {
    const { logger, lines } = capturingLogger();
    const affinity = new RedisAffinity(redisSchema.parse({ url: server.url, keyPrefix: "t:" }), logger, options);
    opened.push(affinity);
    await waitFor(() => affinity.available, { timeoutMs: 2000, intervalMs: 10, what: "Redis to connect" });
    return { affinity, lines };
  }

  before(async () => {
    server = await startRedis();
  });

  after(async () => {
    await Promise.all(opened.map((a) => a.close()));
    await server?.stop();
  });

  it("two gateways see each other's sessions, stored under the prefix with the TTL", async () => {
    const { affinity: a } = await gateway({ ttlMs: 60_000 });
    const { affinity: b } = await gateway();
    await a.remember("hub", "shared-1", R2);
    assert.equal(await b.lookup("hub", "shared-1"), R2);
    assert.equal(await b.lookup("team", "shared-1"), null, "pools are apart");
    const direct = new Redis(server.url);
    try {
      assert.equal(await direct.get("t:upload:hub:shared-1"), R2);
      const ttl = await direct.pttl("t:upload:hub:shared-1");
      assert.ok(ttl > 59_000 && ttl <= 60_000, `ttl ${ttl}`);
    } finally {
      direct.disconnect();
    }
  });

  it("forget removes the session from Redis, for gateways that have not seen it, and from its own memory", async () => {
    const { affinity: a } = await gateway();
    const { affinity: b } = await gateway();
    await a.remember("hub", "done-1", R1);
    await a.forget("hub", "done-1");
    assert.equal(await a.lookup("hub", "done-1"), null);
    assert.equal(await b.lookup("hub", "done-1"), null);
    // Finished through another gateway than the one that started it (PUT via b).
    await a.remember("hub", "done-2", R2);
    await b.forget("hub", "done-2");
    assert.equal(await b.lookup("hub", "done-2"), null);
    const { affinity: c } = await gateway();
    assert.equal(await c.lookup("hub", "done-2"), null);
    const direct = new Redis(server.url);
    try {
      assert.deepEqual(await direct.keys("t:upload:hub:done-*"), []);
    } finally {
      direct.disconnect();
    }
  });

  it("with Redis gone, places the sessions it knows, refuses the ones it does not, and logs the outage once", async () => {
    const { affinity: a, lines } = await gateway();
    const { affinity: b } = await gateway();
    await a.remember("hub", "mine", R1);
    await b.remember("hub", "seen", R2);
    assert.equal(await a.lookup("hub", "seen"), R2, "looked up while Redis was there");
    await b.remember("hub", "theirs", R2);
    await server.kill();

    const started = performance.now();
    assert.equal(await a.lookup("hub", "mine"), R1);
    assert.equal(await a.lookup("hub", "seen"), R2, "kept from the earlier lookup");
    await assert.rejects(a.lookup("hub", "theirs"), AffinityUnavailableError);
    await a.remember("hub", "during", R1); // does not throw: this gateway still routes it
    assert.equal(await a.lookup("hub", "during"), R1);
    await a.forget("hub", "mine"); // does not throw: the key expires in Redis by itself
    await assert.rejects(a.lookup("hub", "mine"), AffinityUnavailableError, "forgotten here, and Redis cannot tell");
    assert.ok(performance.now() - started < 1000, `took ${performance.now() - started} ms`);
    assert.equal(lines.filter((l) => /Redis unavailable/.test(l.msg)).length, 1, JSON.stringify(lines));
    assert.doesNotMatch(JSON.stringify(lines), /redis:\/\//, "no Redis URL (it may hold a password) in the log");

    await server.start();
    await waitFor(() => a.available, { timeoutMs: 5000, what: "reconnect" });
    await a.remember("hub", "after", R1);
    assert.equal(await b.lookup("hub", "after"), R1);
  });
});
