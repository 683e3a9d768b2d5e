// Rows in, Markdown out. A row is one measurement across the proxies; adding a measurement is adding a
// row. Targets are part of the row, so the verdict paragraph is computed, never written by hand.
import { readFile, writeFile } from "node:fs/promises";

export const PROXIES = ["gateway", "nginx", "caddy"] as const;
export type ProxyName = (typeof PROXIES)[number];

export interface Row {
  name: string;
  unit: string;
  /** Median (or the single value); null when the measurement failed. */
  gateway: number | null;
  nginx: number | null;
  caddy: number | null;
  /** The registry without any proxy (plain HTTP), for context; absent when not measured. */
  direct?: number | null;
  /** Throughput rows: ratios against nginx and Caddy are shown. */
  higherIsBetter: boolean;
  /** Target: gateway / Caddy at least this (1.0 for the throughput targets). Rows without a target are context. */
  atLeastCaddy?: number;
  /** Target: the gateway's value at most `limit` (memory rows); a null limit could not be computed. */
  gatewayAtMost?: Ceiling;
  /** Every sample behind the medians, shown under the table. */
  samples?: Partial<Record<ProxyName | "direct", number[]>>;
}

export interface Ceiling {
  limit: number | null;
  /** How the limit is stated, e.g. "60 MB" or "the idle RSS of the process that served it + 32 MB". */
  what: string;
  /** The numbers the limit was computed from, when it is not a constant. */
  basis?: string;
}

/** The cost of one gateway feature: the same gateway with it off and on, same run. */
export interface OverheadRow {
  name: string;
  unit: string;
  off: number | null;
  on: number | null;
  /** Median gateway CPU per request, µs: steadier than req/s when the machine is shared. */
  cpuMicrosPerRequest?: { off: number; on: number };
  /** Largest acceptable (off − on) / off, in percent. */
  targetPercent: number;
  samples?: { off: number[]; on: number[] };
}

/** A gateway latency under some load against the same latency on a quiet gateway, same run. */
export interface LatencyRow {
  name: string;
  /** p95, ms; null when the measurement failed. */
  quiet: number | null;
  loaded: number | null;
  /** Largest acceptable loaded / quiet. */
  targetRatio: number;
  /** What else the run saw (sample counts, what the load got), shown in the table. */
  note?: string;
}

export interface Report {
  command: string;
  /** process.version of the node that ran the bench and every gateway process it started. */
  node: string;
  date: Date;
  durationSeconds: number;
  machine: string[];
  rows: Row[];
  overheads: OverheadRow[];
  latencies?: LatencyRow[];
  /** Cases that compare no proxies (bench/web-page.ts), each a Markdown block with its own heading. */
  cases?: string[];
  method: string[];
  problems: string[];
}

const LABEL: Record<ProxyName | "direct", string> = { gateway: "gateway", nginx: "nginx", caddy: "Caddy", direct: "registry direct" };

export function median(values: number[]): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function num(value: number | null | undefined): string {
  if (value === null || value === undefined) return "error";
  return value >= 100 ? value.toFixed(0) : value.toFixed(1);
}

function ratio(row: Row, other: ProxyName): number | null {
  const theirs = row[other];
  return row.higherIsBetter && row.gateway !== null && theirs !== null && theirs > 0 ? row.gateway / theirs : null;
}

const ratioText = (row: Row, other: ProxyName) => (row.higherIsBetter ? (ratio(row, other)?.toFixed(2) ?? "error") : "—");

export function markdownTable(rows: Row[]): string {
  const withDirect = rows.some((row) => row.direct !== undefined);
  const header = ["Measurement", "Unit", "gateway", "nginx", "Caddy", "gateway/nginx", "gateway/Caddy", ...(withDirect ? ["registry direct"] : [])];
  const lines = [`| ${header.join(" | ")} |`, `|${header.map((_, i) => (i < 2 ? "---" : "---:")).join("|")}|`];
  for (const row of rows) {
    const cells = [row.name, row.unit, num(row.gateway), num(row.nginx), num(row.caddy), ratioText(row, "nginx"), ratioText(row, "caddy")];
    if (withDirect) cells.push(row.direct === undefined ? "—" : num(row.direct));
    lines.push(`| ${cells.join(" | ")} |`);
  }
  return lines.join("\n");
}

