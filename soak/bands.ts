// Baseline bands: what a resource (descriptors, connections, memory) measured during the quiet phase, widened
// by a tolerance, and whether it came back into that band after each fault.
import type { FaultWindow, Sample } from "./result.js";

export type BandMetric = "rssMb" | "fds" | "backendConnections" | "redisConnections";
export const BAND_METRICS: readonly BandMetric[] = ["rssMb", "fds", "backendConnections", "redisConnections"];

export interface Band {
  low: number;
  high: number;
}

export interface Tolerance {
  /** Fraction of the baseline's highest value added above it (and of its lowest taken below it). */
  relative: number;
  /** Added on both sides, for metrics whose baseline is a handful (a few connections). */
  absolute: number;
}

/**
 * Per metric: memory may grow as caches warm up and processes restarted by faults start their heaps again;
 * descriptors and connections come and go with traffic, so they get room of their own.
 */
export const TOLERANCES: Record<BandMetric, Tolerance> = {
  rssMb: { relative: 0.5, absolute: 64 },
  fds: { relative: 0.5, absolute: 40 },
  backendConnections: { relative: 1, absolute: 16 },
  redisConnections: { relative: 0.5, absolute: 6 },
};

export function baselineBand(values: readonly number[], tolerance: Tolerance): Band {
  if (values.length === 0) throw new Error("a baseline needs at least one sample");
  const low = Math.min(...values);
  const high = Math.max(...values);
  return { low: Math.max(0, low * (1 - tolerance.relative) - tolerance.absolute), high: high * (1 + tolerance.relative) + tolerance.absolute };
}

export interface Recovery {
  window: FaultWindow;
  metric: BandMetric;
  ok: boolean;
  /** The in-band value found, or the last value looked at; null when no sample came after the window. */
  value: number | null;
}

/**
 * For each window: some sample taken after it ended, and before the next window started (or within
 * `graceSeconds` after the end, whichever is later), lies in the band.
 */
export function recoveries(samples: readonly Sample[], windows: readonly FaultWindow[], metric: BandMetric, band: Band, graceSeconds: number): Recovery[] {
  const ordered = [...windows].sort((a, b) => a.start - b.start);
  return ordered.map((window, index) => {
    const next = ordered[index + 1];
    const until = Math.max(window.end + graceSeconds, next ? next.start : Infinity);
    const after = samples.filter((s) => s.t >= window.end && s.t <= until);
    const inBand = after.find((s) => s[metric] >= band.low && s[metric] <= band.high);
    const value = inBand ? inBand[metric] : after.length > 0 ? after[after.length - 1]![metric] : null;
    return { window, metric, ok: inBand !== undefined, value };
  });
}
