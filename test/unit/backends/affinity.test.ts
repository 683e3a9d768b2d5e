// Which replica holds an upload session: in memory (one owner's sessions apart from everyone else's, at most
// perUser of them, forgotten when idle) and shared through a real redis-server (two gateways see each
// other's sessions under the same bounds; a Redis that goes away does not break uploads this gateway
// started, and one it cannot place is refused rather than guessed).
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { Redis } from "ioredis";
import { AffinityUnavailableError, createUploadAffinity, MemoryAffinity, type UploadKey, type UploadLimits } from "../../../src/backends/affinity.js";
import { RedisAffinity } from "../../../src/backends/affinity-redis.js";
import { uploadOwner } from "../../../src/backends/dispatch.js";
import { redis as redisSchema } from "../../../src/config/schema.js";
import { createLogger } from "../../../src/observe/log.js";
import { waitFor } from "../../helpers/process.js";
import { startRedis, type RedisServer } from "../../helpers/redis.js";
import { capturingLogger } from "../../helpers/logs.js";

const R1 = "http://10.0.0.1:5000";
const R2 = "http://10.0.0.2:5000";
const ALICE = '["hub","user","alice"]';
const BOB = '["hub","user","bob"]';

/** A KEYS pattern matching `text` literally (owners are JSON: brackets). */
function glob(text: string): string {
  return text.replace(/[[\]*?\\]/g, "\\$&");
}

/** alice's session `uuid` in pool hub, repository alice/app, unless told otherwise. */
function key(uuid: string, overrides: Partial<UploadKey> = {}): UploadKey {
  return { pool: "hub", repository: "alice/app", uuid, owner: ALICE, ...overrides };
}

