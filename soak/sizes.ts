// Layer sizes of the pushes, in order: mostly small (1 KiB to 1 MiB), now and then a few MiB, and rarely the
// largest the run allows (512 MiB in a 20-minute run, scaled down with the run's length).
const KiB = 1024;
const MiB = 1024 * KiB;
export const LARGEST_LAYER = 512 * MiB;

const CYCLE = [KiB, 64 * KiB, MiB, KiB, 4 * MiB, 64 * KiB, 256 * KiB, MiB, KiB, 16 * MiB];
/** Every this many pushes, one of the largest size (the first early in the run, at push 3). */
const LARGE_EVERY = 25;

/** The largest layer of a run of `minutes`: 512 MiB from 20 minutes on, proportionally less below, at least 16 MiB. */
export function largestLayer(minutes: number): number {
  return Math.round(Math.min(LARGEST_LAYER, Math.max(16 * MiB, (LARGEST_LAYER * minutes) / 20)));
}

/** The layer size of push number `n` (0-based). */
export function layerSize(n: number, largest: number): number {
  if (n % LARGE_EVERY === 3) return largest;
  return Math.min(largest, CYCLE[n % CYCLE.length]!);
}
