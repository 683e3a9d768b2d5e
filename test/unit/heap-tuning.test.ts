import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { heapGrowingGiven } from "../../src/heap-tuning.js";

describe("heap tuning", () => {
  it("leaves the growing factor to an operator who set it, in either spelling, on the command line or in NODE_OPTIONS", () => {
    assert.equal(heapGrowingGiven(["--heap-growing-percent=150"], undefined), true);
    assert.equal(heapGrowingGiven([], "--max-old-space-size=512 --heap_growing_percent=150"), true);
  });

  it("sets it otherwise", () => {
    assert.equal(heapGrowingGiven([], undefined), false);
    assert.equal(heapGrowingGiven(["--enable-source-maps"], "--max-semi-space-size=16"), false);
  });
});
