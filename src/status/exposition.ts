// The gateway's own metrics, read back from the Prometheus text that /metrics serves: in a cluster that text
// is already every worker's counts summed, so the status panel shows exactly what a scrape would see.
// Only counters are read, and only the families asked for.

/** One sample line: its family name, labels and value. */
export interface Sample {
  name: string;
  labels: Readonly<Record<string, string>>;
  value: number;
}

const SAMPLE_LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+-?\d+)?$/;
const LABEL_PAIR = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
const ESCAPES: Record<string, string> = { "\\\\": "\\", '\\"': '"', "\\n": "\n" };

/** The samples of the `families` named (exact metric names); lines that do not parse are skipped. */
export function readSamples(text: string, families: ReadonlySet<string>): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const match = SAMPLE_LINE.exec(line);
    if (!match || !families.has(match[1]!)) continue;
    const labels: Record<string, string> = {};
    for (const [, key, raw] of (match[2] ?? "").matchAll(LABEL_PAIR)) labels[key!] = raw!.replace(/\\[\\"n]/g, (escape) => ESCAPES[escape]!);
    const value = Number(match[3]);
    if (Number.isFinite(value)) samples.push({ name: match[1]!, labels, value });
  }
  return samples;
}
