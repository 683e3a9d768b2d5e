// The registry browser's script in a real browser: search as you type swaps the results in place, and
// copy buttons copy the pull command. Pages come from the views and assets from the build, served under
// the strict CSP the gateway sends, so a page that needed inline script would fail here.
import assert from "node:assert/strict";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import type { Browser, BrowserContext } from "playwright-core";
import { loadWebAssets } from "../../src/web/assets.js";
import type { PageChrome } from "../../src/web/view-models.js";
import {
  renderDeleteConfirm, renderError, renderLogin, renderRepositoryList, renderTagDetails, renderTagList,
} from "../../src/web/views/index.js";
import { launchBrowser } from "../helpers/browser.js";
import * as sample from "../helpers/web-samples.js";

/** The little of the page's globals these tests use (the tests compile without the DOM's types). */
interface InPage {
  document: {
    querySelector(selector: string): { value: string; dispatchEvent(event: unknown): boolean };
    activeElement: { id: string } | null;
    documentElement: { scrollWidth: number };
  };
  Event: new (type: string, init: { bubbles: boolean }) => unknown;
  location: { search: string };
  navigator: { clipboard: { readText(): Promise<string> } };
}

const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; form-action 'self'";

/** Long names that do not break easily: what pushes a page wider than a phone's screen. */
const LONG_NAME = "a-long-organisation-name/with-a-deeply/nested-repository-name-that-goes-on-and-on";

function otherPages(chrome: PageChrome): Record<string, string> {
  return {
    "/tag": renderTagDetails(sample.tagDetails({ chrome })),
    "/long/repo": renderTagList(sample.tagList({ chrome, repository: LONG_NAME })),
    "/long/tag": renderTagDetails(sample.tagDetails({
      chrome, repository: LONG_NAME, tag: "v1.2.3-a-really-long-prerelease-name", labels: { [LONG_NAME.replace(/\W/g, ".")]: "x".repeat(100) },
    })),
    "/long/login": renderLogin(sample.login({ chrome: { ...chrome, user: null, csrfToken: null }, error: "y".repeat(80) })),
    "/long/error": renderError(sample.errorPage({ chrome, title: LONG_NAME, message: "z".repeat(120) })),
    "/long/delete": renderDeleteConfirm(sample.deleteConfirm({ chrome, repository: LONG_NAME, alsoRemoved: ["t".repeat(90)] })),
  };
}

function servePages(pageRequests: string[]): Server {
  const assets = loadWebAssets();
  const chrome = sample.chrome({ assets: assets.urls, user: "a-user-with-a-long-name" });
  const all = [...sample.repositoryList().repositories, { name: LONG_NAME, url: "/repo/x" }];
  const pages = otherPages(chrome);
  return createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://localhost");
    const asset = assets.lookup(url.pathname);
    if (asset) return void res.writeHead(200, { "content-type": asset.contentType }).end(asset.body);
    pageRequests.push(url.pathname + url.search);
    const query = url.searchParams.get("q") ?? "";
    const page = pages[url.pathname] ??
      renderRepositoryList(sample.repositoryList({ chrome, query, repositories: all.filter((r) => r.name.includes(query)), nextPageUrl: query ? null : "/?last=ubuntu" }));
    res.writeHead(200, { "content-type": "text/html; charset=utf-8", "content-security-policy": CSP }).end(page);
  });
}

describe("registry browser script", () => {
  const pageRequests: string[] = [];
  const errors: string[] = [];
  let server: Server;
  let browser: Browser;
  let context: BrowserContext;
  let origin: string;

  before(async () => {
    server = servePages(pageRequests);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    browser = await launchBrowser();
    context = await browser.newContext();
    await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin });
    context.on("weberror", (error) => errors.push(String(error.error())));
    context.on("console", (message) => { if (message.type() === "error") errors.push(message.text()); });
  });
  after(async () => {
    await browser?.close();
    server?.close();
  });

  it("searches as the user types: one request after the pause, results and URL replaced, focus kept", async () => {
    const page = await context.newPage();
    await page.goto(`${origin}/`);
    pageRequests.length = 0;
    await page.focus("#repository-search");
    // Four keystrokes within one task (a real typist's timing would make this test depend on the load).
    await page.evaluate(() => {
      const { document, Event } = globalThis as unknown as InPage;
      const input = document.querySelector("#repository-search");
      for (const text of ["t", "te", "tea", "team"]) {
        input.value = text;
        input.dispatchEvent(new Event("input", { bubbles: true }));
      }
    });
    await page.waitForFunction(() => (globalThis as unknown as InPage).location.search === "?q=team");
    assert.deepEqual(pageRequests, ["/?q=team"], "typing is debounced into one request");
    assert.deepEqual(await page.$$eval("#repositories a", (links) => links.map((a) => a.textContent)), ["team/backend/api", "team/frontend"]);
    assert.equal(await page.$("#next-page"), null, "the next-page link went with the old results");
    assert.equal(await page.textContent("#result-status"), "2 repositories matching “team”");
    assert.equal(await page.evaluate(() => (globalThis as unknown as InPage).document.activeElement?.id), "repository-search");
    assert.deepEqual(errors, []);
  });

  it("copies the pull command and shows that it did", async () => {
    const page = await context.newPage();
    await page.goto(`${origin}/tag`);
    const button = page.locator("#pull-by-tag + button");
    await button.click();
    assert.equal(await button.locator(".copy-label").textContent(), "Copied");
    assert.equal(await page.evaluate(() => (globalThis as unknown as InPage).navigator.clipboard.readText()), sample.tagDetails().pullByTag);
    assert.deepEqual(errors, []);
  });

  it("fits every page into a 360px wide screen, long names included", async () => {
    const page = await context.newPage();
    await page.setViewportSize({ width: 360, height: 740 });
    for (const path of ["/", "/tag", "/long/repo", "/long/tag", "/long/login", "/long/error", "/long/delete"]) {
      await page.goto(`${origin}${path}`);
      const width = await page.evaluate(() => (globalThis as unknown as InPage).document.documentElement.scrollWidth);
      assert.ok(width <= 360, `${path} is ${width}px wide`);
    }
    assert.deepEqual(errors, []);
  });
});
