// `npm run screenshots`: the registry browser's main pages and the admin status panel, captured in headless
// chromium at desktop (1280×800) and phone (390×844) sizes into docs/screenshots/NAME-SIZE.png (or $SCREENSHOTS_DIR). It starts a
// registry (a few dozen repositories plus a showcase: multi-arch index, labels, a signature) and a gateway in
// front of it, signs in, and stops everything when done.
import { mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { Browser, Page } from "playwright-core";
import { BROWSER_HOST, BROWSER_USER, signIn, startBrowserSite, type BrowserSite } from "../bench/browser-site.js";
import { repositoryNames, writeCatalog } from "../bench/catalog.js";
import { launchBrowser } from "../test/helpers/browser.js";
import { gatewayRequest } from "../test/helpers/gateway.js";
import { startRegistry } from "../test/helpers/registry.js";
import { pushShowcase, signShowcase, type Showcase } from "./showcase-images.js";

/** SCREENSHOTS_DIR elsewhere: a try that must not replace the committed ones. */
const OUT_DIR = resolve(process.env.SCREENSHOTS_DIR ?? join(import.meta.dirname, "..", "docs", "screenshots"));
const SIZES = [
  { name: "desktop", width: 1280, height: 800 },
  { name: "phone", width: 390, height: 844 },
] as const;

interface Shot {
  name: string;
  url: string;
  /** Whether the page is taken signed in. */
  signedIn: boolean;
  /** The whole page, not only the first screen (pages whose details are below the fold). */
  fullPage?: boolean;
}

function shots(site: BrowserSite, showcase: Showcase): Shot[] {
  const { index, signed } = showcase;
  return [
    { name: "login", url: `${site.origin}/login`, signedIn: false },
    { name: "repositories", url: `${site.origin}/`, signedIn: true },
    { name: "repositories-search", url: `${site.origin}/?q=apps`, signedIn: true },
    { name: "tags", url: `${site.origin}/repo/${signed.repository}`, signedIn: true, fullPage: true },
    { name: "tag-multi-arch", url: `${site.origin}/tag/${index.repository}:${index.tag}`, signedIn: true, fullPage: true },
    { name: "tag-signed", url: `${site.origin}/tag/${signed.repository}:${signed.tag}`, signedIn: true, fullPage: true },
    { name: "admin-status", url: `${site.admin}/status`, signedIn: false, fullPage: true },
  ];
}

async function capture(browser: Browser, site: BrowserSite, list: readonly Shot[]): Promise<string[]> {
  const written: string[] = [];
  for (const size of SIZES) {
    // Signed in first: the browsing is traffic the status panel, taken after, shows.
    for (const signedIn of [true, false]) {
      const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: size.width, height: size.height } });
      const page = await context.newPage();
      const problems = watchProblems(page);
      if (signedIn) await signIn(page, site.origin).catch((err: Error) => problems.push(`signing in failed, so these pages show an anonymous visitor: ${err.message.split("\n")[0]}`));
      for (const shot of list.filter((s) => s.signedIn === signedIn)) {
        await page.goto(shot.url, { waitUntil: "load" });
        const path = join(OUT_DIR, `${shot.name}-${size.name}.png`);
        await page.screenshot({ path, fullPage: shot.fullPage ?? false });
        written.push(path);
      }
      for (const problem of problems) process.stderr.write(`[screenshots] ${size.name}: ${problem}\n`);
      await context.close();
    }
  }
  return written;
}

/** Console errors and CSP violations the pages cause: reported, since a screenshot would hide them. */
function watchProblems(page: Page): string[] {
  const problems: string[] = [];
  // Failed loads are reported by URL (the console only says that something failed); no page links a favicon.
  page.on("response", (response) => {
    if (response.status() >= 400 && !response.url().endsWith("/favicon.ico")) problems.push(`${response.url()} answered ${response.status()}`);
  });
  page.on("console", (message) => {
    if (message.type() === "error" && !message.text().startsWith("Failed to load resource")) problems.push(`console: ${message.text()} (${page.url()})`);
  });
  page.on("pageerror", (error) => problems.push(`page error: ${error.message} (${page.url()})`));
  return problems;
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "rg-screenshots-"));
  const stops: (() => Promise<unknown>)[] = [() => rm(dir, { recursive: true, force: true })];
  try {
    await writeCatalog(join(dir, "registry", "storage"), repositoryNames(40));
    const registry = await startRegistry({ rootDir: join(dir, "registry") });
    stops.push(() => registry.stop());
    const showcase = await pushShowcase(registry.url);
    const site = await startBrowserSite(dir, registry.url);
    stops.push(() => site.gateway.process.stop(10_000));
    const ca = await readFile(site.gateway.caFile!, "utf8");
    const basic = `Basic ${Buffer.from(`${BROWSER_USER.name}:${BROWSER_USER.password}`).toString("base64")}`;
    await signShowcase((request) => gatewayRequest(site.gateway.httpsPort, ca, BROWSER_HOST, { ...request, headers: { ...request.headers, authorization: basic } }), showcase);
    // The status panel's first reading: its screenshot, a later reading, shows rates over the browsing between.
    await fetch(`${site.admin}/status.json`);
    const browser = await launchBrowser([BROWSER_HOST]);
    stops.push(() => browser.close());
    await mkdir(OUT_DIR, { recursive: true });
    const written = await capture(browser, site, shots(site, showcase));
    process.stdout.write(`${written.map((path) => `wrote ${path}`).join("\n")}\n`);
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => {});
  }
}

await main();
