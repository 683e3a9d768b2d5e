// A small SVG line chart for the soak report: time on x, one or more series on y, fault windows shaded.
// Written here rather than taken from a charting library because the report needs only this one chart kind
// and must render the same on GitHub with no scripts, external fonts or styles.
import { escapeXml } from "./xml.js";
import { formatTick, niceTicks, type Ticks } from "./ticks.js";

export interface LineSeries {
  label: string;
  /** [seconds since start, value]; a null value is a gap in the line (nothing was measured). */
  points: ReadonlyArray<readonly [number, number | null]>;
}

export interface ShadedWindow {
  /** Short label drawn in the window (its number in the fault table). */
  label: string;
  /** Name given in the key under the chart. */
  name: string;
  start: number;
  end: number;
}

export interface LineChartSpec {
  title: string;
  /** The y axis title, with its unit: "RSS (MB)". */
  yLabel: string;
  /** Length of the run, seconds: the x axis runs from 0 to at least this. */
  xMax: number;
  series: LineSeries[];
  windows: ShadedWindow[];
}

/** The plot area's place in the picture; exported so tests can check every point lands inside it. */
export const layout = { width: 800, left: 72, right: 24, top: 44, plotHeight: 240, keyLineHeight: 16 } as const;

// Okabe–Ito colours: distinguishable with the common colour-vision deficiencies and dark enough on white.
const palette = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9"];
const font = "font-family=\"Arial, Helvetica, 'DejaVu Sans', sans-serif\"";
const textColour = "#1a1a1a";
const windowFill = "#8c8c8c";
const charWidth = 6.6; // rough width of a 12px Arial character, for wrapping the key

interface Frame {
  x: (t: number) => number;
  y: (v: number) => number;
  xTicks: Ticks;
  yTicks: Ticks;
  /** Seconds per displayed x unit (60 when the axis is in minutes). */
  xUnitSeconds: number;
  plotLeft: number;
  plotRight: number;
  plotTop: number;
  plotBottom: number;
}

/** The time axis ends where the run ended, not at the next round number, so the plots use their width. */
function timeTicks(end: number): Ticks {
  const ticks = niceTicks(0, end, 8);
  if (end <= 0) return ticks;
  return { ...ticks, max: end, values: ticks.values.filter((v) => v <= end + ticks.step / 1000) };
}

function frameFor(spec: LineChartSpec): Frame {
  const values = spec.series.flatMap((s) => s.points.map(([, v]) => v)).filter((v): v is number => v !== null && Number.isFinite(v));
  const times = [spec.xMax, ...spec.series.flatMap((s) => s.points.map(([t]) => t)), ...spec.windows.map((w) => w.end)];
  const xEnd = Math.max(0, ...times.filter(Number.isFinite));
  // Runs longer than five minutes read better in minutes than in hundreds of seconds.
  const xUnitSeconds = xEnd > 300 ? 60 : 1;
  const xTicks = timeTicks(xEnd / xUnitSeconds);
  // Headroom above the highest value keeps the line clear of the window labels at the top.
  const yTicks = niceTicks(Math.min(0, ...values), Math.max(0, ...values) * 1.1, 5);
  const plotLeft = layout.left;
  const plotRight = layout.width - layout.right;
  const plotTop = layout.top;
  const plotBottom = layout.top + layout.plotHeight;
  const x = (t: number) => plotLeft + ((t / xUnitSeconds - xTicks.min) / (xTicks.max - xTicks.min)) * (plotRight - plotLeft);
  const y = (v: number) => plotBottom - ((v - yTicks.min) / (yTicks.max - yTicks.min)) * (plotBottom - plotTop);
  return { x, y, xTicks, yTicks, xUnitSeconds, plotLeft, plotRight, plotTop, plotBottom };
}

const fixed = (n: number) => n.toFixed(1);

