// Run by `npm run build` after tsc: writes the registry browser's hashed CSS/JS and their manifest to
// dist/web from web/ (the logic is src/web/asset-build.ts, compiled by the tsc step before this).
import path from "node:path";
import { fileURLToPath } from "node:url";
import { buildWebAssets } from "../dist/web/asset-build.js";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const manifest = buildWebAssets(path.join(root, "web"), path.join(root, "dist", "web"));
console.log(`web assets: ${Object.values(manifest).join(", ")}`);
