import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ReadGate } from "../../../src/web/read-gate.js";

/** A read that runs until `finish` is called, counted while it runs. */
function controlledReads() {
  let running = 0;
  let most = 0;
  const finishers: (() => void)[] = [];
  const read = () =>
    new Promise<void>((resolve) => {
      running++;
      most = Math.max(most, running);
      finishers.push(() => {
        running--;
        resolve();
      });
    });
  return { read, finishAll: () => finishers.splice(0).forEach((finish) => finish()), most: () => most, running: () => running };
}

const turn = () => new Promise((resolve) => setImmediate(resolve));

describe("the browser's read gate", () => {
  it("runs at most its count of reads at once, the rest in order as they finish", async () => {
    const gate = new ReadGate(2, 1_000_000);
    const reads = controlledReads();
    const all = Promise.all(Array.from({ length: 5 }, () => gate.run(10, undefined, reads.read)));
    for (let i = 0; i < 3; i++) {
      await turn();
      assert.ok(reads.running() <= 2);
      reads.finishAll();
    }
    await all;
    assert.equal(reads.most(), 2);
  });

  it("holds reads whose bytes would pass its allowance, but runs a read bigger than all of it alone", async () => {
    const gate = new ReadGate(10, 100);
    const reads = controlledReads();
    const all = Promise.all([gate.run(60, undefined, reads.read), gate.run(60, undefined, reads.read), gate.run(500, undefined, reads.read)]);
    await turn();
    assert.equal(reads.running(), 1, "60 + 60 bytes is more than 100");
    reads.finishAll();
    await turn();
    assert.equal(reads.running(), 1);
    reads.finishAll();
    await turn();
    assert.equal(reads.running(), 1, "the 500-byte read, alone");
    reads.finishAll();
    await all;
  });

  it("drops a waiting read whose signal aborts, without running it", async () => {
    const gate = new ReadGate(1, 100);
    const reads = controlledReads();
    const first = gate.run(1, undefined, reads.read);
    const controller = new AbortController();
    let ran = false;
    const waiting = gate.run(1, controller.signal, async () => {
      ran = true;
    });
    controller.abort(new Error("the page's deadline"));
    await assert.rejects(waiting, /the page's deadline/);
    reads.finishAll();
    await first;
    assert.equal(ran, false);
    await gate.run(1, undefined, async () => undefined);
  });
});
