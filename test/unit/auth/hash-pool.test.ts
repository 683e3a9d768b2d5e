// Runs alone: asserts that the event loop keeps pace while threads hash, which a neighbour's load breaks.
// Bcrypt checks on worker threads — right answers for what `htpasswd -B` writes, never more
// checks at once than threads, a bounded queue that refuses beyond it, and an event loop that keeps going.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import bcrypt from "bcryptjs";
import { HashPool, HashPoolFullError, hashThreads } from "../../../src/auth/hash-pool.js";
import { run } from "../../helpers/process.js";

/** The hash part of one `user:hash` line from the real htpasswd command. */
async function htpasswdHash(cost: number, password: string): Promise<string> {
  const result = await run("htpasswd", ["-nbB", "-C", String(cost), "u", password]);
  assert.equal(result.code, 0, result.stderr);
  return result.stdout.trim().slice("u:".length);
}

/** Samples a pool's counters until `work` settles; returns the highest seen. */
async function peakWhile<T>(pool: HashPool, work: Promise<T>): Promise<{ result: T; running: number; size: number }> {
  let running = 0;
  let size = 0;
  let done = false;
  const settled = work.finally(() => (done = true));
  while (!done) {
    running = Math.max(running, pool.running);
    size = Math.max(size, pool.size);
    await sleep(1);
  }
  return { result: await settled, running, size };
}

describe("HashPool", () => {
  const pools: HashPool[] = [];
  const pool = (threads: number, maxQueued: number) => {
    const created = new HashPool({ threads, maxQueued });
    pools.push(created);
    return created;
  };
  const hashes = new Map<number, string>();

  before(async () => {
    for (let cost = 4; cost <= 10; cost++) hashes.set(cost, await htpasswdHash(cost, `pw-${cost}`));
  });

  after(async () => {
    await Promise.all(pools.map((p) => p.close()));
  });

  it("answers right for bcrypt $2y$ from htpasswd -B at every cost 4..10, wrong for anything else", async () => {
    const p = pool(2, 32);
    for (const [cost, hash] of hashes) {
      assert.match(hash, new RegExp(`^\\$2y\\$${String(cost).padStart(2, "0")}\\$`));
      assert.equal(await p.compare(`pw-${cost}`, hash), true, `cost ${cost}, right password`);
      assert.equal(await p.compare(`pw-${cost}x`, hash), false, `cost ${cost}, wrong password`);
      assert.equal(await p.compare("", hash), false, `cost ${cost}, empty password`);
    }
    // A hash the library cannot read simply does not match; the thread survives it.
    assert.equal(await p.compare("pw", "$2y$10$not-a-real-hash"), false);
    assert.equal(await p.compare("pw-4", hashes.get(4)!), true);
  });

  it("never runs more checks at once than it has threads, and runs every one", async () => {
    const p = pool(2, 100);
    const hash = await bcrypt.hash("secret", 8);
    const work = Promise.all(Array.from({ length: 10 }, (_, i) => p.compare(i % 2 ? "secret" : "wrong", hash)));
    const { result, running, size } = await peakWhile(p, work);
    assert.deepEqual(result, Array.from({ length: 10 }, (_, i) => i % 2 === 1));
    assert.equal(size, 2, "threads started");
    assert.equal(running, 2, "checks running at once");
    assert.equal(p.running, 0);
    assert.equal(p.queued, 0);
  });

  it("queues up to maxQueued behind busy threads and refuses the next at once, without waiting", async () => {
    const p = pool(1, 2);
    const hash = hashes.get(10)!;
    const accepted = [p.compare("pw-10", hash), p.compare("x", hash), p.compare("pw-10", hash)];
    assert.equal(p.running, 1);
    assert.equal(p.queued, 2);
    let settled = 0;
    for (const check of accepted) void check.finally(() => settled++);
    await assert.rejects(p.compare("pw-10", hash), HashPoolFullError);
    assert.equal(settled, 0, "refused at once, not after waiting for a thread");
    await assert.rejects(p.compareAll([{ password: "a", hash }]), HashPoolFullError);
    assert.deepEqual(await Promise.all(accepted), [true, false, true]);
    assert.equal(await p.compare("pw-10", hash), true, "room again once the queue drained");
  });

  it("takes a batch whole or not at all", async () => {
    const p = pool(1, 2);
    const hash = hashes.get(8)!;
    const first = p.compare("pw-8", hash);
    await assert.rejects(p.compareAll([{ password: "a", hash }, { password: "b", hash }, { password: "c", hash }]), HashPoolFullError);
    assert.deepEqual([p.running, p.queued], [1, 0], "nothing of the refused batch was started or queued");
    assert.deepEqual(await p.compareAll([{ password: "pw-8", hash }, { password: "b", hash }]), [true, false]);
    assert.equal(await first, true);
  });

  it("keeps the event loop free while checks run", async () => {
    const p = pool(1, 8);
    const hash = await bcrypt.hash("secret", 11);
    let longestGap = 0;
    let last = performance.now();
    const ticker = setInterval(() => {
      const now = performance.now();
      longestGap = Math.max(longestGap, now - last);
      last = now;
    }, 5);
    const started = performance.now();
    try {
      assert.deepEqual(await Promise.all([p.compare("secret", hash), p.compare("nope", hash)]), [true, false]);
    } finally {
      clearInterval(ticker);
    }
    const took = performance.now() - started;
    assert.ok(took > 150, `two cost-11 checks took ${took.toFixed(0)} ms: too fast to show anything`);
    // bcryptjs's own async API would hold the thread in ~100 ms slices.
    assert.ok(longestGap < 60, `the event loop stalled for ${longestGap.toFixed(0)} ms`);
  });

  it("close() refuses what waits and anything after", async () => {
    const p = pool(1, 4);
    const hash = hashes.get(10)!;
    const running = assert.rejects(p.compare("pw-10", hash), /stopped/);
    const waiting = assert.rejects(p.compare("pw-10", hash), /closed/);
    await p.close();
    await Promise.all([running, waiting]);
    await assert.rejects(p.compare("pw-10", hash), /closed/);
  });

  it("idle threads do not keep the process alive", async () => {
    const module = fileURLToPath(new URL("../../../src/auth/hash-pool.ts", import.meta.url));
    const script = [
      `const { HashPool } = await import(${JSON.stringify(module)});`,
      "const pool = new HashPool({ threads: 2, maxQueued: 4 });",
      "const hash = '$2y$04$' + 'a'.repeat(53);",
      "await Promise.all([pool.compare('x', hash), pool.compare('y', hash)]);",
      "console.log('checked', pool.size);",
    ].join("\n");
    const started = performance.now();
    const result = await run(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { timeoutMs: 15_000 });
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout.trim(), "checked 2");
    assert.ok(performance.now() - started < 10_000, "exited by itself");
  });

  it("hashWorkers: auto is one less than the cores, at least one; a number is taken as is", () => {
    assert.ok(hashThreads("auto") >= 1);
    assert.equal(hashThreads(3), 3);
  });
});
