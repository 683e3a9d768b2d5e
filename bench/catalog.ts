// A registry with thousands of repositories, made in seconds: the files distribution's filesystem driver
// itself keeps for an image (blobs by digest, per-repository links to them and tag links) are written
// directly into its storage root before it starts. Pushing 5,000 manifests through the API would cost
// 5,000 × (two blob uploads + one manifest PUT); the result on disk is the same, and the registry serves it
// (its catalog walks these directories; the caller checks one repository through the API).
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { imageConfig, sha256Digest, singleLayerManifest } from "../test/helpers/oci.js";

export interface CatalogImage {
  manifestDigest: string;
  configDigest: string;
  layerDigest: string;
}

/** `team-07/service-0421`-style names: 50 teams, the rest numbered, so `?q=` has real prefixes and substrings to find. */
export function repositoryNames(count: number): string[] {
  const kinds = ["api", "worker", "web", "batch", "proxy"];
  return Array.from({ length: count }, (_, i) => `team-${String(i % 50).padStart(2, "0")}/${kinds[i % kinds.length]}-${String(i).padStart(4, "0")}`);
}

/** The tags each repository gets: `latest` everywhere, a couple of versions on every third. */
function tagsOf(index: number): string[] {
  return index % 3 === 0 ? ["latest", "1.0.0", "1.1.0"] : ["latest"];
}

/**
 * Writes `names` (each with its tags, all pointing at one small image) under `storageDir`, the registry's
 * `storage.filesystem.rootdirectory`. Call before the registry starts.
 */
export async function writeCatalog(storageDir: string, names: readonly string[]): Promise<CatalogImage> {
  const v2 = join(storageDir, "docker", "registry", "v2");
  const layer = Buffer.from("bench layer: content does not matter, its digest does\n");
  const layerDigest = sha256Digest(layer);
  const config = imageConfig({ os: "linux", architecture: "amd64" }, { "org.opencontainers.image.source": "https://example.test/bench" }, [layerDigest], new Date("2026-01-01T00:00:00Z"));
  const configDigest = sha256Digest(config);
  const manifest = singleLayerManifest(config, layer);
  const manifestDigest = sha256Digest(manifest);
  for (const blob of [layer, config, manifest]) await writeBlob(v2, blob);

  const link = async (path: string, digest: string) => {
    await mkdir(path, { recursive: true });
    await writeFile(join(path, "link"), digest);
  };
  const writeRepository = async (name: string, index: number) => {
    const repo = join(v2, "repositories", name);
    for (const digest of [layerDigest, configDigest]) await link(join(repo, "_layers", ...digestPath(digest)), digest);
    await link(join(repo, "_manifests", "revisions", ...digestPath(manifestDigest)), manifestDigest);
    for (const tag of tagsOf(index)) {
      const tagDir = join(repo, "_manifests", "tags", tag);
      await link(join(tagDir, "current"), manifestDigest);
      await link(join(tagDir, "index", ...digestPath(manifestDigest)), manifestDigest);
    }
  };
  // A few dozen at a time: enough to keep the disk busy without thousands of open files.
  const CONCURRENCY = 32;
  for (let start = 0; start < names.length; start += CONCURRENCY) {
    await Promise.all(names.slice(start, start + CONCURRENCY).map((name, offset) => writeRepository(name, start + offset)));
  }
  return { manifestDigest, configDigest, layerDigest };
}

/** `sha256:abcd…` → ["sha256", "abcd…"]: how repository links name a digest. */
function digestPath(digest: string): string[] {
  const [algorithm, hex] = digest.split(":");
  return [algorithm!, hex!];
}

async function writeBlob(v2: string, blob: Buffer): Promise<void> {
  const [algorithm, hex] = digestPath(sha256Digest(blob));
  const dir = join(v2, "blobs", algorithm!, hex!.slice(0, 2), hex!);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, "data"), blob);
}
