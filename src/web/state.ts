// What the registry browser needs from a generation: where its session key comes from, and its assets.
import { loadWebAssets, type WebAssets } from "./assets.js";
import type { GatewayConfig } from "../config/schema.js";
import { StoredSessionKeySource, type SessionKeySource } from "./session-key.js";

export interface BrowserState {
  sessionKeys: SessionKeySource;
  /**
   * The built CSS and JavaScript, read on first use: a gateway whose assets were not built still serves its
   * registries (only the browser's pages are unavailable). Throws while they cannot be read.
   */
  assets(): WebAssets;
}

export function browserState(
  config: Pick<GatewayConfig, "tls" | "redis" | "dataDir">,
  sessionKeys: SessionKeySource = new StoredSessionKeySource(config),
  load: () => WebAssets = loadWebAssets,
): BrowserState {
  let assets: WebAssets | undefined;
  return { sessionKeys, assets: () => (assets ??= load()) };
}
