// The GCRA arithmetic both limiters share (Redis runs the same steps in Lua).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { decisionOf, gcraStep, MemoryLimiter, type LimitRule } from "../../../src/ratelimit/limiter.js";

const FIVE_PER_MINUTE: LimitRule = { rate: 5, periodMs: 60_000, burst: 5 };

/** A limiter on a clock the test moves. */
function limiterAt(start = 1_000_000) {
  let now = start;
  const limiter = new MemoryLimiter({ now: () => now });
  return { limiter, advance: (ms: number) => (now += ms) };
}

describe("GCRA", () => {
  it("admits exactly `burst` requests back to back, counting remaining down to 0, then refuses", () => {
    const { limiter } = limiterAt();
    const remaining = Array.from({ length: 5 }, () => limiter.allowNow("k", FIVE_PER_MINUTE));
    assert.deepEqual(remaining.map((d) => [d.allowed, d.remaining]), [[true, 4], [true, 3], [true, 2], [true, 1], [true, 0]]);
    const sixth = limiter.allowNow("k", FIVE_PER_MINUTE);
    assert.equal(sixth.allowed, false);
    assert.equal(sixth.remaining, 0);
    assert.equal(sixth.limit, 5);
    // One request every 60 s / 5 = 12 s: the next is admitted 12 s after the first.
    assert.equal(sixth.retryAfterSeconds, 12);
    // A refused request is not charged: the wait does not grow by retrying.
    assert.equal(limiter.allowNow("k", FIVE_PER_MINUTE).retryAfterSeconds, 12);
  });

  it("refills one request per interval, smoothly, never beyond the burst", () => {
    const { limiter, advance } = limiterAt();
    for (let i = 0; i < 5; i++) limiter.allowNow("k", FIVE_PER_MINUTE);
    advance(11_999);
    const early = limiter.allowNow("k", FIVE_PER_MINUTE);
    assert.equal(early.allowed, false);
    assert.equal(early.retryAfterSeconds, 1, "rounded up to whole seconds, at least 1");
    advance(1);
    assert.deepEqual([limiter.allowNow("k", FIVE_PER_MINUTE).allowed, limiter.allowNow("k", FIVE_PER_MINUTE).allowed], [true, false]);
    advance(10 * 60_000);
    const rested = Array.from({ length: 6 }, () => limiter.allowNow("k", FIVE_PER_MINUTE).allowed);
    assert.deepEqual(rested, [true, true, true, true, true, false], "a long rest gives back the burst, not more");
  });

  it("reports when the allowance is full again", () => {
    const { limiter } = limiterAt();
    assert.equal(limiter.allowNow("k", FIVE_PER_MINUTE).resetSeconds, 12);
    assert.equal(limiter.allowNow("k", FIVE_PER_MINUTE).resetSeconds, 24);
  });

  it("keeps burst and rate apart: burst 1 spaces requests, burst > rate front-loads", () => {
    const { limiter, advance } = limiterAt();
    const spaced: LimitRule = { rate: 60, periodMs: 60_000, burst: 1 };
    assert.equal(limiter.allowNow("a", spaced).allowed, true);
    assert.equal(limiter.allowNow("a", spaced).allowed, false);
    advance(1000);
    assert.equal(limiter.allowNow("a", spaced).allowed, true);
    const bursty: LimitRule = { rate: 2, periodMs: 60_000, burst: 10 };
    assert.equal(Array.from({ length: 11 }, () => limiter.allowNow("b", bursty).allowed).filter(Boolean).length, 10);
  });

  it("counts exactly when the interval is not a whole number of milliseconds", () => {
    const { limiter, advance } = limiterAt();
    const sevenPerMinute: LimitRule = { rate: 7, periodMs: 60_000, burst: 7 };
    let admitted = 0;
    for (let second = 0; second < 600; second++) {
      while (limiter.allowNow("k", sevenPerMinute).allowed) admitted++;
      advance(1000);
    }
    // 7 up front, then 7 per minute for the remaining 599 s (the last refill lands at t = 599 s).
    assert.equal(admitted, 7 + Math.floor((599_000 * 7) / 60_000));
  });

  it("keeps keys apart", () => {
    const { limiter } = limiterAt();
    for (let i = 0; i < 5; i++) limiter.allowNow("a", FIVE_PER_MINUTE);
    assert.equal(limiter.allowNow("a", FIVE_PER_MINUTE).allowed, false);
    assert.equal(limiter.allowNow("b", FIVE_PER_MINUTE).allowed, true);
  });

  it("forgets keys whose allowance is full again, so memory follows active keys only", async () => {
    const { limiter, advance } = limiterAt();
    limiter.allowNow("a", FIVE_PER_MINUTE);
    limiter.allowNow("b", FIVE_PER_MINUTE);
    limiter.allowNow("b", FIVE_PER_MINUTE);
    advance(12_000);
    limiter.sweep();
    assert.equal(limiter.size, 1, "a is full again, b is not");
    advance(12_000);
    limiter.sweep();
    assert.equal(limiter.size, 0);
    await limiter.close();
  });

  it("gcraStep leaves the stored TAT alone when it refuses", () => {
    const step = gcraStep(1000 + 60_000, 1000, FIVE_PER_MINUTE);
    assert.equal(step.allowed, false);
    assert.equal(step.tat, 61_000);
    assert.equal(step.retryAfterMs, 12_000);
    assert.deepEqual(decisionOf({ allowed: false, remaining: 0, retryAfterMs: 1, resetMs: 0 }, FIVE_PER_MINUTE).retryAfterSeconds, 1);
  });

  // The failed-login throttle charges before checking a password and refunds a right one.
  describe("cost and refunds", () => {
    it("a cost of n counts n requests at once, and is refused whole when fewer remain", () => {
      const { limiter } = limiterAt();
      assert.deepEqual(pick(limiter.allowNow("k", FIVE_PER_MINUTE, 3)), [true, 2]);
      const tooMuch = limiter.allowNow("k", FIVE_PER_MINUTE, 3);
      assert.deepEqual(pick(tooMuch), [false, 0]);
      assert.equal(tooMuch.retryAfterSeconds, 12, "one more interval frees enough for 3");
      assert.deepEqual(pick(limiter.allowNow("k", FIVE_PER_MINUTE, 2)), [true, 0], "the refused 3 charged nothing");
    });

    it("a negative cost gives allowance back, and is admitted even when the bucket is empty", () => {
      const { limiter } = limiterAt();
      for (let i = 0; i < 5; i++) limiter.allowNow("k", FIVE_PER_MINUTE);
      assert.equal(limiter.allowNow("k", FIVE_PER_MINUTE).allowed, false);
      const refund = limiter.allowNow("k", FIVE_PER_MINUTE, -1);
      assert.deepEqual(pick(refund), [true, 1]);
      assert.deepEqual(pick(limiter.allowNow("k", FIVE_PER_MINUTE)), [true, 0]);
      assert.equal(limiter.allowNow("k", FIVE_PER_MINUTE).allowed, false);
    });

    it("charge then refund leaves the bucket as it was: only failures count", () => {
      const { limiter } = limiterAt();
      for (let i = 0; i < 100; i++) {
        assert.equal(limiter.allowNow("k", FIVE_PER_MINUTE).allowed, true, `charge ${i}`);
        limiter.allowNow("k", FIVE_PER_MINUTE, -1);
      }
      assert.equal(limiter.size, 0, "a fully refunded key is dropped at once");
      const burst = Array.from({ length: 6 }, () => limiter.allowNow("k", FIVE_PER_MINUTE).allowed);
      assert.deepEqual(burst, [true, true, true, true, true, false]);
    });

    it("a refund never banks allowance beyond a full bucket (the TAT never goes below now)", () => {
      const { limiter, advance } = limiterAt();
      for (let i = 0; i < 10; i++) assert.equal(limiter.allowNow("k", FIVE_PER_MINUTE, -1).remaining, 5);
      const burst = Array.from({ length: 6 }, () => limiter.allowNow("k", FIVE_PER_MINUTE).allowed);
      assert.deepEqual(burst, [true, true, true, true, true, false]);
      // A refund on a bucket partly refilled by time: back to full, not beyond.
      advance(12_000);
      limiter.allowNow("k", FIVE_PER_MINUTE, -5);
      assert.deepEqual(Array.from({ length: 6 }, () => limiter.allowNow("k", FIVE_PER_MINUTE).allowed), [true, true, true, true, true, false]);
    });

    it("gcraStep with cost: TAT moves by interval × cost", () => {
      assert.equal(gcraStep(undefined, 1000, FIVE_PER_MINUTE, 2).tat, 1000 + 24_000);
      assert.equal(gcraStep(1000 + 24_000, 1000, FIVE_PER_MINUTE, -1).tat, 1000 + 12_000);
      assert.equal(gcraStep(1000 + 6_000, 1000, FIVE_PER_MINUTE, -1).tat, 1000, "never below now");
    });
  });
});

function pick(decision: { allowed: boolean; remaining: number }): [boolean, number] {
  return [decision.allowed, decision.remaining];
}
