// The process-level pool: one resource per kind and settings, shared by every holder, closed with its last lease.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { LeaseSet, ResourcePool, resourceKey } from "../../../src/process/resources.js";

/** A resource that records whether it was closed. */
class Counter {
  closed = 0;
  count = 0;
  close(): void {
    this.closed++;
  }
}

describe("ResourcePool", () => {
  test("the same kind and settings share one resource; it is closed when the last lease is released", async () => {
    const pool = new ResourcePool();
    let created = 0;
    const make = () => (created++, new Counter());
    const a = pool.acquire("counters", { rate: 1, per: 60_000 }, make);
    const b = pool.acquire("counters", { per: 60_000, rate: 1 }, make);
    assert.equal(a.value, b.value, "settings in another order are the same settings");
    assert.equal(created, 1);
    a.value.count = 5;
    await a.release();
    await a.release(); // idempotent: does not take b's lease away
    assert.equal(b.value.closed, 0, "still leased by b");
    assert.equal(pool.size("counters"), 1);
    await b.release();
    assert.equal(b.value.closed, 1, "the last lease closes it, once");
    assert.equal(pool.size(), 0);
    const c = pool.acquire("counters", { rate: 1, per: 60_000 }, make);
    assert.equal(c.value.count, 0, "after the last lease a new one starts afresh");
    assert.equal(created, 2);
  });

  test("different settings or kinds are separate resources", async () => {
    const pool = new ResourcePool();
    const one = pool.acquire("counters", { rate: 1 }, () => new Counter());
    const other = pool.acquire("counters", { rate: 2 }, () => new Counter());
    const kind = pool.acquire("agents", { rate: 1 }, () => new Counter());
    assert.notEqual(one.value, other.value);
    assert.notEqual(one.value, kind.value);
    assert.equal(pool.size("counters"), 2);
    await one.release();
    assert.equal(one.value.closed, 1);
    assert.equal(other.value.closed, 0, "releasing one closes no other");
    await Promise.all([other.release(), kind.release()]);
  });

  test("a resource that failed to open is not kept: the next acquire tries again", async () => {
    const pool = new ResourcePool();
    const failed = pool.acquire("redis", { url: "redis://127.0.0.1:1" }, () => Promise.reject<Counter>(new Error("refused")));
    await assert.rejects(failed.value, /refused/);
    await failed.release();
    const next = pool.acquire("redis", { url: "redis://127.0.0.1:1" }, () => Promise.resolve(new Counter()));
    assert.equal((await next.value).count, 0);
    await next.release();
    assert.equal((await next.value).closed, 1, "a resource behind a promise is closed once it is open");
  });

  test("canonical keys: URLs by text, maps by entries, undefined left out", () => {
    assert.equal(resourceKey("k", { url: new URL("http://a/"), x: undefined }), resourceKey("k", { url: "http://a/" }));
    assert.equal(resourceKey("k", new Map([["b", 1], ["a", 2]])), resourceKey("k", new Map([["a", 2], ["b", 1]])));
    assert.notEqual(resourceKey("k", { a: 1 }), resourceKey("j", { a: 1 }));
  });
});

describe("LeaseSet", () => {
  test("a holder built and discarded gives back what it took; what another holder shares stays open", async () => {
    const pool = new ResourcePool();
    const running = new LeaseSet(pool);
    const shared = running.take("agents", { idle: 1 }, () => new Counter());
    const discarded = new LeaseSet(pool);
    assert.equal(discarded.take("agents", { idle: 1 }, () => new Counter()), shared);
    const own = discarded.take("counters", { rate: 3 }, () => new Counter());
    await discarded.releaseAll();
    assert.equal(own.closed, 1, "only the discarded holder used it");
    assert.equal(shared.closed, 0, "the running holder still uses it");
    assert.throws(() => discarded.take("agents", { idle: 1 }, () => new Counter()), /gave its resources back/);
    await running.releaseAll();
    assert.equal(shared.closed, 1);
    assert.equal(pool.size(), 0);
  });

  test("a lease given back early is not given back twice", async () => {
    const pool = new ResourcePool();
    const first = new LeaseSet(pool);
    const second = new LeaseSet(pool);
    const early = first.acquire("checks", { origin: "http://a" }, () => new Counter());
    second.take("checks", { origin: "http://a" }, () => new Counter());
    await early.release();
    await first.releaseAll();
    assert.equal(early.value.closed, 0, "the second holder's lease keeps it open");
    await second.releaseAll();
    assert.equal(early.value.closed, 1);
  });
});
