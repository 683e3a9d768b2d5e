// Runs alone: sets V8 flags and leaves a timer that forces scavenges, which would reach every file sharing its process.
// The young generation is left to an operator who sized it, and read buffers that pile up get a scavenge.
// What each V8 flag does on the running Node major is checked in v8-flags.test.ts.
import assert from "node:assert/strict";
import v8 from "node:v8";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, it } from "node:test";
import { heapGrowingGiven, paceReadBuffers, youngGenerationGiven } from "../../src/memory-tuning.js";

describe("memory tuning", () => {
  it("leaves the young generation alone when node was given a size or growth factor for it", () => {
    assert.equal(youngGenerationGiven([], undefined), false);
    assert.equal(youngGenerationGiven(["--import", "tsx"], "--max-old-space-size=512"), false);
    assert.equal(youngGenerationGiven(["--max-semi-space-size=4"], undefined), true);
    assert.equal(youngGenerationGiven([], "--enable-source-maps --max_semi_space_size=8"), true);
    assert.equal(youngGenerationGiven(["--semi-space-growth-factor=2"], ""), true);
    assert.equal(youngGenerationGiven(["--min-semi-space-size=2"], ""), true);
  });

  it("leaves the heap growing factor to an operator who set it, in either spelling, on the command line or in NODE_OPTIONS", () => {
    assert.equal(heapGrowingGiven(["--heap-growing-percent=150"], undefined), true);
    assert.equal(heapGrowingGiven([], "--max-old-space-size=512 --heap_growing_percent=150"), true);
    assert.equal(heapGrowingGiven([], undefined), false);
    assert.equal(heapGrowingGiven(["--enable-source-maps"], "--max-semi-space-size=16"), false);
  });

  it("scavenges when read buffers pile up, without a gc global left behind", async () => {
    paceReadBuffers();
    assert.equal(typeof (globalThis as { gc?: unknown }).gc, "undefined");
    await sleep(300);
    const before = v8.getHeapStatistics().external_memory;
    // 12 MB of buffers nothing refers to, allocated without allocating 1 MB of JS: no scavenge of V8's own.
    for (let i = 0; i < 192; i++) Buffer.allocUnsafeSlow(64 * 1024).fill(i);
    await sleep(800);
    const after = v8.getHeapStatistics().external_memory;
    assert.ok(after - before < 4 * 1024 * 1024, `external memory grew by ${after - before} bytes`);
  });
});
