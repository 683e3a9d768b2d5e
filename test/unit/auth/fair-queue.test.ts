// The hashing queue is fair between clients: round robin, a quiet client goes first, a per-client bound
// that refuses only the client over it, and a full queue that pushes out the busiest client's newest check
// rather than refuse a newcomer. Then the same through the real HashPool: resolution order of real checks.
import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import bcrypt from "bcryptjs";
import { FairQueue } from "../../../src/auth/fair-queue.js";
import { HashPool, HashPoolFullError } from "../../../src/auth/hash-pool.js";

/** Takes everything that can run, finishing each at once: the order the queue serves in. */
function serveAll(queue: FairQueue<string>): string[] {
  const order: string[] = [];
  for (let next = queue.next(); next; next = queue.next()) {
    order.push(next.item);
    queue.done(next.key);
  }
  return order;
}

describe("FairQueue", () => {
  it("serves waiting clients in turn, one item each, not first come first served", () => {
    const queue = new FairQueue<string>({ slots: 1, maxQueued: 100, maxQueuedPerClient: 100 });
    assert.ok(queue.push("a", ["a0"]).admitted);
    assert.equal(queue.next()?.item, "a0", "a free slot is used at once");
    for (let i = 1; i <= 4; i++) assert.ok(queue.push("a", [`a${i}`]).admitted);
    for (let i = 0; i < 2; i++) assert.ok(queue.push("b", [`b${i}`]).admitted);
    queue.done("a");
    // b arrived with nothing pending: its first item goes ahead, then turns.
    assert.deepEqual(serveAll(queue), ["b0", "a1", "b1", "a2", "a3", "a4"]);
    assert.deepEqual([queue.waiting, queue.running], [0, 0]);
  });

  it("a client with nothing pending waits only for what runs, not for a round of every busy client", () => {
    const queue = new FairQueue<string>({ slots: 2, maxQueued: 100, maxQueuedPerClient: 8 });
    const running: string[] = [];
    /** As the pool does: whatever can run starts at once. */
    const pump = () => {
      for (let next = queue.next(); next; next = queue.next()) running.push(next.key);
    };
    const finishOne = () => {
      queue.done(running.shift()!);
      pump();
    };
    for (let i = 0; i < 8; i++) for (const client of ["x", "y", "z"]) (queue.push(client, [`${client}${i}`]), pump());
    // Each flooding client had its first turn; now all three are busy, taking turns.
    while (["x", "y", "z"].some((client) => queue.waitingFor(client) > 6)) finishOne();
    assert.deepEqual([queue.waitingFor("x"), queue.waitingFor("y"), queue.waitingFor("z")], [6, 6, 6]);
    // A login whose check is two hashes (the user's line and the dummy): both go next.
    assert.ok(queue.push("legit", ["legit-user", "legit-dummy"]).admitted);
    finishOne();
    finishOne();
    assert.deepEqual(running.slice(-2), ["legit", "legit"]);
  });

  it("a client over its own bound is refused; others are not", () => {
    const queue = new FairQueue<string>({ slots: 1, maxQueued: 100, maxQueuedPerClient: 3 });
    queue.push("flood", ["running"]);
    queue.next();
    for (let i = 0; i < 3; i++) assert.ok(queue.push("flood", [`f${i}`]).admitted);
    assert.deepEqual(queue.push("flood", ["f3"]), { admitted: false, reason: "client" });
    assert.deepEqual(queue.push("other", ["o0", "o1"]), { admitted: true, pushedOut: [] });
    assert.equal(queue.waitingFor("flood"), 3);
    assert.equal(queue.waitingFor("other"), 2);
  });

  it("a full queue pushes out the busiest client's newest item for a client with fewer waiting, never an equal share", () => {
    const queue = new FairQueue<string>({ slots: 1, maxQueued: 6, maxQueuedPerClient: 6 });
    queue.push("busy", ["running"]);
    queue.next();
    for (let i = 0; i < 5; i++) queue.push("busy", [`b${i}`]);
    queue.push("mid", ["m0"]);
    assert.equal(queue.waiting, 6);
    assert.deepEqual(queue.push("new", ["n0"]), { admitted: true, pushedOut: [{ key: "busy", item: "b4" }] });
    assert.deepEqual(queue.push("new", ["n1"]), { admitted: true, pushedOut: [{ key: "busy", item: "b3" }] });
    // busy 3, new 2, mid 1: pushing out busy again would leave it fewer than new would have.
    assert.deepEqual(queue.push("new", ["n2"]), { admitted: false, reason: "full" });
    assert.deepEqual(queue.push("new", ["n2", "n3"]), { admitted: false, reason: "full" });
    assert.deepEqual(queue.push("mid", ["m1"]), { admitted: true, pushedOut: [{ key: "busy", item: "b2" }] });
    assert.deepEqual([queue.waitingFor("busy"), queue.waitingFor("new"), queue.waitingFor("mid")], [2, 2, 2]);
    assert.equal(queue.waiting, 6);
  });

  it("a suspect client is served after everyone else and never takes the last free slot", () => {
    const queue = new FairQueue<string>({ slots: 2, maxQueued: 100, maxQueuedPerClient: 8 });
    for (let i = 0; i < 4; i++) assert.ok(queue.push("flood", [`f${i}`], true).admitted);
    assert.equal(queue.next()?.item, "f0");
    assert.equal(queue.next(), undefined, "the second slot stays free");
    assert.ok(queue.push("legit", ["l0"]).admitted);
    assert.deepEqual(queue.next(), { key: "legit", item: "l0" }, "a login runs at once on the slot kept free");
    queue.done("flood");
    assert.ok(queue.push("other", ["o0"]).admitted);
    assert.equal(queue.next()?.item, "o0", "anyone else waiting goes before the suspect's next check");
    queue.done("legit");
    queue.done("other");
    assert.deepEqual(serveAll(queue), ["f1", "f2", "f3"]);
    // With a single slot there is nothing to keep free: the suspect still runs when nobody else waits.
    const single = new FairQueue<string>({ slots: 1, maxQueued: 10, maxQueuedPerClient: 10 });
    single.push("flood", ["f0", "f1"], true);
    single.push("legit", ["l0"]);
    assert.deepEqual(serveAll(single), ["l0", "f0", "f1"]);
  });

  it("forgets a client once nothing of it waits or runs", () => {
    const queue = new FairQueue<string>({ slots: 1, maxQueued: 10, maxQueuedPerClient: 10 });
    queue.push("a", ["a0", "a1"]);
    assert.deepEqual(serveAll(queue), ["a0", "a1"]);
    // Nothing pending: a's next item is a newcomer's again, ahead of b's turns.
    queue.push("b", ["b0"]);
    queue.next();
    queue.push("b", ["b1", "b2"]);
    queue.push("a", ["a2"]);
    queue.done("b");
    assert.deepEqual(serveAll(queue), ["a2", "b1", "b2"]);
    assert.deepEqual(queue.drain(), []);
  });
});