describe("MemoryAffinity", () => {
  function onClock(options: { limits?: Partial<UploadLimits>; maxEntries?: number } = {}) {
    let now = 1_000_000;
    const limits = { perUser: 64, idleMs: 3_600_000, ...options.limits };
    const affinity = new MemoryAffinity({ limits, maxEntries: options.maxEntries, now: () => now });
    return { affinity, advance: (ms: number) => (now += ms) };
  }

  it("finds a session only under its own pool, repository and owner", async () => {
    const { affinity } = onClock();
    await affinity.remember(key("u1"), R1);
    await affinity.remember(key("u1", { pool: "team" }), R2);
    assert.equal(await affinity.lookup(key("u1")), R1);
    assert.equal(await affinity.lookup(key("u1", { pool: "team" })), R2);
    assert.equal(await affinity.lookup(key("u2")), null);
    assert.equal(await affinity.lookup(key("u1", { repository: "bob/app" })), null, "another repository");
    assert.equal(await affinity.lookup(key("u1", { owner: BOB })), null, "another user");
    assert.equal(await affinity.lookup(key("u1", { owner: '["team","user","alice"]' })), null, "alice of another site");
    await affinity.forget(key("u1"));
    assert.equal(await affinity.lookup(key("u1")), null);
    assert.equal(await affinity.lookup(key("u1", { pool: "team" })), R2);
  });

  it("another user's forget, or one under another repository, leaves the session", async () => {
    const { affinity } = onClock();
    await affinity.remember(key("u1"), R1);
    await affinity.forget(key("u1", { owner: BOB }));
    await affinity.forget(key("u1", { owner: BOB, repository: "bob/app" }));
    await affinity.forget(key("u1", { repository: "alice/other" }));
    assert.equal(await affinity.lookup(key("u1")), R1);
  });

  it("forgets a session unused for idleMs; each lookup counts as a use (default: an hour)", async () => {
    const { affinity, advance } = onClock({ limits: { idleMs: 1000 } });
    await affinity.remember(key("u1"), R1);
    advance(999);
    assert.equal(await affinity.lookup(key("u1")), R1, "used: idle from now on");
    advance(999);
    assert.equal(await affinity.lookup(key("u1")), R1, "1998 ms after it started, 999 ms after its last use");
    advance(1000);
    assert.equal(await affinity.lookup(key("u1")), null);
    assert.deepEqual(new MemoryAffinity().limits, { perUser: 64, idleMs: 3_600_000 });
  });

  it("another user's lookups do not keep a session alive", async () => {
    const { affinity, advance } = onClock({ limits: { idleMs: 1000 } });
    await affinity.remember(key("u1"), R1);
    for (let i = 0; i < 4; i++) {
      advance(400);
      assert.equal(await affinity.lookup(key("u1", { owner: BOB })), null);
    }
    assert.equal(await affinity.lookup(key("u1")), null);
  });

  it("prunes idle sessions without being asked for them", async () => {
    const { affinity, advance } = onClock({ limits: { idleMs: 1000 } });
    for (let i = 0; i < 10; i++) await affinity.remember(key(`old${i}`, { owner: i % 2 ? ALICE : BOB }), R1);
    advance(1000);
    await affinity.remember(key("new"), R2);
    assert.equal(affinity.size, 1);
    assert.equal(affinity.sizeOf(BOB), 0);
  });

  it("holds at most perUser sessions per owner: a new one forgets that owner's least recently used, never another's", async () => {
    const { affinity } = onClock({ limits: { perUser: 3 } });
    await affinity.remember(key("alice-1"), R1);
    for (const uuid of ["a", "b", "c"]) await affinity.remember(key(uuid, { owner: BOB, repository: "bob/app" }), R2);
    assert.equal(await affinity.lookup(key("a", { owner: BOB, repository: "bob/app" })), R2); // used: b is now bob's least recently used
    for (let i = 0; i < 1000; i++) await affinity.remember(key(`flood-${i}`, { owner: BOB, repository: "bob/app" }), R2);
    assert.equal(affinity.sizeOf(BOB), 3);
    assert.equal(affinity.size, 4);
    assert.equal(await affinity.lookup(key("alice-1")), R1, "alice's session outlives bob's flood");
    await affinity.remember(key("alice-2"), R1);
    await affinity.remember(key("alice-3"), R1);
    assert.equal(await affinity.lookup(key("alice-1")), R1); // alice-2 is now her least recently used
    await affinity.remember(key("alice-4"), R1);
    assert.deepEqual(
      await Promise.all(["alice-1", "alice-2", "alice-3", "alice-4"].map((uuid) => affinity.lookup(key(uuid)))),
      [R1, null, R1, R1],
    );
  });

  it("at maxEntries named sessions, a named user's new start is refused before anything of theirs is forgotten; one at perUser replaces their own", async () => {
    const { affinity } = onClock({ limits: { perUser: 2 }, maxEntries: 3 });
    assert.equal(affinity.set(key("a1"), R1), true);
    assert.equal(affinity.set(key("b1", { owner: BOB }), R1), true);
    assert.equal(affinity.set(key("b2", { owner: BOB }), R1), true);
    assert.equal(await affinity.admits(key("a2")), false, "alice is below perUser: a new session of hers would exceed the bound");
    assert.equal(await affinity.remember(key("a2"), R1), false);
    assert.equal(affinity.get(key("a1")), R1, "the refused start cost alice no open session");
    assert.equal(await affinity.admits(key("b3", { owner: BOB })), true, "bob's own oldest makes room");
    assert.equal(affinity.set(key("b3", { owner: BOB }), R2), true);
    assert.deepEqual(
      ["a1", "a2", "b1", "b2", "b3"].map((uuid) => affinity.get(key(uuid, uuid.startsWith("b") ? { owner: BOB } : {}))),
      [R1, null, null, R1, R2],
    );
  });

  it("anonymous sessions share one pool of maxAnonymous that forgets its least recently used: a flood from many addresses never crowds out a named user", async () => {
    const affinity = new MemoryAffinity({ limits: { perUser: 64, idleMs: 3_600_000 }, maxEntries: 3, maxAnonymous: 4 });
    const anonymous = (i: number) => key(`anon-${i}`, { owner: uploadOwner("hub", undefined, `10.9.${i >> 8}.${i & 255}`), anonymous: true });
    assert.equal(affinity.set(key("a1"), R1), true);
    for (let i = 0; i < 1000; i++) {
      assert.equal(await affinity.admits(anonymous(i)), true, `anonymous start ${i}`);
      assert.equal(await affinity.remember(anonymous(i), R2), true, `anonymous start ${i}`);
    }
    assert.equal(affinity.anonymousSize, 4);
    assert.deepEqual([995, 996, 999].map((i) => affinity.get(anonymous(i))), [null, R2, R2], "the most recent four are kept");
    for (const uuid of ["a2", "a3"]) assert.equal(affinity.set(key(uuid), R1), true, `alice's ${uuid} after the flood`);
    assert.deepEqual(["a1", "a2", "a3"].map((uuid) => affinity.get(key(uuid))), [R1, R1, R1]);
    assert.equal(affinity.size, 7);
  });

  it("an anonymous owner holds at most perUser sessions of the pool", async () => {
    const { affinity } = onClock({ limits: { perUser: 2 } });
    const owner = uploadOwner("hub", undefined, "10.0.0.9");
    for (const uuid of ["x", "y", "z"]) assert.equal(affinity.set(key(uuid, { owner, anonymous: true }), R1), true);
    assert.equal(affinity.sizeOf(owner), 2);
    assert.equal(affinity.get(key("x", { owner, anonymous: true })), null);
  });

  it("the anonymous owner is the client's address, or for IPv6 its /64: one client's many addresses are one owner", () => {
    const owner = (address: string) => uploadOwner("hub", undefined, address);
    assert.equal(owner("2001:db8:1:2::1"), owner("2001:db8:1:2:ffff:ffff:ffff:fffe"));
    assert.equal(owner("2001:db8:1:2::1"), owner("2001:DB8:1:2:0:0:0:9"));
    assert.notEqual(owner("2001:db8:1:2::1"), owner("2001:db8:1:3::1"));
    assert.equal(owner("::ffff:192.0.2.7"), owner("192.0.2.7"));
    assert.notEqual(owner("192.0.2.7"), owner("192.0.2.8"));
    assert.notEqual(owner("192.0.2.7"), uploadOwner("team", undefined, "192.0.2.7"), "sites are apart");
    assert.notEqual(uploadOwner("hub", "192.0.2.7", "192.0.2.7"), owner("192.0.2.7"), "a user named like an address is not that address");
  });

  it("takes new limits from configure, keeping the sessions it holds", async () => {
    const { affinity } = onClock({ limits: { perUser: 5 } });
    for (const uuid of ["a", "b", "c"]) await affinity.remember(key(uuid), R1);
    affinity.configure({ perUser: 2, idleMs: 3_600_000 });
    assert.equal(await affinity.lookup(key("a")), R1);
    await affinity.remember(key("d"), R1);
    assert.equal(affinity.sizeOf(ALICE), 2);
  });

  it("is what createUploadAffinity gives without Redis", async () => {
    assert.ok((await createUploadAffinity(undefined, createLogger({ level: "silent", format: "json" }))) instanceof MemoryAffinity);
  });
});

