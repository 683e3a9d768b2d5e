// The registry browser's CSS and JavaScript, built by `npm run build` under hashed names so they can be
// cached for a year: a new build has new names. Read once at startup from dist/web, found from the
// package root so it works from dist/ and from src/ under tsx alike.
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { ASSET_DIR, ASSET_URL_PREFIX, MANIFEST_FILE, type AssetManifest } from "./asset-build.js";

export interface WebAsset {
  body: Buffer;
  contentType: string;
}

export interface WebAssets {
  /** The URLs pages link to, e.g. `/assets/app.3f9a1c2e.css`. */
  urls: { css: string; js: string };
  /** The asset at a URL path (`/assets/…`), or undefined: unknown names are a 404. */
  lookup(path: string): WebAsset | undefined;
}

const CONTENT_TYPES: Record<string, string> = {
  ".css": "text/css; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
};

/** dist/web of this package: this module is src/web/assets.ts or dist/web/assets.js, two levels down. */
const DEFAULT_WEB_DIR = path.join(fileURLToPath(new URL("../../", import.meta.url)), "dist", "web");

function readManifest(webDir: string): AssetManifest {
  const file = path.join(webDir, MANIFEST_FILE);
  if (!existsSync(file)) {
    throw new Error(`registry browser assets are missing (${file} not found): run \`npm run build\``);
  }
  return JSON.parse(readFileSync(file, "utf8")) as AssetManifest;
}

function manifestUrl(manifest: AssetManifest, logicalName: string, webDir: string): string {
  const url = manifest[logicalName];
  // Only plain hashed names under the prefix: the manifest decides which files are read and served.
  if (typeof url !== "string" || !new RegExp(`^${ASSET_URL_PREFIX}[\\w.-]+$`).test(url) || url.includes("..")) {
    throw new Error(`registry browser assets: ${path.join(webDir, MANIFEST_FILE)} names no valid ${logicalName}: run \`npm run build\``);
  }
  return url;
}

/** The built assets in `webDir` (dist/web by default); throws naming `npm run build` when they are missing. */
export function loadWebAssets(webDir: string = DEFAULT_WEB_DIR): WebAssets {
  const manifest = readManifest(webDir);
  const urls = { css: manifestUrl(manifest, "app.css", webDir), js: manifestUrl(manifest, "app.js", webDir) };
  const byPath = new Map<string, WebAsset>();
  for (const url of Object.values(urls)) {
    const file = path.join(webDir, ASSET_DIR, url.slice(ASSET_URL_PREFIX.length));
    if (!existsSync(file)) throw new Error(`registry browser asset ${file} is missing: run \`npm run build\``);
    byPath.set(url, { body: readFileSync(file), contentType: CONTENT_TYPES[path.extname(url)] ?? "application/octet-stream" });
  }
  return { urls, lookup: (urlPath) => byPath.get(urlPath) };
}
