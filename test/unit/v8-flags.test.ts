// Runs alone: watches the process's own garbage collections, which other files' work in a shared process would mix in.
// Every V8 flag the gateway sets on itself (src/memory-tuning.ts), on the Node major running the tests (npm
// test runs this file on the image's major and on the oldest one `engines` admits). v8.setFlagsFromString
// ignores a flag V8 does not know without a word, and V8 changes its flags and heuristics between majors: so
// each flag must be accepted by node's command line, which refuses unknown V8 flags, and setting it at run
// time, as the gateway does, must still do what the gateway wants from it.
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { PerformanceObserver, constants } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import v8 from "node:v8";
import { runInNewContext } from "node:vm";
import { describe, it } from "node:test";
import { V8_FLAGS } from "../../src/memory-tuning.js";
import { formatRun, run } from "../helpers/process.js";

const MEMORY_TUNING = fileURLToPath(new URL("../../src/memory-tuning.ts", import.meta.url));

/** Runs `script` (an ES module) in a fresh node of the running major, with tsx and `nodeArgs`; its stdout. */
async function inFreshNode(script: string, nodeArgs: string[] = []): Promise<string> {
  const args = ["--import", "tsx", ...nodeArgs, "--input-type=module", "-e", script];
  const result = await run(process.execPath, args, { timeoutMs: 30_000 });
  assert.equal(result.code, 0, formatRun(process.execPath, args, result));
  return result.stdout;
}

describe(`the V8 flags the gateway sets, on Node ${process.version}`, () => {
  for (const flag of Object.values(V8_FLAGS)) {
    it(`node accepts ${flag}`, async () => {
      const result = await run(process.execPath, [flag, "-e", "0"], { timeoutMs: 15_000 });
      assert.equal(result.code, 0, formatRun(process.execPath, [flag, "-e", "0"], result));
      assert.equal(result.stderr, "");
    });
  }

  it(`${V8_FLAGS.youngGenerationFixed}: imported first, as main.ts does, the young generation never grows however much survives; without it, it does`, async () => {
    // Capacity (used + available), not space_size: V8 12+ commits the pages of the new space as they fill.
    const script = [
      "import v8 from 'node:v8';",
      "const capacity = () => { const s = v8.getHeapSpaceStatistics().find((s) => s.space_name === 'new_space'); return s.space_used_size + s.space_available_size; };",
      "const before = capacity();",
      "const kept = [];",
      "for (let i = 0; i < 300_000; i++) kept.push({ i, text: `object ${i}` });",
      "console.log(JSON.stringify({ before, after: capacity(), kept: kept.length }));",
    ].join("\n");
    const tuned = JSON.parse(await inFreshNode(script, ["--import", MEMORY_TUNING]));
    const untuned = JSON.parse(await inFreshNode(script));
    assert.equal(tuned.after, tuned.before, `young generation capacity with the flag: ${JSON.stringify(tuned)}`);
    assert.ok(tuned.after <= 2 * 1024 * 1024, `young generation capacity with the flag: ${JSON.stringify(tuned)}`);
    assert.ok(untuned.after >= 4 * untuned.before, `without the flag the same allocations should grow it: ${JSON.stringify(untuned)}`);
  });

  it(`${V8_FLAGS.heapGrowingFactor2}: set by tuneForTransfers at run time, the next old-generation limit is 2 × the heap`, async () => {
    const percent = Number(/=(\d+)$/.exec(V8_FLAGS.heapGrowingFactor2)?.[1]);
    // A factor set at run time must be read at the next major GC: 50 % first, then the gateway's. Two
    // processes rather than one trace split at a marker: V8 writes its trace through a buffer of its own, so a
    // marker printed by the script can land anywhere in it.
    const script = (tune: boolean) =>
      [
        "import v8 from 'node:v8';",
        `const { tuneForTransfers } = await import(${JSON.stringify(MEMORY_TUNING)});`,
        "globalThis.kept = Array.from({ length: 200_000 }, (_, i) => ({ i }));",
        "v8.setFlagsFromString('--heap-growing-percent=50');",
        "gc();",
        ...(tune ? ["tuneForTransfers();", "gc();"] : []),
      ].join("\n");
    const flags = ["--expose-gc", "--trace-gc-verbose"];
    const [probe, tuned] = await Promise.all([inFreshNode(script(false), flags), inFreshNode(script(true), flags)]);
    assert.equal(appliedFactor(probe), 1.5, "a growing percent set at run time is applied at the next major GC");
    assert.equal(appliedFactor(tuned), 1 + percent / 100);
  });

  it(`${V8_FLAGS.exposeGc} gives a new context a gc() whose { type: "minor" } is a scavenge; ${V8_FLAGS.hideGc} leaves the next one none`, async () => {
    v8.setFlagsFromString(V8_FLAGS.exposeGc);
    const gc = runInNewContext("typeof gc === 'function' ? gc : undefined") as ((options: { type: "minor" }) => void) | undefined;
    v8.setFlagsFromString(V8_FLAGS.hideGc);
    assert.equal(typeof gc, "function");
    assert.equal(runInNewContext("typeof gc"), "undefined");
    assert.equal(typeof (globalThis as { gc?: unknown }).gc, "undefined");

    const kinds: number[] = [];
    const observer = new PerformanceObserver((list) => {
      for (const entry of list.getEntries()) kinds.push(((entry as { detail?: unknown }).detail as { kind: number }).kind);
    });
    observer.observe({ entryTypes: ["gc"] });
    try {
      gc!({ type: "minor" });
      await sleep(200);
    } finally {
      observer.disconnect();
    }
    assert.ok(kinds.includes(constants.NODE_PERFORMANCE_GC_MINOR), `GC kinds seen: ${kinds.join(", ")}`);
    assert.ok(!kinds.includes(constants.NODE_PERFORMANCE_GC_MAJOR), `GC kinds seen: ${kinds.join(", ")}`);
  });
});

/**
 * The heap growing factor V8 applied at the last major GC in `trace` (--trace-gc-verbose). V8 11 (Node 20)
 * prints the factor it applies at the end of its limit line (its "factor" line comes before the flag is
 * applied); later versions print a "factor" line after applying it, and no factor on the limit line.
 */
function appliedFactor(trace: string): number {
  const onLimitLine = [...trace.matchAll(/\[HeapController\] Limit: .*\((\d+\.\d+)\)$/gm)];
  const onFactorLine = [...trace.matchAll(/\[HeapController\] factor (\d+\.\d+) based on/gm)];
  const last = (onLimitLine.length ? onLimitLine : onFactorLine).at(-1);
  assert.ok(last, `no heap growing factor in the GC trace:\n${trace.slice(-2000)}`);
  return Number(last[1]);
}
