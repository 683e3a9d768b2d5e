// Axis ticks at round numbers (1, 2 or 5 times a power of ten), so a reader can read values off a plot.

export interface Ticks {
  /** The axis runs from min to max; max is the first tick at or above the data. */
  min: number;
  max: number;
  step: number;
  values: number[];
}

function niceStep(span: number, targetCount: number): number {
  const rough = span / Math.max(1, targetCount);
  const power = 10 ** Math.floor(Math.log10(rough));
  const multiple = [1, 2, 2.5, 5, 10].find((m) => m * power >= rough) ?? 10;
  return multiple * power;
}

/** Ticks covering [low, high]; an empty or flat range still gets a usable axis (0 to 1, or around the value). */
export function niceTicks(low: number, high: number, targetCount = 5): Ticks {
  let from = Number.isFinite(low) ? low : 0;
  let to = Number.isFinite(high) ? high : 1;
  if (to <= from) to = from === 0 ? 1 : from + Math.abs(from);
  if (to <= from) to = from + 1;
  const step = niceStep(to - from, targetCount);
  const min = Math.floor(from / step) * step;
  const max = Math.ceil(to / step) * step;
  const values: number[] = [];
  // Rounding to the step's precision keeps 0.1 + 0.2 from printing as 0.30000000000000004.
  const decimals = Math.max(0, -Math.floor(Math.log10(step)) + 1);
  for (let v = min; v <= max + step / 2; v += step) values.push(Number(v.toFixed(decimals)));
  return { min, max, step, values };
}

/** A tick label: no trailing zeros, thousands kept short (12k) so labels fit beside the axis. */
export function formatTick(value: number): string {
  const abs = Math.abs(value);
  if (abs >= 10_000) return `${Number((value / 1000).toFixed(1))}k`;
  return String(Number(value.toPrecision(6)));
}
