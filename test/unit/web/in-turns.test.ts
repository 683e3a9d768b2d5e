import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, it } from "node:test";
import { mapInTurns } from "../../../src/web/in-turns.js";

describe("reading in turns", () => {
  it("answers in the items' order with at most `turns` at work at once", async () => {
    let running = 0;
    let most = 0;
    const results = await mapInTurns([30, 10, 20, 5, 15], 2, 10_000, async (ms) => {
      most = Math.max(most, ++running);
      await sleep(ms);
      running--;
      return ms * 2;
    });
    assert.deepEqual(results, [60, 20, 40, 10, 30]);
    assert.equal(most, 2);
  });

  it("starts nothing once the budget is spent: those items stay undone", async () => {
    const items = Array.from({ length: 20 }, (_, i) => i + 1);
    const started: number[] = [];
    const results = await mapInTurns(items, 1, 100, async (item) => {
      started.push(item);
      await sleep(30);
      return item;
    });
    assert.ok(started.length >= 1 && started.length < 10, `${started.length} started`);
    assert.deepEqual(results, items.map((item) => (started.includes(item) ? item : undefined)));
  });
});