function samplesList(rows: Row[]): string {
  const lines: string[] = [];
  for (const row of rows) {
    if (!row.samples) continue;
    const parts = Object.entries(row.samples).map(([who, values]) => `${LABEL[who as ProxyName]} ${values.map((v) => num(v)).join(", ")}`);
    lines.push(`- ${row.name} (${row.unit}): ${parts.join("; ")}`);
  }
  return lines.join("\n");
}

function rangesOverlap(a: number[] | undefined, b: number[] | undefined): boolean {
  if (!a?.length || !b?.length) return false;
  return Math.min(...a) <= Math.max(...b) && Math.min(...b) <= Math.max(...a);
}

/** The row's target in words, or null when the row is context only. */
function targetText(row: Row): string | null {
  if (row.atLeastCaddy !== undefined) return `${row.name} ≥ ${row.atLeastCaddy.toFixed(2)}× Caddy`;
  if (row.gatewayAtMost !== undefined) return `${row.name} ≤ ${row.gatewayAtMost.what}`;
  return null;
}

/** Whether the gateway meets the row's target, with the numbers behind it. */
function judged(row: Row): { met: boolean; text: string } | null {
  if (row.atLeastCaddy !== undefined) {
    const vsCaddy = ratio(row, "caddy");
    const vsNginx = ratio(row, "nginx");
    const text = `${row.name} (${vsCaddy?.toFixed(2) ?? "n/a"}× Caddy; ${vsNginx?.toFixed(2) ?? "n/a"}× nginx)`;
    return { met: vsCaddy !== null && vsCaddy >= row.atLeastCaddy, text };
  }
  if (row.gatewayAtMost !== undefined) {
    const { limit, what, basis } = row.gatewayAtMost;
    const stated = basis ? `${what} (${basis})` : what;
    const limitText = limit === null ? `${stated}, not computable` : basis ? `${stated} = ${num(limit)} ${row.unit}` : `${stated}`;
    const text = `${row.name} (${num(row.gateway)} ${row.unit}, target ≤ ${limitText})`;
    return { met: row.gateway !== null && limit !== null && row.gateway <= limit, text };
  }
  return null;
}

/** The targets, row by row: met or missed, with the numbers. No adjectives. */
export function verdict(rows: Row[]): string {
  const met: string[] = [];
  const missed: string[] = [];
  for (const row of rows) {
    const result = judged(row);
    if (result) (result.met ? met : missed).push(result.text);
  }
  const targets = rows.map(targetText).filter((text): text is string => text !== null);
  const parts = [
    `Targets for the gateway: ${targets.join("; ")}. Rows without a target are there for context.`,
    `The gateway meets ${met.length} of ${targets.length}.`,
  ];
  if (met.length) parts.push(`Met: ${met.join("; ")}.`);
  if (missed.length) parts.push(`Missed: ${missed.join("; ")}.`);
  // How close each proxy gets to the bare registry says whether a row measures the proxies or the backend.
  const share = (row: Row, who: ProxyName) =>
    row[who] !== null && row.direct ? `${LABEL[who]} ${((100 * row[who]!) / row.direct).toFixed(0)} %` : `${LABEL[who]} n/a`;
  const ceilings = rows
    .filter((row) => row.higherIsBetter && row.direct)
    .map((row) => `${row.name}: ${PROXIES.map((who) => share(row, who)).join(", ")}`);
  // A ratio whose sample ranges overlap is within this run's noise: say so rather than call it a result.
  const overlapping = rows.flatMap((row) =>
    PROXIES.slice(1)
      .filter((other) => rangesOverlap(row.samples?.gateway, row.samples?.[other]))
      .map((other) => `${row.name} vs ${LABEL[other]}`),
  );
  if (overlapping.length) parts.push(`The gateway's samples overlap the other proxy's (difference within run-to-run noise) for: ${overlapping.join("; ")}.`);
  if (ceilings.length) parts.push(`Share of the registry's own throughput without a proxy — ${ceilings.join("; ")}.`);
  return parts.join(" ");
}

