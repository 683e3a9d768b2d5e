// The build step for the registry browser's CSS and JavaScript: each source is copied under a name
// carrying its content hash (`app.3f9a1c2e.css`), and a manifest maps the logical name to the URL pages
// link to. A changed file gets a new name, so browsers may cache every asset for a year.
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";

/** The sources, by logical name, in the source directory. */
const WEB_ASSET_SOURCES = ["app.css", "app.js"] as const;

/** Where hashed files are served from; the manifest's URLs start with it. */
export const ASSET_URL_PREFIX = "/assets/";

/** The manifest's file name in the output directory, and the hashed files' subdirectory. */
export const MANIFEST_FILE = "assets.json";
export const ASSET_DIR = "assets";

/** Logical name → URL, e.g. `{ "app.css": "/assets/app.3f9a1c2e.css" }`. */
export type AssetManifest = Record<string, string>;

function hashedName(logicalName: string, content: Buffer): string {
  const hash = createHash("sha256").update(content).digest("hex").slice(0, 8);
  const ext = path.extname(logicalName);
  return `${logicalName.slice(0, logicalName.length - ext.length)}.${hash}${ext}`;
}

/**
 * Writes `outDir/assets/<hashed names>` and `outDir/assets.json` from `sourceDir`; earlier builds' files
 * are removed so the directory holds exactly what the manifest names.
 */
export function buildWebAssets(sourceDir: string, outDir: string): AssetManifest {
  const assetDir = path.join(outDir, ASSET_DIR);
  rmSync(assetDir, { recursive: true, force: true });
  mkdirSync(assetDir, { recursive: true });
  const manifest: AssetManifest = {};
  for (const logicalName of WEB_ASSET_SOURCES) {
    const content = readFileSync(path.join(sourceDir, logicalName));
    const name = hashedName(logicalName, content);
    writeFileSync(path.join(assetDir, name), content);
    manifest[logicalName] = `${ASSET_URL_PREFIX}${name}`;
  }
  writeFileSync(path.join(outDir, MANIFEST_FILE), `${JSON.stringify(manifest, null, 2)}\n`);
  return manifest;
}
