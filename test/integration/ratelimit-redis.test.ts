// The Redis limiter against a real redis-server — the Lua GCRA agrees with the in-memory one,
// two clients share one count, and a Redis that dies or comes back is handled without hanging.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { redis as redisSchema } from "../../src/config/schema.js";
import { MemoryLimiter, type LimitRule } from "../../src/ratelimit/limiter.js";
import { RedisLimiter } from "../../src/ratelimit/redis.js";
import { waitFor } from "../helpers/process.js";
import { startRedis, type RedisServer } from "../helpers/redis.js";
import { capturingLogger } from "../helpers/logs.js";

const FIVE_PER_MINUTE: LimitRule = { rate: 5, periodMs: 60_000, burst: 5 };


describe("RedisLimiter on a real redis-server", () => {
  let server: RedisServer;
  const limiters: RedisLimiter[] = [];

  async function limiter(failure: "failOpen" | "failClosed" = "failOpen", prefix = "t:") {
    const { logger, lines } = capturingLogger();
    const availability: boolean[] = [];
    const created = new RedisLimiter({
      config: redisSchema.parse({ url: server.url, keyPrefix: prefix, failure }),
      fallback: new MemoryLimiter(),
      logger,
      onAvailability: (up) => availability.push(up),
    });
    limiters.push(created);
    assert.equal(await created.waitUntilReady(2000), true);
    return { limiter: created, lines, availability };
  }

  before(async () => {
    server = await startRedis();
  });

  after(async () => {
    await Promise.all(limiters.map((l) => l.close()));
    await server?.stop();
  });

  it("admits the burst, counts remaining down, refuses with the same retry-after as the in-memory GCRA", async () => {
    const { limiter: redis } = await limiter();
    const decisions = [];
    for (let i = 0; i < 6; i++) decisions.push(await redis.allow("burst", FIVE_PER_MINUTE));
    assert.deepEqual(decisions.map((d) => [d.allowed, d.remaining]), [[true, 4], [true, 3], [true, 2], [true, 1], [true, 0], [false, 0]]);
    assert.equal(decisions[5]!.retryAfterSeconds, 12);
    assert.equal(decisions[0]!.limit, 5);
  });

  it("stores one key per counter, under the prefix, expiring when the allowance is full again", async () => {
    const { limiter: redis } = await limiter("failOpen", "pfx:");
    await redis.allow("one", { rate: 1, periodMs: 2000, burst: 1 });
    const { Redis } = await import("ioredis");
    const direct = new Redis(server.url);
    try {
      assert.deepEqual(await direct.keys("pfx:*"), ["pfx:one"]);
      const ttl = await direct.pttl("pfx:one");
      assert.ok(ttl > 1000 && ttl <= 2000, `ttl ${ttl}`);
    } finally {
      direct.disconnect();
    }
  });

  it("two limiters (two gateways) share one count", async () => {
    const [{ limiter: a }, { limiter: b }] = [await limiter(), await limiter()];
    const allowed = [];
    for (let i = 0; i < 6; i++) allowed.push((await (i % 2 ? a : b).allow("shared", FIVE_PER_MINUTE)).allowed);
    assert.deepEqual(allowed, [true, true, true, true, true, false]);
  });

  it("counts a cost of n at once and takes refunds like the in-memory GCRA (the failed-login throttle's charges)", async () => {
    const { limiter: redis } = await limiter();
    const memory = new MemoryLimiter();
    const steps: Array<[string, number]> = [["k", 3], ["k", 3], ["k", 2], ["k", 1], ["k", -1], ["k", 1], ["k", 1], ["k", -10], ["k", 5], ["k", 1]];
    const fromRedis = [];
    const fromMemory = [];
    for (const [key, cost] of steps) {
      fromRedis.push(pick(await redis.allow(key, FIVE_PER_MINUTE, cost)));
      fromMemory.push(pick(await memory.allow(key, FIVE_PER_MINUTE, cost)));
    }
    await memory.close();
    assert.deepEqual(fromRedis, fromMemory);
    assert.deepEqual(fromRedis.map(([allowed]) => allowed), [true, false, true, false, true, true, false, true, true, false]);
    // A refund down to a full allowance deletes the key: nothing to keep.
    await redis.allow("gone", FIVE_PER_MINUTE, 1);
    await redis.allow("gone", FIVE_PER_MINUTE, -1);
    const { Redis } = await import("ioredis");
    const direct = new Redis(server.url);
    try {
      assert.equal(await direct.exists("t:gone"), 0);
    } finally {
      direct.disconnect();
    }
  });

  it("answers at once while Redis is down, logs each transition once, and shares again when it is back", async () => {
    const open = await limiter("failOpen");
    const closed = await limiter("failClosed");
    await server.kill();
    const started = performance.now();
    const decisions = [];
    for (let i = 0; i < 20; i++) decisions.push(await open.limiter.allow("down", FIVE_PER_MINUTE));
    await assert.rejects(closed.limiter.allow("down", FIVE_PER_MINUTE), { name: "LimiterUnavailableError" });
    assert.ok(performance.now() - started < 1000, `took ${performance.now() - started} ms`);
    // failOpen decided with the in-memory limiter meanwhile: still a limit, per process.
    assert.equal(decisions.filter((d) => d.allowed).length, 5);
    const downLines = open.lines.filter((l) => /Redis unavailable/.test(l.msg));
    assert.equal(downLines.length, 1, JSON.stringify(open.lines));
    assert.deepEqual(open.availability, [true, false]);

    await server.start();
    await waitFor(() => open.limiter.available && closed.limiter.available, { timeoutMs: 5000, what: "both limiters to reconnect" });
    assert.equal(open.lines.filter((l) => /Redis is back/.test(l.msg)).length, 1);
    assert.deepEqual(open.availability, [true, false, true]);
    const shared = [];
    for (let i = 0; i < 6; i++) shared.push((await (i % 2 ? open : closed).limiter.allow("again", FIVE_PER_MINUTE)).allowed);
    assert.deepEqual(shared, [true, true, true, true, true, false]);
  });

  it("gives up on a Redis that hangs within the command timeout and probes at most once a second", async () => {
    const { limiter: redis, lines } = await limiter("failOpen");
    process.kill(server.process!.pid, "SIGSTOP");
    try {
      const started = performance.now();
      const first = await redis.allow("hung", FIVE_PER_MINUTE);
      const firstMs = performance.now() - started;
      assert.equal(first.allowed, true);
      assert.ok(firstMs >= 200 && firstMs < 600, `first call took ${firstMs} ms (timeout 250 ms)`);
      const second = performance.now();
      for (let i = 0; i < 10; i++) await redis.allow("hung", FIVE_PER_MINUTE);
      assert.ok(performance.now() - second < 50, "no command sent while known to be down");
      assert.equal(lines.filter((l) => /Redis unavailable/.test(l.msg)).length, 1);
    } finally {
      process.kill(server.process!.pid, "SIGCONT");
    }
    await new Promise((resolve) => setTimeout(resolve, 1100));
    await redis.allow("probe", FIVE_PER_MINUTE);
    assert.equal(redis.available, true, "the probe after a second finds Redis again");
  });

  it("starts without Redis (failOpen) and connects when it appears", async () => {
    await server.stop();
    const { logger, lines } = capturingLogger();
    const late = new RedisLimiter({ config: redisSchema.parse({ url: server.url }), fallback: new MemoryLimiter(), logger });
    limiters.push(late);
    assert.equal(await late.waitUntilReady(1000), false);
    assert.equal((await late.allow("early", FIVE_PER_MINUTE)).allowed, true);
    await server.start();
    await waitFor(() => late.available, { timeoutMs: 5000, what: "the limiter to connect" });
    assert.deepEqual(lines.map((l) => l.msg), ["Redis unavailable: counting in process memory meanwhile (failOpen)", "Redis is back: rate limits are shared again"]);
  });
});

function pick(decision: { allowed: boolean; remaining: number; retryAfterSeconds: number }): [boolean, number, number] {
  return [decision.allowed, decision.remaining, decision.retryAfterSeconds];
}
