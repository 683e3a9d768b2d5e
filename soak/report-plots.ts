// Which plots the soak report shows: one chart per resource or traffic figure, fault windows shaded on each.
import type { SoakResult, Sample } from "./result.js";
import { renderLineChart, type ShadedWindow } from "./svg-plot.js";

export interface Plot {
  /** File name inside the report's SVG directory. */
  file: string;
  /** Alt text and heading. */
  title: string;
  svg: string;
}

interface PlotDefinition {
  file: string;
  title: string;
  yLabel: string;
  series: Array<{ label: string; value: (s: Sample) => number | null }>;
}

const definitions: PlotDefinition[] = [
  { file: "rss.svg", title: "Memory: resident set size of all gateway processes", yLabel: "RSS (MB)", series: [{ label: "RSS, all gateways", value: (s) => s.rssMb }] },
  { file: "fds.svg", title: "Open file descriptors of all gateway processes", yLabel: "file descriptors", series: [{ label: "open fds, all gateways", value: (s) => s.fds }] },
  {
    file: "connections.svg",
    title: "Connections from the gateways to backends and to Redis",
    yLabel: "open connections",
    series: [
      { label: "to backend registries", value: (s) => s.backendConnections },
      { label: "to Redis", value: (s) => s.redisConnections },
    ],
  },
  { file: "request-rate.svg", title: "Request rate, all clients", yLabel: "requests per second", series: [{ label: "requests/s", value: (s) => s.requestRate }] },
  { file: "p99.svg", title: "p99 latency of small GETs", yLabel: "p99 latency (ms)", series: [{ label: "p99 small GET", value: (s) => s.p99Ms }] },
];

/** Fault windows numbered in schedule order, the same numbers as the report's fault table. */
export function numberedWindows(result: SoakResult): ShadedWindow[] {
  return result.faults.map((fault, index) => ({ label: String(index + 1), name: fault.name, start: fault.start, end: fault.end }));
}

export function soakPlots(result: SoakResult): Plot[] {
  const windows = numberedWindows(result);
  return definitions.map((definition) => ({
    file: definition.file,
    title: definition.title,
    svg: renderLineChart({
      title: definition.title,
      yLabel: definition.yLabel,
      xMax: result.durationSeconds,
      windows,
      series: definition.series.map((series) => ({
        label: series.label,
        points: result.samples.map((sample) => [sample.t, series.value(sample)] as const),
      })),
    }),
  }));
}
