import { test } from "node:test";
import assert from "node:assert/strict";
import { renderLineChart, type LineChartSpec } from "../../../soak/svg-plot.js";
import { niceTicks } from "../../../soak/ticks.js";
import { escapeXml } from "../../../soak/xml.js";
import { assertWellFormedXml } from "./well-formed.js";

function spec(overrides: Partial<LineChartSpec> = {}): LineChartSpec {
  return {
    title: "p99 latency of small GETs",
    yLabel: "p99 latency (ms)",
    xMax: 1200,
    series: [{ label: "p99", points: [[0, 30], [5, 31], [10, null], [15, 40], [20, 45], [1200, 33]] }],
    windows: [
      { label: "1", name: "redis-killed", start: 120, end: 150 },
      { label: "2", name: "gateway-sigkill", start: 152, end: 155 },
      { label: "3", name: "slowloris", start: 900, end: 960 },
    ],
    ...overrides,
  };
}

function plotArea(svg: string): { x: number; y: number; width: number; height: number } {
  const match = /<rect class="plot-area" x="([\d.]+)" y="([\d.]+)" width="([\d.]+)" height="([\d.]+)"/.exec(svg);
  assert.ok(match, "the plot area is marked");
  return { x: Number(match[1]), y: Number(match[2]), width: Number(match[3]), height: Number(match[4]) };
}

/** Every [x, y] a line or point is drawn at. */
function drawnPoints(svg: string): Array<[number, number]> {
  const points: Array<[number, number]> = [];
  for (const [, d] of svg.matchAll(/<path class="series" d="([^"]+)"/g)) {
    for (const [, x, y] of d!.matchAll(/[ML]([-\d.]+) ([-\d.]+)/g)) points.push([Number(x), Number(y)]);
  }
  for (const [, x, y] of svg.matchAll(/<circle class="series" cx="([-\d.]+)" cy="([-\d.]+)"/g)) points.push([Number(x), Number(y)]);
  return points;
}

test("the chart is a well-formed SVG document with a viewBox, a title and a font every system has", () => {
  const svg = renderLineChart(spec());
  assert.equal(assertWellFormedXml(svg), "svg");
  assert.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg" viewBox="0 0 800 \d+"/);
  assert.match(svg, /font-family="[^"]*sans-serif"/);
  assert.match(svg, /<title>p99 latency of small GETs<\/title>/);
  assert.match(svg, />p99 latency \(ms\)</, "the y axis says its unit");
  assert.match(svg, />time since start \(min\)</, "a 20-minute run is plotted in minutes");
});

test("each fault window is one shaded rectangle inside the plot, numbered, and named in the key", () => {
  const svg = renderLineChart(spec());
  const area = plotArea(svg);
  const rects = [...svg.matchAll(/<rect class="fault-window" x="([\d.]+)" y="[\d.]+" width="([\d.]+)"/g)];
  assert.equal(rects.length, 3);
  const xs = rects.map(([, x]) => Number(x));
  assert.ok(xs[0]! < xs[1]! && xs[1]! < xs[2]!, "in time order");
  for (const [, x, width] of rects) {
    assert.ok(Number(x) >= area.x && Number(x) + Number(width) <= area.x + area.width + 0.1);
  }
  // 120 s of a 1200 s axis is a tenth of the width.
  assert.ok(Math.abs(xs[0]! - (area.x + area.width / 10)) < 1);
  assert.match(svg, /1 redis-killed · 2 gateway-sigkill · 3 slowloris/);
});

test("every point is scaled inside the plot area and a null value breaks the line", () => {
  const svg = renderLineChart(spec());
  const area = plotArea(svg);
  const points = drawnPoints(svg);
  assert.equal(points.length, 5, "five measured values, the null one is not drawn");
  for (const [x, y] of points) {
    assert.ok(x >= area.x && x <= area.x + area.width, `x ${x} inside`);
    assert.ok(y >= area.y && y <= area.y + area.height, `y ${y} inside`);
  }
  assert.equal([...svg.matchAll(/<path class="series"/g)].length, 2, "the gap splits the line in two");
  const [first, last] = [points[0]!, points.at(-1)!];
  assert.equal(first[0], area.x, "t = 0 is the left edge");
  assert.ok(Math.abs(last[0] - (area.x + area.width)) < 0.1, "the end of the run is the right edge");
});

test("a series with no measured value, or no samples at all, still makes a readable chart", () => {
  for (const points of [[], [[0, null], [5, null]]] as LineChartSpec["series"][number]["points"][]) {
    const svg = renderLineChart(spec({ series: [{ label: "p99", points }], xMax: 0, windows: [] }));
    assertWellFormedXml(svg);
    assert.doesNotMatch(svg, /class="series"/);
    assert.match(svg, />no samples</);
    assert.doesNotMatch(svg, /NaN|Infinity/);
  }
});

test("text from the run is escaped", () => {
  const name = `cert-rotate <all> & "quoted" 'x'`;
  const svg = renderLineChart(spec({ title: "A <b> & c", windows: [{ label: "1", name, start: 1, end: 2 }] }));
  assertWellFormedXml(svg);
  assert.ok(svg.includes(escapeXml(name)));
  assert.ok(!svg.includes("<all>") && !svg.includes("<b>"));
  assert.equal(escapeXml(`<&>"'\u0001`), "&lt;&amp;&gt;&quot;&apos;");
});

test("ticks are round numbers covering the data", () => {
  assert.deepEqual(niceTicks(0, 47, 5).values, [0, 10, 20, 30, 40, 50]);
  assert.deepEqual(niceTicks(0, 0.3, 3).values, [0, 0.1, 0.2, 0.3]);
  assert.deepEqual(niceTicks(0, 0).values, [0, 0.2, 0.4, 0.6, 0.8, 1]);
});