describe("RedisAffinity on a real redis-server", () => {
  let server: RedisServer;
  const opened: RedisAffinity[] = [];

  async function gateway(limits?: Partial<UploadLimits>) {
    const { logger, lines } = capturingLogger();
    const options = limits ? { limits: { perUser: 64, idleMs: 3_600_000, ...limits } } : {};
    const affinity = new RedisAffinity(redisSchema.parse({ url: server.url, keyPrefix: "t:" }), logger, options);
    opened.push(affinity);
    await waitFor(() => affinity.available, { timeoutMs: 2000, intervalMs: 10, what: "Redis to connect" });
    return { affinity, lines };
  }

  async function withRedis<T>(use: (direct: Redis) => Promise<T>): Promise<T> {
    const direct = new Redis(server.url);
    try {
      return await use(direct);
    } finally {
      direct.disconnect();
    }
  }

  before(async () => {
    server = await startRedis();
  });

  after(async () => {
    await Promise.all(opened.map((a) => a.close()));
    await server?.stop();
  });

  it("two gateways see each other's sessions, stored under the prefix with the idle time", async () => {
    const { affinity: a } = await gateway({ idleMs: 60_000 });
    const { affinity: b } = await gateway({ idleMs: 60_000 });
    await a.remember(key("shared-1"), R2);
    assert.equal(await b.lookup(key("shared-1")), R2);
    assert.equal(await b.lookup(key("shared-1", { pool: "team" })), null, "pools are apart");
    assert.equal(await b.lookup(key("shared-1", { repository: "bob/app" })), null, "repositories are apart");
    assert.equal(await b.lookup(key("shared-1", { owner: BOB })), null, "owners are apart");
    await withRedis(async (direct) => {
      const session = `t:upload:{${ALICE}}:hub:alice/app:shared-1`;
      assert.equal(await direct.get(session), R2);
      for (const name of [session, `t:uploads:{${ALICE}}`]) {
        const ttl = await direct.pttl(name);
        assert.ok(ttl > 59_000 && ttl <= 60_000, `ttl of ${name}: ${ttl}`);
      }
      assert.deepEqual(await direct.zrange(`t:uploads:{${ALICE}}`, 0, -1), [session]);
    });
  });

  it("each lookup by the owner refreshes the idle time in Redis; another user's does not", async () => {
    const { affinity: a } = await gateway({ idleMs: 1500 });
    const { affinity: b } = await gateway({ idleMs: 1500 });
    await a.remember(key("kept"), R1);
    await a.remember(key("left"), R1);
    for (let i = 0; i < 4; i++) {
      await sleep(500);
      assert.equal(await b.lookup(key("kept")), R1, `use ${i + 1}`);
      assert.equal(await b.lookup(key("left", { owner: BOB })), null);
    }
    // 2 s after it started: "left" was never used by its owner, "kept" 500 ms ago.
    const { affinity: c } = await gateway({ idleMs: 1500 });
    assert.equal(await c.lookup(key("left")), null);
    assert.equal(await c.lookup(key("kept")), R1);
  });

  it("holds at most perUser sessions per owner in Redis: one owner's 2000 starts leave another's session and bounded keys", async () => {
    const { affinity: a } = await gateway({ perUser: 5 });
    const { affinity: b } = await gateway({ perUser: 5 });
    const flooder = '["hub","user","flood"]';
    await a.remember(key("alice-1"), R1);
    await Promise.all(Array.from({ length: 2000 }, (_, i) => b.remember(key(`flood-${i}`, { owner: flooder, repository: "flood/app" }), R2)));
    const { affinity: c } = await gateway({ perUser: 5 });
    assert.equal(await c.lookup(key("alice-1")), R1);
    await withRedis(async (direct) => {
      assert.equal((await direct.keys(`t:upload:{${glob(flooder)}}:*`)).length, 5);
      assert.equal(await direct.zcard(`t:uploads:{${flooder}}`), 5);
    });
    // The 5 kept are the most recent ones.
    assert.equal(await c.lookup(key("flood-1999", { owner: flooder, repository: "flood/app" })), R2);
    assert.equal(await c.lookup(key("flood-0", { owner: flooder, repository: "flood/app" })), null);
  });

  it("forget removes the session from Redis, for gateways that have not seen it, and from its own memory; another user's forget does nothing", async () => {
    const { affinity: a } = await gateway();
    const { affinity: b } = await gateway();
    await a.remember(key("done-1"), R1);
    await a.forget(key("done-1"));
    assert.equal(await a.lookup(key("done-1")), null);
    assert.equal(await b.lookup(key("done-1")), null);
    // Finished through another gateway than the one that started it (PUT via b).
    await a.remember(key("done-2"), R2);
    await b.forget(key("done-2"));
    assert.equal(await b.lookup(key("done-2")), null);
    const { affinity: c } = await gateway();
    assert.equal(await c.lookup(key("done-2")), null);
    await a.remember(key("kept"), R1);
    await b.forget(key("kept", { owner: BOB }));
    await b.forget(key("kept", { owner: BOB, repository: "bob/app" }));
    assert.equal(await c.lookup(key("kept")), R1);
    await withRedis(async (direct) => {
      assert.deepEqual(await direct.keys(`t:upload:*done-*`), []);
      const alices = await direct.zrange(`t:uploads:{${ALICE}}`, 0, -1);
      assert.ok(alices.includes(`t:upload:{${ALICE}}:hub:alice/app:kept`), alices.join(" "));
      assert.deepEqual(alices.filter((name) => name.includes("done-")), []);
    });
  });

  it("anonymous sessions share one pool of maxAnonymous in Redis: a flood from many addresses leaves a named user's session, and the newest anonymous ones", async () => {
    const { logger } = capturingLogger();
    const limits = { perUser: 2, idleMs: 3_600_000 };
    const pooled = async () => {
      const affinity = new RedisAffinity(redisSchema.parse({ url: server.url, keyPrefix: "p:" }), logger, { limits, maxAnonymous: 4 });
      opened.push(affinity);
      await waitFor(() => affinity.available, { timeoutMs: 2000, intervalMs: 10, what: "Redis to connect" });
      return affinity;
    };
    const [a, b] = await Promise.all([pooled(), pooled()]);
    const anonymous = (i: number) => key(`anon-${i}`, { owner: uploadOwner("hub", undefined, `2001:db8:${i.toString(16)}::1`), anonymous: true });
    await a.remember(key("alice-1"), R1);
    await Promise.all(Array.from({ length: 200 }, (_, i) => b.remember(anonymous(i), R2)));
    await b.remember(anonymous(200), R2); // the last, alone: the four kept are 197–200
    await b.remember(key("x", { ...anonymous(200), uuid: "anon-200-again" }), R2); // perUser 2 of that /64 (anon-200 and this)
    const c = await pooled();
    assert.equal(await c.lookup(key("alice-1")), R1, "the named session outlives the anonymous flood");
    assert.equal(await c.lookup(anonymous(200)), R2);
    assert.equal(await c.lookup(anonymous(0)), null, "the oldest anonymous sessions made room");
    await withRedis(async (direct) => {
      assert.equal(await direct.zcard("p:uploads-pool:{anonymous}"), 4);
      assert.equal(await direct.hlen("p:uploads-pool-owner:{anonymous}"), 4);
      assert.equal((await direct.keys("p:upload:{anonymous}*")).length, 4, "session keys beyond the pool were deleted");
      const sets = await direct.keys("p:uploads:{anonymous}*");
      let held = 0;
      for (const set of sets) held += await direct.zcard(set);
      assert.equal(held, 4, "evicted sessions left their owners' sets too");
    });
    await c.forget(anonymous(200));
    await withRedis(async (direct) => assert.equal(await direct.zcard("p:uploads-pool:{anonymous}"), 3));
  });

  it("a session Redis no longer holds is unknown to every gateway, the one that started it too", async () => {
    const { affinity: a } = await gateway();
    const { affinity: b } = await gateway({ perUser: 1 });
    await a.remember(key("dropped"), R1);
    await a.remember(key("bounded"), R1);
    await withRedis((direct) => direct.del(`t:upload:{${ALICE}}:hub:alice/app:dropped`));
    assert.equal(await a.lookup(key("dropped")), null, "the starting gateway's memory does not outlive Redis's answer");
    // b's perUser of 1 forgets alice's oldest in Redis: a must not go on placing it from memory.
    await b.remember(key("newest"), R2);
    assert.equal(await a.lookup(key("bounded")), null);
    assert.equal(await a.lookup(key("newest")), R2);
  });

  it("with Redis gone, places the sessions it knows, refuses the ones it does not, and logs the outage once", async () => {
    const { affinity: a, lines } = await gateway();
    const { affinity: b } = await gateway();
    await a.remember(key("mine"), R1);
    await b.remember(key("seen"), R2);
    assert.equal(await a.lookup(key("seen")), R2, "looked up while Redis was there");
    await b.remember(key("theirs"), R2);
    await server.kill();

    const started = performance.now();
    assert.equal(await a.lookup(key("mine")), R1);
    assert.equal(await a.lookup(key("seen")), R2, "kept from the earlier lookup");
    await assert.rejects(a.lookup(key("theirs")), AffinityUnavailableError);
    await a.remember(key("during"), R1); // does not throw: this gateway still routes it
    assert.equal(await a.lookup(key("during")), R1);
    await a.forget(key("mine")); // does not throw: the key expires in Redis by itself
    await assert.rejects(a.lookup(key("mine")), AffinityUnavailableError, "forgotten here, and Redis cannot tell");
    assert.ok(performance.now() - started < 1000, `took ${performance.now() - started} ms`);
    assert.equal(lines.filter((l) => /Redis unavailable/.test(l.msg)).length, 1, JSON.stringify(lines));
    assert.doesNotMatch(JSON.stringify(lines), /redis:\/\//, "no Redis URL (it may hold a password) in the log");

    await server.start();
    await waitFor(() => a.available && b.available, { timeoutMs: 5000, what: "reconnect" });
    await a.remember(key("after"), R1);
    assert.equal(await b.lookup(key("after")), R1);
  });
});
