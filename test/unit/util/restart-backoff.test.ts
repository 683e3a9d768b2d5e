// Restart delays: util/restart-backoff.ts.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { RestartBackoff } from "../../../src/util/restart-backoff.js";

const options = { initialMs: 1000, maxMs: 5000, stableRunMs: 60_000 };

describe("restart backoff", () => {
  it("starts at the initial delay and doubles after each quick exit, up to the maximum", () => {
    const backoff = new RestartBackoff(options);
    assert.deepEqual(
      Array.from({ length: 5 }, () => backoff.delayAfter(10)),
      [1000, 2000, 4000, 5000, 5000],
    );
  });

  it("starts again from the initial delay after a stable run", () => {
    const backoff = new RestartBackoff(options);
    backoff.delayAfter(0);
    backoff.delayAfter(0);
    assert.equal(backoff.delayAfter(0), 4000);
    assert.equal(backoff.delayAfter(60_000), 1000, "a process that ran stably is restarted after the initial delay");
    assert.equal(backoff.delayAfter(59_999), 2000, "and a quick exit after that doubles it again");
  });
});
