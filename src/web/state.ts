// What the registry browser needs from a generation: where its session key comes from, and its assets.
import { loadWebAssets, type WebAssets } from "./assets.js";
import { FileSessionKeySource, type SessionKeySource } from "./session-key.js";

export interface BrowserState {
  sessionKeys: SessionKeySource;
  /**
   * The built CSS and JavaScript, read on first use: a gateway whose assets were not built still serves its
   * registries (only the browser's pages are unavailable). Throws while they cannot be read.
   */
  assets(): WebAssets;
}

export function browserState(dataDir: string, sessionKeys: SessionKeySource = new FileSessionKeySource(dataDir), load: () => WebAssets = loadWebAssets): BrowserState {
  let assets: WebAssets | undefined;
  return { sessionKeys, assets: () => (assets ??= load()) };
}
