// The registry browser's repository list (`https://HOST:PORT/`, 100 repositories a page) on a registry of
// 5,000 repositories, loaded in headless chromium: bytes transferred and time to first render, cold (a
// fresh browser profile: empty cache) and warm (the same page again), anonymous and signed in. The gateway
// runs as users run it (`node dist/main.js serve`, one process); the catalog is written straight into the
// registry's storage (catalog.ts).
//
// Alone: `BENCH_ONLY=web-page npm run bench`, or `node --import tsx bench/web-page.ts` after `npm run
// build`; either replaces only this table in the current Node major's section of docs/benchmarks.md
// (BENCH_QUICK=1: 500 repositories, 2 loads, and the file is left as it was).
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { Browser, Page } from "playwright-core";
import { launchBrowser } from "../test/helpers/browser.js";
import { OCI_MANIFEST } from "../test/helpers/oci.js";
import { startRegistry } from "../test/helpers/registry.js";
import { BROWSER_HOST, signIn, startBrowserSite } from "./browser-site.js";
import { repositoryNames, writeCatalog } from "./catalog.js";
import { measureLoad, type PageLoad } from "./page-load.js";
import { markdownReport, median, sectionsOf } from "./report.js";


export interface WebPageOptions {
  repositories: number;
  /** Page loads per visitor and state (each cold one in a fresh browser context). */
  loads: number;
}

export interface VisitorLoads {
  visitor: "anonymous" | "signed in";
  cold: PageLoad[];
  warm: PageLoad[];
}

export interface WebPageResult extends WebPageOptions {
  visitors: VisitorLoads[];
  /** What failed without stopping the rest (e.g. signing in). */
  problems: string[];
}

export async function benchWebPage(options: WebPageOptions): Promise<WebPageResult> {
  const cleanups: (() => Promise<unknown>)[] = [];
  try {
    const dir = await mkdtemp(join(tmpdir(), "rg-bench-web-"));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const names = repositoryNames(options.repositories);
    const image = await writeCatalog(join(dir, "registry", "storage"), names);
    const registry = await startRegistry({ rootDir: join(dir, "registry") });
    cleanups.push(() => registry.stop());
    await expectServed(registry.url, names.at(-1)!, image.manifestDigest);

    const site = await startBrowserSite(dir, registry.url);
    cleanups.push(() => site.gateway.process.stop(10_000));
    const browser = await launchBrowser([BROWSER_HOST]);
    cleanups.push(() => browser.close());

    const origin = site.origin;
    // Not counted: the gateway's and the registry's first catalog read (JIT, cold directory cache) would be
    // the first cold load's alone; "cold" here means the browser's cache.
    await warmUp(browser, `${origin}/`);
    const problems: string[] = [];
    const visitors = [await loadsOf(browser, `${origin}/`, options.loads, "anonymous")];
    try {
      visitors.push(await loadsOf(browser, `${origin}/`, options.loads, "signed in", (page) => signIn(page, origin)));
    } catch (err) {
      problems.push(`signed in: ${(err as Error).message.split("\n")[0]}`);
    }
    return { ...options, visitors, problems };
  } finally {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
  }
}

/** The catalog is served: the last repository's tag resolves to the image written. */
async function expectServed(registryUrl: string, repository: string, digest: string): Promise<void> {
  const res = await fetch(`${registryUrl}/v2/${repository}/manifests/latest`, { headers: { accept: OCI_MANIFEST } });
  await res.arrayBuffer();
  if (res.status !== 200 || res.headers.get("docker-content-digest") !== digest) throw new Error(`the registry does not serve ${repository}:latest (${res.status})`);
}

/** `loads` times: a fresh context (empty cache, no cookies), optionally signed in, then the page cold and warm. */
async function loadsOf(browser: Browser, url: string, loads: number, visitor: VisitorLoads["visitor"], prepare?: (page: Page) => Promise<void>): Promise<VisitorLoads> {
  const result: VisitorLoads = { visitor, cold: [], warm: [] };
  for (let i = 0; i < loads; i++) {
    const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 800 } });
    try {
      const page = await context.newPage();
      if (prepare) {
        await prepare(page);
        // Signing in loaded the login page's assets: forgotten, so the first list load is cold like the anonymous one.
        await (await context.newCDPSession(page)).send("Network.clearBrowserCache");
      }
      result.cold.push(expectPage(await measureLoad(page, url), url));
      result.warm.push(expectPage(await measureLoad(page, url), url));
    } finally {
      await context.close();
    }
  }
  return result;
}

async function warmUp(browser: Browser, url: string): Promise<void> {
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  try {
    expectPage(await measureLoad(await context.newPage(), url), url);
  } finally {
    await context.close();
  }
}

function expectPage(load: PageLoad, url: string): PageLoad {
  if (load.status !== 200) throw new Error(`${url} answered ${load.status}: is the registry browser there?`);
  return load;
}

// ---- the report ------------------------------------------------------------------------------------------

const BLOCK_START = "<!-- web-page: written by bench/web-page.ts -->";
const BLOCK_END = "<!-- /web-page -->";