function axes(spec: LineChartSpec, f: Frame): string[] {
  const out: string[] = [];
  for (const v of f.yTicks.values) {
    const y = fixed(f.y(v));
    out.push(`<line class="grid" x1="${f.plotLeft}" y1="${y}" x2="${f.plotRight}" y2="${y}" stroke="#d9d9d9" stroke-width="1"/>`);
    out.push(`<text x="${f.plotLeft - 6}" y="${y}" dy="4" text-anchor="end" font-size="12" fill="${textColour}">${formatTick(v)}</text>`);
  }
  for (const v of f.xTicks.values) {
    const x = fixed(f.x(v * f.xUnitSeconds));
    out.push(`<line x1="${x}" y1="${f.plotBottom}" x2="${x}" y2="${f.plotBottom + 5}" stroke="${textColour}" stroke-width="1"/>`);
    out.push(`<text x="${x}" y="${f.plotBottom + 19}" text-anchor="middle" font-size="12" fill="${textColour}">${formatTick(v)}</text>`);
  }
  const axisPath = `M${f.plotLeft} ${f.plotTop}V${f.plotBottom}H${f.plotRight}`;
  out.push(`<path d="${axisPath}" fill="none" stroke="${textColour}" stroke-width="1"/>`);
  const xTitle = f.xUnitSeconds === 60 ? "time since start (min)" : "time since start (s)";
  const midX = (f.plotLeft + f.plotRight) / 2;
  const midY = (f.plotTop + f.plotBottom) / 2;
  out.push(`<text x="${midX}" y="${f.plotBottom + 38}" text-anchor="middle" font-size="12" fill="${textColour}">${xTitle}</text>`);
  out.push(
    `<text transform="translate(16 ${midY}) rotate(-90)" text-anchor="middle" font-size="12" fill="${textColour}">${escapeXml(spec.yLabel)}</text>`,
  );
  return out;
}

/** Shades each window, clipped to the plot; its label sits at the top, moved down a row when it would
 *  overlap the previous one (short faults close together). */
function windows(spec: LineChartSpec, f: Frame): string[] {
  const out: string[] = [];
  const rowEnds: number[] = [];
  for (const w of spec.windows) {
    const x1 = Math.max(f.plotLeft, Math.min(f.plotRight, f.x(Math.max(0, w.start))));
    const x2 = Math.max(x1, Math.min(f.plotRight, f.x(w.end)));
    // At least 2px wide, so a fault of a few seconds in a long run is still visible.
    const width = Math.max(2, x2 - x1);
    const height = f.plotBottom - f.plotTop;
    out.push(
      `<rect class="fault-window" x="${fixed(x1)}" y="${f.plotTop}" width="${fixed(width)}" height="${height}" fill="${windowFill}" fill-opacity="0.22"><title>${escapeXml(`${w.label} ${w.name}`)}</title></rect>`,
    );
    const labelWidth = w.label.length * 7 + 4;
    let row = rowEnds.findIndex((end) => end <= x1);
    if (row === -1) row = rowEnds.length < 4 ? rowEnds.length : 0;
    rowEnds[row] = x1 + labelWidth;
    const ly = f.plotTop + 13 + row * 13;
    out.push(`<text x="${fixed(x1 + 2)}" y="${ly}" font-size="11" font-weight="bold" fill="#404040">${escapeXml(w.label)}</text>`);
  }
  return out;
}

/** Continuous runs of measured points; a null ends a run so the line shows the gap honestly. */
function runs(points: LineSeries["points"]): Array<Array<readonly [number, number]>> {
  const result: Array<Array<readonly [number, number]>> = [];
  let current: Array<readonly [number, number]> = [];
  for (const [t, v] of points) {
    if (v === null || !Number.isFinite(v) || !Number.isFinite(t)) {
      if (current.length > 0) result.push(current);
      current = [];
    } else current.push([t, v]);
  }
  if (current.length > 0) result.push(current);
  return result;
}

