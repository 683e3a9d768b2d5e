// Turns a soak run's result into docs/reliability.md and its SVG plots.
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import type { SoakResult } from "./result.js";
import { soakPlots } from "./report-plots.js";
import { reportMarkdown } from "./report-markdown.js";

export interface ReportPaths {
  /** e.g. docs/reliability.md */
  markdownPath: string;
  /** Directory for the plots, e.g. docs/reliability/ (linked relative to markdownPath). */
  svgDir: string;
}

/** Writes the plots into paths.svgDir and the report, which links them relative to its own directory (with
 *  forward slashes, as Markdown links need on every platform). */
export async function writeReport(result: SoakResult, paths: ReportPaths): Promise<void> {
  const plots = soakPlots(result);
  await mkdir(paths.svgDir, { recursive: true });
  await mkdir(path.dirname(paths.markdownPath), { recursive: true });
  await Promise.all(plots.map((plot) => writeFile(path.join(paths.svgDir, plot.file), plot.svg)));
  const relativeDir = path.relative(path.dirname(paths.markdownPath), paths.svgDir).split(path.sep).join("/");
  const svgLink = (file: string) => (relativeDir === "" ? file : `${relativeDir}/${file}`);
  await writeFile(paths.markdownPath, reportMarkdown(result, plots, svgLink));
}
