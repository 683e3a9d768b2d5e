// When each fault happens in a run of a given length: a quiet phase first (the p99 every later phase is
// compared with), the faults spread evenly over the middle, and a quiet tail in which every resource must
// come back to its band before the final checks.

export const FAULT_NAMES = [
  "redis-killed",
  "replica-killed",
  "worker-sigkill",
  "aborted-uploads",
  "gateway-sigkill",
  "reload-users-limits",
  "abandoned-downloads",
  "rolling-sigterm",
  "reload-broken",
  "cert-rotate",
  "slowloris",
  "acme-renewal",
] as const;

export type FaultName = (typeof FAULT_NAMES)[number];

export interface PlannedFault {
  name: FaultName;
  /** Seconds since the start of the run. */
  at: number;
  /** How long after the fault has cleared its effects may still show (failures, resources out of band). */
  settleSeconds: number;
}

export interface Schedule {
  durationSeconds: number;
  /** Seconds of traffic without faults at the start. */
  quietSeconds: number;
  /**
   * The first seconds of the quiet phase, left out of the baseline: connections are being opened, caches
   * filled and the clients' first images built, none of which the rest of the run repeats.
   */
  warmupSeconds: number;
  faults: PlannedFault[];
}

export function planSchedule(durationSeconds: number): Schedule {
  if (!(durationSeconds > 0)) throw new Error(`a run needs a positive length, got ${durationSeconds} s`);
  const quietSeconds = clamp(durationSeconds * 0.1, 12, 120);
  const tailSeconds = clamp(durationSeconds * 0.05, 8, 60);
  const names = FAULT_NAMES;
  const span = Math.max(0, durationSeconds - quietSeconds - tailSeconds);
  const spacing = names.length > 0 ? span / names.length : 0;
  // A settling time long enough for a restarted process to be checked healthy again, never longer than
  // the gap to the next fault (windows then stay apart, so each one's recovery can be seen on its own).
  const settleSeconds = clamp(spacing * 0.4, 2, 20);
  const faults = names.map((name, index) => ({ name, at: round(quietSeconds + index * spacing), settleSeconds: round(settleSeconds) }));
  return { durationSeconds, quietSeconds: round(quietSeconds), warmupSeconds: round(quietSeconds / 3), faults };
}

function clamp(value: number, low: number, high: number): number {
  return Math.min(high, Math.max(low, value));
}

function round(value: number): number {
  return Math.round(value * 10) / 10;
}
