// What the registry browser needs from a generation: where its session key comes from, and its assets.
import { loadWebAssets, type WebAssets } from "./assets.js";
import { FileSessionKeySource, type SessionKeySource } from "./session-key.js";

export interface BrowserState {
  sessionKeys: SessionKeySource;
  assets: WebAssets;
}

export function browserState(dataDir: string, sessionKeys: SessionKeySource = new FileSessionKeySource(dataDir)): BrowserState {
  return { sessionKeys, assets: loadWebAssets() };
}
