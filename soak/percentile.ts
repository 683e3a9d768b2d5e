// Latency percentiles, and the small-GET latencies that count for the "outside fault windows" comparison.
import type { FaultWindow } from "./result.js";

/** Nearest-rank percentile (q in 0..1) of the values; null for none. */
export function percentile(values: readonly number[], q: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil(q * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}

export const p99 = (values: readonly number[]) => percentile(values, 0.99);

/** One completed small GET: when it started (seconds since the start) and how long it took. */
export interface Latency {
  t: number;
  ms: number;
}

/** Latencies from `from` on that started inside no fault window. */
export function outsideWindows(latencies: readonly Latency[], windows: readonly FaultWindow[], from = 0): number[] {
  return latencies.filter((l) => l.t >= from && !windows.some((w) => l.t >= w.start && l.t <= w.end)).map((l) => l.ms);
}