describe("HashPool with clients", () => {
  const pools: HashPool[] = [];
  after(() => Promise.all(pools.map((pool) => pool.close())));

  it("a check from a quiet client finishes before a flooding client's queued checks, which only it is refused beyond", async () => {
    const pool = new HashPool({ threads: 1, maxQueued: 64, maxQueuedPerClient: 4 });
    pools.push(pool);
    const hash = await bcrypt.hash("secret", 8);
    const finished: string[] = [];
    const track = (name: string, check: Promise<boolean>) => check.then((ok) => (finished.push(name), ok));
    const flood = Array.from({ length: 5 }, (_, i) => track(`flood-${i}`, pool.compare("guess", hash, { key: "10.0.0.2/32" })));
    assert.deepEqual([pool.running, pool.queued], [1, 4]);
    await assert.rejects(pool.compare("guess", hash, { key: "10.0.0.2/32" }), HashPoolFullError, "over its own share");
    const legit = track("legit", pool.compare("secret", hash, { key: "10.0.0.4/32" }));
    assert.equal(await legit, true);
    assert.deepEqual(await Promise.all(flood), [false, false, false, false, false]);
    assert.deepEqual(finished, ["flood-0", "legit", "flood-1", "flood-2", "flood-3", "flood-4"]);
  });

  it("a check that loses its place is refused, with the rest of its batch", async () => {
    const pool = new HashPool({ threads: 1, maxQueued: 3, maxQueuedPerClient: 3 });
    pools.push(pool);
    const hash = await bcrypt.hash("secret", 6);
    const running = pool.compare("secret", hash, { key: "a" });
    const single = pool.compare("z", hash, { key: "a" });
    const batch = pool.compareAll(
      [
        { password: "x", hash },
        { password: "y", hash },
      ],
      { key: "a" },
    );
    const refused = assert.rejects(batch, HashPoolFullError);
    assert.equal(await pool.compare("secret", hash, { key: "b" }), true, "b took the place of a's newest");
    await refused;
    assert.deepEqual(await Promise.all([running, single]), [true, false]);
    assert.deepEqual([pool.running, pool.queued], [0, 0]);
  });
});
