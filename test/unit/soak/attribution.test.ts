// The invariants on synthetic data: a failure inside a fault window is explained, one outside is not and
// fails the run; resources that stay out of their band after a fault fail it; so does a slow p99.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { countOutcomes, explainingWindow, type OperationRecord } from "../../../soak/attribution.js";
import { baselineBand, recoveries } from "../../../soak/bands.js";
import { failuresAttributed, p99OutsideFaults, pushesVerified, resourcesReturn } from "../../../soak/invariants.js";
import { outsideWindows, p99, percentile } from "../../../soak/percentile.js";
import { passed, type FaultWindow, type Sample, type SoakResult } from "../../../soak/result.js";

const windows: FaultWindow[] = [
  { name: "redis-killed", start: 20, end: 30, detail: "SIGKILL redis" },
  { name: "gateway-sigkill", start: 50, end: 60, detail: "SIGKILL gateway 2" },
];
const op = (start: number, end: number, ok: boolean, operation = "loadgen small GET"): OperationRecord => ({ operation, start, end, ok, error: ok ? undefined : "HTTP 503" });

describe("attribution of failures to fault windows", () => {
  it("an operation overlapping a window in any way is explained by it; one wholly outside is not", () => {
    assert.equal(explainingWindow(op(18, 21, false), windows)?.name, "redis-killed", "started before, failed inside");
    assert.equal(explainingWindow(op(29.5, 31, false), windows)?.name, "redis-killed", "started while settling");
    assert.equal(explainingWindow(op(10, 70, false), windows)?.name, "redis-killed", "spans both");
    assert.equal(explainingWindow(op(30.1, 49.9, false), windows), undefined, "between the windows");
  });

  it("counts per operation: ok, failed in a window, unexplained", () => {
    const records = [op(1, 2, true), op(21, 22, false), op(40, 41, false), op(3, 4, true, "skopeo push"), op(55, 58, false, "skopeo push")];
    assert.deepEqual(countOutcomes(records, windows), [
      { operation: "loadgen small GET", ok: 1, failedInFaultWindow: 1, unexplained: 1 },
      { operation: "skopeo push", ok: 1, failedInFaultWindow: 1, unexplained: 0 },
    ]);
  });

  it("the invariant fails on one unexplained failure and names it; passes when every failure is explained", () => {
    const bad = failuresAttributed([op(21, 22, false), op(40, 41, false)], windows);
    assert.equal(bad.ok, false);
    assert.match(bad.detail, /2 failed, 1 outside every fault window: loadgen small GET at 40\.0–41\.0 s: HTTP 503/);
    assert.equal(failuresAttributed([op(21, 22, false), op(40, 41, true)], windows).ok, true);
  });

  it("a result with a failed invariant has not passed", () => {
    const held = failuresAttributed([op(22, 23, false)], windows);
    assert.equal(passed({ invariants: [held, failuresAttributed([op(40, 41, false)], windows)] } as SoakResult), false);
    assert.equal(passed({ invariants: [held] } as SoakResult), true);
  });
});

describe("baseline bands", () => {
  const sample = (t: number, fds: number, rssMb = 300): Sample => ({ t, rssMb, fds, backendConnections: 4, redisConnections: 7, requestRate: 10, p99Ms: 5 });

  it("the band widens the quiet range by the tolerance, never below 0", () => {
    assert.deepEqual(baselineBand([100, 120], { relative: 0.5, absolute: 10 }), { low: 40, high: 190 });
    assert.deepEqual(baselineBand([2, 3], { relative: 1, absolute: 16 }), { low: 0, high: 22 });
  });

  it("recovered when a sample after the window (before the next one) is in band; not when every one is above", () => {
    const samples = [sample(5, 100), sample(25, 900), sample(32, 700), sample(35, 110), sample(55, 900), sample(62, 800), sample(70, 800)];
    const checks = recoveries(samples, windows, "fds", { low: 50, high: 200 }, 5);
    assert.deepEqual(checks.map((c) => [c.window.name, c.ok, c.value]), [["redis-killed", true, 110], ["gateway-sigkill", false, 800]]);
  });

  it("resourcesReturn: one verdict per metric, failing the one that stayed out and naming the fault", () => {
    const samples = [sample(1, 100), sample(2, 104), sample(31, 105), sample(61, 5000), sample(65, 5000)];
    const verdicts = resourcesReturn(samples, { from: 0, until: 10 }, windows, 5);
    assert.deepEqual(verdicts.map((v) => v.ok), [true, false, true, true]);
    assert.match(verdicts[1]!.detail, /not after: gateway-sigkill \(last 5000\)/);
  });
});

describe("p99", () => {
  it("nearest rank", () => {
    const values = Array.from({ length: 100 }, (_, i) => i + 1);
    assert.equal(p99(values), 99);
    assert.equal(percentile(values, 0.5), 50);
    assert.equal(p99([7]), 7);
    assert.equal(p99([]), null);
  });

  it("latencies inside windows and in the warm-up do not count; the invariant compares with twice the quiet p99", () => {
    const warmup = Array.from({ length: 10 }, (_, i) => ({ t: i / 10, ms: 5000 }));
    const quiet = Array.from({ length: 100 }, (_, i) => ({ t: 1 + i / 100, ms: 10 }));
    const during = Array.from({ length: 50 }, (_, i) => ({ t: 21 + i / 10, ms: 500 }));
    const outside = Array.from({ length: 100 }, (_, i) => ({ t: 31 + i / 10, ms: 15 }));
    const phase = { from: 0.95, until: 10 };
    assert.equal(outsideWindows([...warmup, ...quiet, ...during, ...outside], windows, 10).length, 100);
    assert.equal(p99OutsideFaults([...warmup, ...quiet, ...during, ...outside], phase, windows).ok, true);
    const slow = outside.map((l) => ({ ...l, ms: 25 }));
    const verdict = p99OutsideFaults([...warmup, ...quiet, ...during, ...slow], phase, windows);
    assert.equal(verdict.ok, false);
    assert.match(verdict.detail, /quiet p99 10 ms, outside fault windows 25 ms \(limit 20 ms; 100 quiet GETs, 100 later outside windows\)/);
  });
});

describe("pushes verified", () => {
  it("fails on a lost or corrupt blob, and when nothing was pushed at all", () => {
    assert.equal(pushesVerified({ pushed: 10, verified: 10, lost: 0, corrupt: 0 }).ok, true);
    assert.equal(pushesVerified({ pushed: 10, verified: 9, lost: 1, corrupt: 0 }, ["hub soak/a:1 layer sha256:ab missing"]).ok, false);
    assert.equal(pushesVerified({ pushed: 10, verified: 9, lost: 0, corrupt: 1 }).ok, false);
    assert.match(pushesVerified({ pushed: 0, verified: 0, lost: 0, corrupt: 0 }).detail, /nothing was checked/);
  });
});
