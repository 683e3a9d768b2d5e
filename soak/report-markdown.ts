// The text of docs/reliability.md: what was run, the verdict, the invariants, blobs, outcomes and faults,
// then the plots. Every figure comes from the run's result; nothing here is written by hand.
import { passed, type SoakResult } from "./result.js";
import type { Plot } from "./report-plots.js";

/** A table cell: a `|` would end the cell, a newline the row, and `<` could start HTML GitHub swallows. */
export function cell(text: string | number): string {
  return String(text).replace(/\r?\n/g, " ").replace(/\|/g, "\\|").replace(/</g, "&lt;");
}

function table(header: string[], rows: Array<Array<string | number>>, alignRight: number[] = []): string {
  const rule = header.map((_, i) => (alignRight.includes(i) ? "---:" : "---"));
  return [header, rule, ...rows.map((row) => row.map(cell))].map((row) => `| ${row.join(" | ")} |`).join("\n");
}

/** Seconds since start as m:ss, how a reader finds them on the plots' minute axis. */
export function clock(seconds: number): string {
  const whole = Math.max(0, Math.round(seconds));
  return `${Math.floor(whole / 60)}:${String(whole % 60).padStart(2, "0")}`;
}

function runSection(result: SoakResult): string {
  const measuredMinutes = (result.durationSeconds / 60).toFixed(1);
  return [
    `- Command: \`${result.command}\``,
    `- Commit: \`${result.commit}\``,
    `- Machine: ${cell(result.machine)}`,
    `- Started: ${cell(result.startedAt)}`,
    `- Length: ${measuredMinutes} min measured (${result.minutes} min planned)`,
  ].join("\n");
}

function invariantsSection(result: SoakResult): string {
  if (result.invariants.length === 0) return "No invariants were checked.";
  return table(["Invariant", "Verdict", "Figures"], result.invariants.map((i) => [i.name, i.ok ? "held" : "**BROKEN**", i.detail]));
}

function blobsSection(result: SoakResult): string {
  const { pushed, verified, lost, corrupt } = result.blobs;
  const verdict =
    lost === 0 && corrupt === 0
      ? "No blob was lost or corrupted."
      : `**${lost} blob(s) lost and ${corrupt} corrupted** — every acknowledged push must be readable with its digest.`;
  const rows = [["pushed (acknowledged)", pushed], ["pulled back and verified", verified], ["lost", lost], ["corrupt", corrupt]];
  return `${table(["Blobs", "Count"], rows, [1])}\n\n${verdict}`;
}

function outcomesSection(result: SoakResult): string {
  if (result.outcomes.length === 0) return "No operations were recorded.";
  const rows: Array<Array<string | number>> = result.outcomes.map((o) => [o.operation, o.ok, o.failedInFaultWindow, o.unexplained]);
  const sum = (pick: (o: SoakResult["outcomes"][number]) => number) => result.outcomes.reduce((n, o) => n + pick(o), 0);
  rows.push(["**all**", sum((o) => o.ok), sum((o) => o.failedInFaultWindow), sum((o) => o.unexplained)]);
  const explanation =
    "A failure counts as explained only when it happened inside a fault window that accounts for it; " +
    "every unexplained failure breaks the run.";
  return `${explanation}\n\n${table(["Operation", "ok", "failed in a fault window", "unexplained"], rows, [1, 2, 3])}`;
}

function faultsSection(result: SoakResult): string {
  if (result.faults.length === 0) return "No faults were injected.";
  const rows = result.faults.map((f, i) => [i + 1, f.name, clock(f.start), clock(f.end), f.detail]);
  const note = "The end of a window is when the fault's effects are allowed to end: the fault cleared plus its settling time.";
  return `${note}\n\n${table(["#", "Fault", "Start", "End", "Detail"], rows)}`;
}

function plotsSection(plots: Plot[], svgLink: (file: string) => string): string {
  const intro =
    "Sampled every few seconds, summed over every gateway process (primaries and workers). " +
    "Grey bands are the fault windows, numbered as in the fault schedule.";
  const figures = plots.map((p) => `### ${p.title}\n\n![${cell(p.title)}](${svgLink(p.file)})`);
  return [intro, ...figures].join("\n\n");
}

/** The whole report; svgLink turns a plot's file name into a link relative to the report. */
export function reportMarkdown(result: SoakResult, plots: Plot[], svgLink: (file: string) => string): string {
  const ok = passed(result);
  const held = result.invariants.filter((i) => i.ok).length;
  const verdict = ok
    ? `**Verdict: passed** — all ${result.invariants.length} invariants held.`
    : `**Verdict: FAILED** — ${result.invariants.length - held} of ${result.invariants.length} invariants broken.`;
  return [
    "# Reliability: a fleet under a soak with injected faults",
    "Three gateways behind HAProxy, sharing one Redis, under mixed push/pull traffic for the whole run while " +
      "the faults below are injected one after another. This file is written by `npm run soak`; do not edit it by hand.",
    verdict,
    `## The run\n\n${runSection(result)}`,
    `## Invariants\n\n${invariantsSection(result)}`,
    `## Lost or corrupt blobs\n\n${blobsSection(result)}`,
    `## Outcomes by operation\n\n${outcomesSection(result)}`,
    `## Fault schedule\n\n${faultsSection(result)}`,
    `## Resources and traffic over time\n\n${plotsSection(plots, svgLink)}`,
    "",
  ].join("\n\n");
}
