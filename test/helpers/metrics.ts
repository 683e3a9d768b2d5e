// Reading Prometheus text exposition in tests: scrape the admin listener, then look samples up by name and
// labels, so a test can assert exact deltas for one label set.

export type Samples = Map<string, number>;

/** `name{a="1",b="2"}` with labels sorted, the key every lookup uses. */
export function seriesKey(name: string, labels: Record<string, string> = {}): string {
  const parts = Object.keys(labels)
    .sort()
    .map((key) => `${key}=${JSON.stringify(labels[key])}`);
  return parts.length ? `${name}{${parts.join(",")}}` : name;
}

const SAMPLE_LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$/;
const LABEL_PAIR = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

export function parseExposition(text: string): Samples {
  const samples: Samples = new Map();
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const match = SAMPLE_LINE.exec(line);
    if (!match) throw new Error(`not an exposition sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, key, value] of (match[2] ?? "").matchAll(LABEL_PAIR)) labels[key!] = JSON.parse(`"${value}"`);
    samples.set(seriesKey(match[1]!, labels), Number(match[3]));
  }
  return samples;
}

/** A sample's value; 0 when the series does not exist (yet), as a counter that never moved. */
export function valueOf(samples: Samples, name: string, labels: Record<string, string> = {}): number {
  return samples.get(seriesKey(name, labels)) ?? 0;
}

export async function scrapeText(adminPort: number): Promise<{ status: number; contentType: string | null; text: string }> {
  const response = await fetch(`http://127.0.0.1:${adminPort}/metrics`);
  return { status: response.status, contentType: response.headers.get("content-type"), text: await response.text() };
}

export async function scrape(adminPort: number): Promise<Samples> {
  const { status, text } = await scrapeText(adminPort);
  if (status !== 200) throw new Error(`/metrics answered ${status}: ${text}`);
  return parseExposition(text);
}

/** How much each named series moved between two scrapes. */
export function delta(before: Samples, after: Samples, name: string, labels: Record<string, string> = {}): number {
  return valueOf(after, name, labels) - valueOf(before, name, labels);
}
