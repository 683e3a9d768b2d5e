// The verdicts of a run, each from data the runner collected: nothing here talks to a process.
import { unexplainedFailures, type OperationRecord } from "./attribution.js";
import { BAND_METRICS, TOLERANCES, baselineBand, recoveries } from "./bands.js";
import { outsideWindows, p99, type Latency } from "./percentile.js";
import type { BlobCheck, FaultWindow, InvariantResult, Sample } from "./result.js";

export function pushesVerified(blobs: BlobCheck, problems: readonly string[] = []): InvariantResult {
  const ok = blobs.pushed > 0 && blobs.verified === blobs.pushed && blobs.lost === 0 && blobs.corrupt === 0;
  const first = problems.slice(0, 5).join("; ");
  return {
    name: "every acknowledged push is pullable with the same digest and its layers are intact on the registries' disks",
    ok,
    detail: `${blobs.verified} of ${blobs.pushed} pushes verified, ${blobs.lost} lost, ${blobs.corrupt} corrupt${first ? `: ${first}` : ""}${blobs.pushed === 0 ? " (no push succeeded: nothing was checked)" : ""}`,
  };
}

export function failuresAttributed(records: readonly OperationRecord[], windows: readonly FaultWindow[]): InvariantResult {
  const failed = records.filter((r) => !r.ok).length;
  const unexplained = unexplainedFailures(records, windows);
  const examples = unexplained.slice(0, 5).map((r) => `${r.operation} at ${r.start.toFixed(1)}–${r.end.toFixed(1)} s: ${r.error ?? "failed"}`);
  return {
    name: "every failed request falls in a fault window",
    ok: unexplained.length === 0,
    detail: `${records.length} operations, ${failed} failed, ${unexplained.length} outside every fault window${examples.length ? `: ${examples.join("; ")}` : ""}`,
  };
}

/** The quiet phase after its warm-up: (from, until] seconds since the start. */
export interface QuietPhase {
  from: number;
  until: number;
}

/** Each metric's band from the samples of the quiet phase; after every window each metric is back in it. */
export function resourcesReturn(samples: readonly Sample[], quiet: QuietPhase, windows: readonly FaultWindow[], graceSeconds: number): InvariantResult[] {
  const baseline = samples.filter((s) => s.t > quiet.from && s.t <= quiet.until);
  return BAND_METRICS.map((metric) => {
    const name = `${metric} returns to its baseline band after each fault`;
    if (baseline.length === 0) return { name, ok: false, detail: "no sample in the quiet phase: no baseline" };
    const band = baselineBand(baseline.map((s) => s[metric]), TOLERANCES[metric]);
    const checks = recoveries(samples, windows, metric, band, graceSeconds);
    const missed = checks.filter((c) => !c.ok).map((c) => `${c.window.name} (${c.value === null ? "no sample after it" : `last ${round(c.value)}`})`);
    return {
      name,
      ok: missed.length === 0,
      detail: `band ${round(band.low)}–${round(band.high)} from ${baseline.length} quiet samples; back in band after ${checks.length - missed.length} of ${checks.length} faults${missed.length ? `; not after: ${missed.join(", ")}` : ""}`,
    };
  });
}

export const P99_FACTOR = 2;

export function p99OutsideFaults(latencies: readonly Latency[], phase: QuietPhase, windows: readonly FaultWindow[]): InvariantResult {
  const name = `p99 of small GETs outside fault windows within ${P99_FACTOR}× the quiet p99`;
  const quiet = p99(latencies.filter((l) => l.t > phase.from && l.t <= phase.until).map((l) => l.ms));
  const later = p99(outsideWindows(latencies, windows, phase.until));
  if (quiet === null || later === null) return { name, ok: false, detail: `not enough small GETs (quiet p99 ${quiet}, later p99 ${later})` };
  const counts = `${latencies.filter((l) => l.t > phase.from && l.t <= phase.until).length} quiet GETs, ${outsideWindows(latencies, windows, phase.until).length} later outside windows`;
  return { name, ok: later <= P99_FACTOR * quiet, detail: `quiet p99 ${round(quiet)} ms, outside fault windows ${round(later)} ms (limit ${round(P99_FACTOR * quiet)} ms; ${counts})` };
}

/** A fault's own check (the broken reload refused, every gateway on the new serial…). */
export function faultCheck(name: string, ok: boolean, detail: string): InvariantResult {
  return { name, ok, detail };
}

function round(value: number): number {
  return Math.round(value * 10) / 10;
}