function overheadPercent(row: OverheadRow): number | null {
  return row.off !== null && row.on !== null && row.off > 0 ? ((row.off - row.on) / row.off) * 100 : null;
}

export function overheadTable(rows: OverheadRow[]): string {
  const lines = [
    "| Feature | Unit | off | on | overhead | target | CPU µs/request off → on |",
    "|---|---|---:|---:|---:|---:|---:|",
  ];
  for (const row of rows) {
    const overhead = overheadPercent(row);
    const cpu = row.cpuMicrosPerRequest ? `${row.cpuMicrosPerRequest.off.toFixed(0)} → ${row.cpuMicrosPerRequest.on.toFixed(0)}` : "—";
    const verdictText = overhead === null ? "error" : overhead <= row.targetPercent ? "met" : "missed";
    lines.push(
      `| ${row.name} | ${row.unit} | ${num(row.off)} | ${num(row.on)} | ${overhead === null ? "error" : `${overhead.toFixed(1)} %`} | ≤ ${row.targetPercent} % (${verdictText}) | ${cpu} |`,
    );
  }
  return lines.join("\n");
}

export function latencyTable(rows: LatencyRow[]): string {
  const lines = ["| Gateway under load | quiet p95 ms | loaded p95 ms | ratio | target | notes |", "|---|---:|---:|---:|---:|---|"];
  for (const row of rows) {
    const ratio = row.quiet !== null && row.loaded !== null && row.quiet > 0 ? row.loaded / row.quiet : null;
    const verdictText = ratio === null ? "error" : ratio <= row.targetRatio ? "met" : "missed";
    lines.push(
      `| ${row.name} | ${num(row.quiet)} | ${num(row.loaded)} | ${ratio === null ? "error" : `${ratio.toFixed(2)}×`} | ≤ ${row.targetRatio}× (${verdictText}) | ${row.note ?? ""} |`,
    );
  }
  return lines.join("\n");
}

function overheadSamples(rows: OverheadRow[]): string {
  return rows
    .filter((row) => row.samples)
    .map((row) => `- ${row.name} (${row.unit}): off ${row.samples!.off.map((v) => num(v)).join(", ")}; on ${row.samples!.on.map((v) => num(v)).join(", ")}`)
    .join("\n");
}

/** The Node major of a version string ("v26.12.1" → 26). */
const majorOf = (version: string) => Number(/^v?(\d+)\./.exec(version)?.[1]);

const sectionStart = (major: number) => `<!-- node ${major}: written by bench/run.ts on Node ${major}, replaced by its next run there -->`;
const sectionEnd = (major: number) => `<!-- /node ${major} -->`;

/** One run's section of docs/benchmarks.md: everything one `npm run bench` measured, on one Node major. */
export function markdownSection(report: Report): string {
  const samples = [samplesList(report.rows), overheadSamples(report.overheads)].filter(Boolean).join("\n");
  const major = majorOf(report.node);
  return [
    sectionStart(major),
    `## Node ${major} (${report.node})`,
    "",
    `- Command: \`${report.command}\``,
    `- Date: ${report.date.toISOString()}`,
    `- Total run time: ${report.durationSeconds.toFixed(0)} s`,
    "",
    "### Machine",
    "",
    ...report.machine.map((line) => `- ${line}`),
    "",
    "### Results",
    "",
    markdownTable(report.rows),
    "",
    verdict(report.rows),
    "",
    ...(report.overheads.length
      ? ["#### What each gateway feature costs (the gateway alone, feature off vs on, same run)", "", overheadTable(report.overheads), ""]
      : []),
    ...(report.latencies?.length ? ["#### Latency under load (the gateway alone, quiet vs loaded, same run)", "", latencyTable(report.latencies), ""] : []),
    ...(samples ? ["All samples, in run order:", "", samples, ""] : []),
    ...(report.cases ?? []).flatMap((block) => [block, ""]),
    "### Method",
    "",
    ...report.method.map((line) => `- ${line}`),
    "",
    ...(report.problems.length ? ["### Problems seen during the run", "", ...report.problems.map((p) => `- ${p}`), ""] : []),
    sectionEnd(major),
  ].join("\n");
}