function lines(spec: LineChartSpec, f: Frame): string[] {
  const out: string[] = [];
  spec.series.forEach((series, index) => {
    const colour = palette[index % palette.length];
    for (const run of runs(series.points)) {
      if (run.length === 1) {
        const [t, v] = run[0]!;
        out.push(`<circle class="series" cx="${fixed(f.x(t))}" cy="${fixed(f.y(v))}" r="2" fill="${colour}"/>`);
        continue;
      }
      const d = run.map(([t, v], i) => `${i === 0 ? "M" : "L"}${fixed(f.x(t))} ${fixed(f.y(v))}`).join("");
      out.push(`<path class="series" d="${d}" fill="none" stroke="${colour}" stroke-width="2" stroke-linejoin="round"/>`);
    }
  });
  const measured = spec.series.some((s) => runs(s.points).length > 0);
  if (!measured) {
    const midX = (f.plotLeft + f.plotRight) / 2;
    const midY = (f.plotTop + f.plotBottom) / 2;
    out.push(`<text x="${midX}" y="${midY}" text-anchor="middle" font-size="14" fill="#595959">no samples</text>`);
  }
  return out;
}

/** Greedy line wrapping of key entries to the chart's width. */
function wrap(entries: string[], maxWidth: number): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let used = 0;
  for (const entry of entries) {
    const width = (entry.length + 3) * charWidth;
    if (row.length > 0 && used + width > maxWidth) {
      rows.push(row);
      row = [];
      used = 0;
    }
    row.push(entry);
    used += width;
  }
  if (row.length > 0) rows.push(row);
  return rows;
}

/** Series swatches, then the fault windows' numbers and names; returns the markup and the height used. */
function legend(spec: LineChartSpec, f: Frame): { markup: string[]; bottom: number } {
  const out: string[] = [];
  let x = f.plotLeft;
  const y = f.plotBottom + 60;
  spec.series.forEach((series, index) => {
    const colour = palette[index % palette.length];
    out.push(`<line x1="${x}" y1="${y - 4}" x2="${x + 20}" y2="${y - 4}" stroke="${colour}" stroke-width="3"/>`);
    out.push(`<text x="${x + 26}" y="${y}" font-size="12" fill="${textColour}">${escapeXml(series.label)}</text>`);
    x += 26 + series.label.length * charWidth + 18;
  });
  if (spec.windows.length === 0) return { markup: out, bottom: y + 10 };
  out.push(`<rect x="${x}" y="${y - 11}" width="20" height="12" fill="${windowFill}" fill-opacity="0.22" stroke="#8c8c8c"/>`);
  out.push(`<text x="${x + 26}" y="${y}" font-size="12" fill="${textColour}">fault window (numbered as in the fault table)</text>`);
  const entries = spec.windows.map((w) => `${w.label} ${w.name}`);
  const rows = wrap(entries, f.plotRight - f.plotLeft);
  rows.forEach((row, i) => {
    const rowY = y + (i + 1) * layout.keyLineHeight + 4;
    out.push(`<text x="${f.plotLeft}" y="${rowY}" font-size="12" fill="#404040">${escapeXml(row.join(" · "))}</text>`);
  });
  return { markup: out, bottom: y + rows.length * layout.keyLineHeight + 12 };
}

/** The chart as a standalone SVG document. */
export function renderLineChart(spec: LineChartSpec): string {
  const f = frameFor(spec);
  const key = legend(spec, f);
  const height = Math.ceil(key.bottom);
  const title = escapeXml(spec.title);
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${layout.width} ${height}" width="${layout.width}" height="${height}" role="img" aria-label="${title}" ${font}>`,
    `<title>${title}</title>`,
    // An opaque background keeps the dark text readable when GitHub shows the picture in dark mode.
    `<rect width="${layout.width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${f.plotLeft}" y="26" font-size="16" font-weight="bold" fill="${textColour}">${title}</text>`,
    `<rect class="plot-area" x="${f.plotLeft}" y="${f.plotTop}" width="${f.plotRight - f.plotLeft}" height="${f.plotBottom - f.plotTop}" fill="none"/>`,
    ...windows(spec, f),
    ...axes(spec, f),
    ...lines(spec, f),
    ...key.markup,
    "</svg>",
    "",
  ].join("\n");
}
