// Turns a soak run's result into docs/reliability.md and its SVG plots.
import { writeFile } from "node:fs/promises";
import type { SoakResult } from "./result.js";

export interface ReportPaths {
  /** e.g. docs/reliability.md */
  markdownPath: string;
  /** Directory for the plots, e.g. docs/reliability/ (linked relative to markdownPath). */
  svgDir: string;
}

/** Writes the report; a first version with the raw result only, replaced by the full report. */
export async function writeReport(result: SoakResult, paths: ReportPaths): Promise<void> {
  await writeFile(paths.markdownPath, `# Reliability\n\n\`\`\`json\n${JSON.stringify(result, null, 2)}\n\`\`\`\n`);
}