/** The sections of a docs/benchmarks.md, by Node major. */
export function sectionsOf(markdown: string): Map<number, string> {
  const sections = new Map<number, string>();
  for (const match of markdown.matchAll(/^<!-- node (\d+):[^\n]*-->\n[\s\S]*?^<!-- \/node \1 -->$/gm)) sections.set(Number(match[1]), match[0]);
  return sections;
}

/** A section's results table: for each measurement, its unit, the gateway's value and gateway/Caddy. */
function resultsOf(section: string): Map<string, { unit: string; gateway: string; vsCaddy: string }> {
  const table = /^### Results\n\n((?:\|.*\n)+)/m.exec(section)?.[1] ?? "";
  const results = new Map<string, { unit: string; gateway: string; vsCaddy: string }>();
  for (const line of table.trim().split("\n").slice(2)) {
    const [name, unit, gateway, , , , vsCaddy] = line.replace(/^\| | \|$/g, "").split(" | ");
    if (name && unit && gateway && vsCaddy) results.set(name, { unit, gateway, vsCaddy });
  }
  return results;
}

/** The gateway on each Node major, measurement by measurement: the runs' own tables side by side. */
function sideBySide(sections: Map<number, string>, majors: number[]): string {
  const results = majors.map((major) => resultsOf(sections.get(major)!));
  const names = [...new Set(results.flatMap((r) => [...r.keys()]))];
  const header = ["Measurement", "Unit", ...majors.flatMap((major) => [`gateway, Node ${major}`, `gateway/Caddy, Node ${major}`])];
  const lines = [`| ${header.join(" | ")} |`, `|${header.map((_, i) => (i < 2 ? "---" : "---:")).join("|")}|`];
  for (const name of names) {
    const unit = results.map((r) => r.get(name)?.unit).find(Boolean) ?? "";
    const cells = results.flatMap((r) => [r.get(name)?.gateway ?? "not measured", r.get(name)?.vsCaddy ?? "not measured"]);
    lines.push(`| ${[name, unit, ...cells].join(" | ")} |`);
  }
  return lines.join("\n");
}

/** docs/benchmarks.md: one section per Node major the bench ran on (newest first), and their tables side by side. */
export function markdownReport(sections: Map<number, string>): string {
  const majors = [...sections.keys()].sort((a, b) => b - a);
  return [
    "# Benchmarks: registry-gateway vs nginx vs Caddy",
    "",
    "Generated by `bench/run.ts`; edit the generator, not this file. Where the gateway's time goes (CPU profiles",
    "of pull, push and authenticated GETs) and what was tried to close the gap: [profile.md](profile.md).",
    "",
    "One run per Node major, each in its own section: the bench, its Node clients and every gateway process run on",
    "that major (`npm run bench` on the image's, `npm run bench -- --node 20` on Node 20); nginx, Caddy, the",
    "registry, curl and wrk are the same. A run replaces the section of its major and leaves the others.",
    "",
    ...(majors.length > 1
      ? [
          `## The gateway on Node ${majors.join(" and on Node ")}, side by side`,
          "",
          `From each major's own run (${majors.map((major) => `Node ${major}: ${/^- Date: (.+)$/m.exec(sections.get(major)!)?.[1] ?? "date unknown"}`).join("; ")}); the machine, its load and every sample are in the sections below.`,
          "",
          sideBySide(sections, majors),
          "",
        ]
      : []),
    ...majors.flatMap((major) => [sections.get(major)!, ""]),
  ].join("\n");
}

/** Writes `report` as its Node major's section of the file at `path`, keeping the other majors' sections. */
export async function writeReport(path: string, report: Report): Promise<void> {
  const sections = sectionsOf(await readFile(path, "utf8").catch(() => ""));
  sections.set(majorOf(report.node), markdownSection(report));
  await writeFile(path, markdownReport(sections));
}
