import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { RecentLists } from "../../../src/backends/recent-lists.js";

const settle = () => new Promise((resolve) => setImmediate(resolve));
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A fetch that counts its calls per key and answers `names` names. */
function counting(names: number) {
  const calls = new Map<string, number>();
  return {
    calls,
    fetch: (key: string) => () => {
      calls.set(key, (calls.get(key) ?? 0) + 1);
      return Promise.resolve(Array.from({ length: names }, (_, i) => `${key}-${i}`));
    },
  };
}

describe("cached merged lists (backends/recent-lists.ts)", () => {
  it("with cacheFor 0, a list is shared while in flight and dropped once it settles", async () => {
    const lists = new RecentLists<string, string[]>(0, 1000, (names) => names.length);
    const source = counting(3);
    const both = [lists.get("a", source.fetch("a")), lists.get("a", source.fetch("a"))];
    assert.equal(lists.size, 1);
    await Promise.all(both);
    await settle();
    assert.equal(source.calls.get("a"), 1, "requests in flight share one fetch");
    assert.equal(lists.size, 0, "nothing held once settled");
    assert.equal(lists.names, 0);
  });

  it("expired lists are dropped when another key is asked for, not only when their own is", async () => {
    const lists = new RecentLists<string, string[]>(30, 1000, (names) => names.length);
    const source = counting(5);
    await lists.get("a", source.fetch("a"));
    await lists.get("b", source.fetch("b"));
    await settle();
    assert.equal(lists.names, 10);
    await sleep(40);
    await lists.get("c", source.fetch("c"));
    await settle();
    assert.equal(lists.size, 1, "a and b expired: only c is held");
    assert.equal(lists.names, 5);
  });

  it("holds at most maxNames names, dropping the least recently used lists", async () => {
    const lists = new RecentLists<string, string[]>(60_000, 10, (names) => names.length);
    const source = counting(4);
    await lists.get("a", source.fetch("a"));
    await lists.get("b", source.fetch("b"));
    await settle();
    await lists.get("a", source.fetch("a")); // a is now used more recently than b
    await lists.get("c", source.fetch("c"));
    await settle();
    assert.equal(lists.names, 8, "12 names do not fit in 10: b was dropped");
    await lists.get("a", source.fetch("a"));
    await lists.get("c", source.fetch("c"));
    assert.deepEqual([source.calls.get("a"), source.calls.get("c")], [1, 1], "a and c were kept");
    await lists.get("b", source.fetch("b"));
    assert.equal(source.calls.get("b"), 2, "b was fetched anew");
  });

  it("never keeps a list heavier than maxNames on its own", async () => {
    const lists = new RecentLists<string, string[]>(60_000, 10, (names) => names.length);
    const source = counting(11);
    await lists.get("big", source.fetch("big"));
    await settle();
    assert.equal(lists.size, 0);
    assert.equal(lists.names, 0);
  });

  it("a failed fetch is not kept", async () => {
    const lists = new RecentLists<string, string[]>(60_000, 10, (names) => names.length);
    await assert.rejects(lists.get("a", () => Promise.reject(new Error("down"))));
    await settle();
    assert.equal(lists.size, 0);
    assert.deepEqual(await lists.get("a", () => Promise.resolve(["x"])), ["x"]);
  });
});
