// What the registry browser needs from a generation: where its session key comes from, its assets, and
// what bounds its registry reads across pages (the read gate, the image summaries already read).
import { LRUCache } from "lru-cache";
import { loadWebAssets, type WebAssets } from "./assets.js";
import type { GatewayConfig } from "../config/schema.js";
import type { ImageSummary } from "./view-models.js";
import { ReadGate } from "./read-gate.js";
import { StoredSessionKeySource, type SessionKeySource } from "./session-key.js";

/** Registry reads of every browser page at once: a page reads a few at a time, so several pages share these. */
const MAX_READS = 16;
/** Bytes those reads may hold between them (each counts the most it may read). */
const MAX_READ_BYTES = 32 * 1024 * 1024;
/** Image summaries kept: a few hundred bytes each. */
const MAX_SUMMARIES = 10_000;
const MAX_SUMMARY_BYTES = 8 * 1024 * 1024;
/** A summary read while the registry failed some of its reads is not kept for ever. */
const SUMMARY_TTL_MS = 10 * 60_000;

export interface BrowserState {
  sessionKeys: SessionKeySource;
  /**
   * The built CSS and JavaScript, read on first use: a gateway whose assets were not built still serves its
   * registries (only the browser's pages are unavailable). Throws while they cannot be read.
   */
  assets(): WebAssets;
  reads: ReadGate;
  /** Tag-list summaries by site, repository and manifest digest: what a digest names does not change. */
  summaries: LRUCache<string, ImageSummary>;
}

export function browserState(
  config: Pick<GatewayConfig, "tls" | "redis" | "dataDir">,
  sessionKeys: SessionKeySource = new StoredSessionKeySource(config),
  load: () => WebAssets = loadWebAssets,
): BrowserState {
  let assets: WebAssets | undefined;
  const summaries = new LRUCache<string, ImageSummary>({ max: MAX_SUMMARIES, maxSize: MAX_SUMMARY_BYTES, ttl: SUMMARY_TTL_MS, sizeCalculation: (summary) => JSON.stringify(summary).length });
  return { sessionKeys, assets: () => (assets ??= load()), reads: new ReadGate(MAX_READS, MAX_READ_BYTES), summaries };
}
