// One page load in headless chromium, measured by the browser itself: bytes transferred (the document and
// every subresource, from Resource Timing's transferSize: 0 for what came from the cache), first contentful
// paint and the document's responseEnd (ms since navigation start).
import type { Page } from "playwright-core";

export interface PageLoad {
  status: number;
  /** Document + subresources, bytes on the wire (headers included), as Resource Timing reports them. */
  transferredBytes: number;
  documentTransferBytes: number;
  /** The document's body as sent (compressed, if it was). */
  documentBodyBytes: number;
  /** Subresources loaded (from the network or the cache). */
  resources: number;
  /** First contentful paint, ms after navigation start; null if the browser reported none. */
  firstContentfulPaintMs: number | null;
  responseEndMs: number;
}

/** How long to wait for the paint entry after the load event (it can arrive a frame later). */
const PAINT_WAIT_MS = 2000;

interface BrowserTiming {
  documentTransferBytes: number;
  documentBodyBytes: number;
  resourceTransferBytes: number;
  resources: number;
  firstContentfulPaintMs: number | null;
  responseEndMs: number;
}

/** Runs in the page (as text: this project compiles without the DOM's types): the BrowserTiming of its load. */
const READ_TIMING = `(async () => {
  const paint = () => performance.getEntriesByName("first-contentful-paint")[0]?.startTime ?? null;
  const deadline = performance.now() + ${PAINT_WAIT_MS};
  while (paint() === null && performance.now() < deadline) await new Promise((resolve) => requestAnimationFrame(resolve));
  const navigation = performance.getEntriesByType("navigation")[0];
  const resources = performance.getEntriesByType("resource");
  return {
    documentTransferBytes: navigation.transferSize,
    documentBodyBytes: navigation.encodedBodySize,
    resourceTransferBytes: resources.reduce((sum, r) => sum + r.transferSize, 0),
    resources: resources.length,
    firstContentfulPaintMs: paint(),
    responseEndMs: navigation.responseEnd,
  };
})()`;

export async function measureLoad(page: Page, url: string): Promise<PageLoad> {
  const response = await page.goto(url, { waitUntil: "load" });
  if (!response) throw new Error(`no response for ${url}`);
  const timing = (await page.evaluate(READ_TIMING)) as BrowserTiming;
  return {
    status: response.status(),
    transferredBytes: timing.documentTransferBytes + timing.resourceTransferBytes,
    documentTransferBytes: timing.documentTransferBytes,
    documentBodyBytes: timing.documentBodyBytes,
    resources: timing.resources,
    firstContentfulPaintMs: timing.firstContentfulPaintMs,
    responseEndMs: timing.responseEndMs,
  };
}
