// Rates over the last minute from counter snapshots. Nothing runs in the background: each read of the panel
// takes a reading, and the rate is the difference to the oldest reading still within the window. The panel
// refreshes itself every few seconds while it is open, so after its first minute the window is a full one;
// a first read has nothing to compare with, and says so (null).

export const RATE_WINDOW_MS = 60_000;
/** Readings closer together than this are not kept: a reload storm cannot grow the list. */
const MIN_SPACING_MS = 2_000;

export type Totals = ReadonlyMap<string, number>;

interface Reading {
  at: number;
  totals: Totals;
}

export interface Rates {
  /** Seconds between the compared readings. */
  windowSeconds: number;
  /** Per key: increase per second over the window (never negative). */
  perSecond: ReadonlyMap<string, number>;
}

export class RateWindow {
  readonly #readings: Reading[] = [];

  constructor(private readonly windowMs = RATE_WINDOW_MS) {}

  /** Records `totals` taken at `at` (ms) and answers the rates since the oldest reading in the window. */
  observe(totals: Totals, at: number): Rates | null {
    this.#prune(at);
    const base = this.#readings[0];
    const last = this.#readings.at(-1);
    if (!last || at - last.at >= MIN_SPACING_MS) this.#readings.push({ at, totals });
    if (!base || at <= base.at) return null;
    const seconds = (at - base.at) / 1000;
    const perSecond = new Map<string, number>();
    for (const [key, value] of totals) perSecond.set(key, Math.max(0, value - (base.totals.get(key) ?? 0)) / seconds);
    return { windowSeconds: seconds, perSecond };
  }

  /** Keeps the readings within the window, and the newest one before it: the base of a full window. */
  #prune(now: number): void {
    while (this.#readings.length > 1 && this.#readings[1]!.at <= now - this.windowMs) this.#readings.shift();
  }
}