const kb = (bytes: number | null) => (bytes === null ? "n/a" : `${(bytes / 1024).toFixed(1)} KiB`);
const ms = (value: number | null) => (value === null ? "n/a" : `${value.toFixed(0)} ms`);

/** "2", or "2–3" when the loads differ. */
function range(values: readonly number[]): string {
  if (!values.length) return "n/a";
  const low = Math.min(...values);
  const high = Math.max(...values);
  return low === high ? String(low) : `${low}–${high}`;
}

function medianOf(loads: readonly PageLoad[], value: (load: PageLoad) => number | null): number | null {
  return median(loads.map(value).filter((v): v is number => v !== null));
}

/** The Markdown block for docs/benchmarks.md: a table of medians, the samples and how they were taken. */
export function webPageMarkdown(result: WebPageResult): string {
  const lines = [
    BLOCK_START,
    `#### Registry browser: the repository list page (${result.repositories.toLocaleString("en")} repositories, 100 a page)`,
    "",
    "| Visitor | Load | Transferred (document + assets) | Document (transferred) | Subresources | First contentful paint | Document responseEnd |",
    "|---|---|---:|---:|---:|---:|---:|",
  ];
  for (const { visitor, cold, warm } of result.visitors) {
    for (const [state, loads] of [["cold", cold], ["warm", warm]] as const) {
      const cells = [
        kb(medianOf(loads, (l) => l.transferredBytes)),
        kb(medianOf(loads, (l) => l.documentTransferBytes)),
        range(loads.map((l) => l.resources)),
        ms(medianOf(loads, (l) => l.firstContentfulPaintMs)),
        ms(medianOf(loads, (l) => l.responseEndMs)),
      ];
      lines.push(`| ${visitor} | ${state} | ${cells.join(" | ")} |`);
    }
  }
  const samples = result.visitors.flatMap(({ visitor, cold, warm }) =>
    [["cold", cold], ["warm", warm]].map(
      ([state, loads]) =>
        `- ${visitor}, ${state}: FCP ${(loads as PageLoad[]).map((l) => l.firstContentfulPaintMs?.toFixed(0) ?? "n/a").join(", ")} ms; bytes ${(loads as PageLoad[]).map((l) => l.transferredBytes).join(", ")}`,
    ),
  );
  lines.push(
    "",
    `Medians of ${result.loads} loads each, after one load not counted (the server side's first catalog read). Headless chromium (system \`/usr/bin/chromium\` via playwright-core, 1280×800) loads \`https://${BROWSER_HOST}:PORT/\` from a gateway process (\`workers: 1\`, htpasswd site where everyone may browse) in front of one \`docker-registry\` holding the catalog; browser, gateway and registry share the machine. Cold: a fresh browser context (empty cache); signed in, after the login form, with the cache cleared. Warm: the same page again in that context (the document is fetched again, cached assets are not). Bytes are Resource Timing's transferSize (headers included, 0 for a cache hit); first contentful paint and responseEnd are ms from navigation start.`,
    "",
    ...samples,
    ...(result.problems.length ? ["", ...result.problems.map((p) => `- Problem: ${p}`)] : []),
    BLOCK_END,
  );
  return lines.join("\n");
}

/** A Node major's section of docs/benchmarks.md with this block in place of its previous one (or added before its Method heading). */
export function spliceWebPageBlock(section: string, block: string): string {
  const existing = new RegExp(`${escapeRegExp(BLOCK_START)}[\\s\\S]*?${escapeRegExp(BLOCK_END)}`);
  if (existing.test(section)) return section.replace(existing, () => block);
  return section.replace(/^### Method$/m, () => `${block}\n\n### Method`);
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

export const QUICK_WEB_PAGE: WebPageOptions = { repositories: 500, loads: 2 };
export const FULL_WEB_PAGE: WebPageOptions = { repositories: 5000, loads: 7 };

const REPORT_PATH = resolve(import.meta.dirname, "..", "docs", "benchmarks.md");

/** This case alone: measures, prints the table, and (unless BENCH_QUICK=1) puts it into docs/benchmarks.md. */
export async function runWebPageAlone(): Promise<void> {
  const quick = process.env.BENCH_QUICK === "1";
  const result = await benchWebPage(quick ? QUICK_WEB_PAGE : FULL_WEB_PAGE);
  const block = webPageMarkdown(result);
  process.stdout.write(`${block}\n`);
  if (quick) return;
  const major = Number(process.versions.node.split(".")[0]);
  const sections = sectionsOf(await readFile(REPORT_PATH, "utf8").catch(() => ""));
  const section = sections.get(major);
  if (!section) {
    process.stderr.write(`[bench] docs/benchmarks.md has no Node ${major} section yet: run the whole bench once; the table is above\n`);
    return;
  }
  sections.set(major, spliceWebPageBlock(section, block));
  await writeFile(REPORT_PATH, markdownReport(sections));
  process.stderr.write(`[bench] wrote the registry browser table into ${REPORT_PATH}\n`);
}

if (import.meta.url === `file://${process.argv[1]}`) await runWebPageAlone();
