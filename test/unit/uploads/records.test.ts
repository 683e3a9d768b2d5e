// Where an upload stands is kept with its session record, in memory and in Redis alike: written at the start,
// moved by the backend's answers, gone with the session (finished, cancelled, evicted or idle), and never
// recreated for a session that is gone.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Redis } from "ioredis";
import { MemoryAffinity, type UploadAffinity, type UploadKey } from "../../../src/backends/affinity.js";
import { RedisAffinity } from "../../../src/backends/affinity-redis.js";
import { redis as redisSchema } from "../../../src/config/schema.js";
import { capturingLogger } from "../../helpers/logs.js";
import { waitFor } from "../../helpers/process.js";
import { startRedis, type RedisServer } from "../../helpers/redis.js";

const MEMBER = "http://127.0.0.1:5000";
const OWNER = '["hub","user","alice"]';
const START = { offset: 0, location: "/v2/alice/app/blobs/uploads/u?_state=a" };
const AFTER_CHUNK = { offset: 10, location: "/v2/alice/app/blobs/uploads/u?_state=b" };

function key(uuid: string, overrides: Partial<UploadKey> = {}): UploadKey {
  return { pool: "hub", repository: "alice/app", uuid, owner: OWNER, ...overrides };
}

/** The rules every store keeps; `store(perUser)` makes a fresh one. */
function recordRules(store: (perUser: number) => Promise<UploadAffinity>) {
  it("keeps the progress from the start and moves it with the backend's answers", async () => {
    const records = await store(8);
    await records.remember(key("u1"), MEMBER, START);
    assert.deepEqual(await records.record(key("u1")), { member: MEMBER, progress: START });
    await records.advance(key("u1"), AFTER_CHUNK);
    assert.deepEqual(await records.record(key("u1")), { member: MEMBER, progress: AFTER_CHUNK });
    assert.equal(await records.lookup(key("u1")), MEMBER);
  });

  it("is the owner's alone: another owner or repository finds no record", async () => {
    const records = await store(8);
    await records.remember(key("u2"), MEMBER, START);
    assert.equal(await records.record(key("u2", { owner: '["hub","user","bob"]' })), null);
    assert.equal(await records.record(key("u2", { repository: "bob/app" })), null);
  });

  it("forgets the progress with the session, and an advance does not bring a forgotten session back", async () => {
    const records = await store(8);
    await records.remember(key("u3"), MEMBER, START);
    await records.forget(key("u3"));
    await records.advance(key("u3"), AFTER_CHUNK);
    assert.equal(await records.record(key("u3")), null);
  });

  it("drops an evicted session's progress: a new session of the same id starts with none", async () => {
    const records = await store(1);
    await records.remember(key("u4"), MEMBER, AFTER_CHUNK);
    await records.remember(key("u5"), MEMBER, START);
    assert.equal(await records.record(key("u4")), null, "the owner's oldest session went for the new one");
    await records.remember(key("u4"), MEMBER);
    assert.deepEqual(await records.record(key("u4")), { member: MEMBER });
  });
}

describe("upload records in memory", () => {
  recordRules(async (perUser) => new MemoryAffinity({ limits: { perUser, idleMs: 60_000 } }));

  it("an idle session's record goes with it", async () => {
    let now = 0;
    const records = new MemoryAffinity({ limits: { perUser: 8, idleMs: 1000 }, now: () => now });
    await records.remember(key("idle"), MEMBER, START);
    now = 1000;
    await records.advance(key("idle"), AFTER_CHUNK);
    assert.equal(await records.record(key("idle")), null);
  });
});

describe("upload records in Redis", () => {
  let server: RedisServer;
  const opened: RedisAffinity[] = [];
  let prefixes = 0;

  async function store(perUser: number): Promise<RedisAffinity> {
    const config = redisSchema.parse({ url: server.url, keyPrefix: `r${prefixes++}:` });
    const records = new RedisAffinity(config, capturingLogger().logger, { limits: { perUser, idleMs: 60_000 } });
    opened.push(records);
    await waitFor(() => records.available, { timeoutMs: 2000, intervalMs: 10, what: "Redis to connect" });
    return records;
  }

  before(async () => {
    server = await startRedis();
  });

  after(async () => {
    await Promise.all(opened.map((records) => records.close()));
    await server?.stop();
  });

  recordRules(store);

  it("a session started in the same millisecond as the one it pushes out is kept, whatever the names' order", async () => {
    const records = await store(1);
    // Redis orders sessions of equal start time by name: "a…" sorts before "b…". Many quick pairs make
    // same-millisecond starts certain to occur.
    for (let i = 0; i < 40; i++) {
      await records.remember(key(`b${i}`), MEMBER);
      await records.remember(key(`a${i}`), MEMBER);
      assert.deepEqual(await records.record(key(`a${i}`)), { member: MEMBER }, `pair ${i}: the newer session was forgotten`);
      assert.equal(await records.record(key(`b${i}`)), null, `pair ${i}: the older session stayed`);
    }
  });

  it("two gateways share where an upload stands; the record expires with the session", async () => {
    const a = await store(8);
    const b = new RedisAffinity(redisSchema.parse({ url: server.url, keyPrefix: `r${prefixes - 1}:` }), capturingLogger().logger, { limits: { perUser: 8, idleMs: 60_000 } });
    opened.push(b);
    // Commands fail fast until the connection is up (no offline queue): wait for it, as store() does.
    await waitFor(() => b.available, { timeoutMs: 2000, intervalMs: 10, what: "the second gateway's Redis to connect" });
    await a.remember(key("shared"), MEMBER, START);
    await a.advance(key("shared"), AFTER_CHUNK);
    assert.deepEqual(await b.record(key("shared")), { member: MEMBER, progress: AFTER_CHUNK });
    const direct = new Redis(server.url);
    try {
      const progressKey = `r${prefixes - 1}:upload:{${OWNER}}:hub:alice/app:shared#progress`;
      const ttl = await direct.pttl(progressKey);
      assert.ok(ttl > 59_000 && ttl <= 60_000, `ttl of ${progressKey}: ${ttl}`);
      await b.forget(key("shared"));
      assert.equal(await direct.exists(progressKey), 0, "forgotten with its session");
      const one = await store(1);
      await one.remember(key("evicted"), MEMBER, AFTER_CHUNK);
      await one.remember(key("newer"), MEMBER, START);
      const evicted = `r${prefixes - 1}:upload:{${OWNER}}:hub:alice/app:evicted#progress`;
      assert.equal(await direct.exists(evicted), 0, "evicted with its session");
    } finally {
      direct.disconnect();
    }
  });
});
