// A tag's image as the pages show it: its manifest (an image, or an index of platforms), the platforms'
// sizes, and the image config's creation time, labels and history. Reads are bounded in bytes (a manifest
// as registries bound it, a config at CONFIG_BYTES) and in count (SIZED_PLATFORMS children of an index,
// MAX_LAYERS, MAX_HISTORY, MAX_LABELS); anything malformed reads as unknown rather than failing the page.
import { createHash } from "node:crypto";
import type { LRUCache } from "lru-cache";
import { isValidDigest } from "../registry/digest.js";
import { DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, MAX_MANIFEST_BYTES, OCI_INDEX, OCI_MANIFEST, mediaTypeOf } from "../registry/manifest.js";
import type { HistoryEntry, ImageSummary, Layer, Platform } from "./view-models.js";
import type { RegistryAnswer, RepositoryBackend } from "./backend.js";

const ACCEPT = [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST].join(", ");
const INDEX_TYPES: ReadonlySet<string> = new Set([OCI_INDEX, DOCKER_MANIFEST_LIST]);
/** An image config is a few kilobytes; one with a long history some tens. */
const CONFIG_BYTES = 1024 * 1024;
/** Children of an index read for its size: the platforms people build for are fewer. */
const SIZED_PLATFORMS = 8;
/**
 * An index's child manifest is read only for its sizes (and the first one's layers): one of 256 layers is
 * some 50 KiB, so this is plenty, where a whole manifest's bound times every child would not be.
 */
const CHILD_MANIFEST_BYTES = 64 * 1024;
const MAX_PLATFORMS = 64;
const MAX_LAYERS = 256;
const MAX_HISTORY = 256;
const MAX_LABELS = 128;
const MAX_TEXT = 4096;

export type { ImageSummary };

export interface ImageDetails extends ImageSummary {
  layers: Layer[];
  layersOf: Platform | null;
  labels: Record<string, string>;
  history: HistoryEntry[];
}

/** The manifest fields the pages read. */
interface ManifestDocument {
  mediaType: string;
  size: number;
  config: { digest: string; size: number } | null;
  layers: Layer[];
  children: { digest: string; size: number; platform: Platform | null }[];
}

/** The digest of the manifest `reference` (tag or digest) names; null when the registry does not have it. */
export async function readDigest(backend: RepositoryBackend, reference: string): Promise<string | null> {
  const answer = await readManifest(backend, reference);
  return answer && digestOf(answer);
}

async function readManifest(backend: RepositoryBackend, reference: string): Promise<RegistryAnswer | null> {
  const answer = await backend.get(`manifests/${reference}`, ACCEPT, MAX_MANIFEST_BYTES);
  if (answer.status === 404) return null;
  if (answer.status !== 200) throw new Error(`the registry answered ${answer.status} for the manifest ${reference}`);
  return answer;
}

function digestOf(answer: RegistryAnswer): string {
  const stated = String(answer.headers["docker-content-digest"] ?? "");
  return isValidDigest(stated) ? stated : `sha256:${createHash("sha256").update(answer.body).digest("hex")}`;
}

/** The image `reference` (tag or digest) names; null when the registry does not have it. */
export async function readImage(backend: RepositoryBackend, reference: string): Promise<ImageDetails | null> {
  const answer = await readManifest(backend, reference);
  return answer && describeImage(backend, answer);
}

/**
 * What a tag list shows of the image `reference` names, from `cache` when its digest was described before:
 * a manifest read then, rather than a manifest, its children and a config.
 */
export async function readSummary(backend: RepositoryBackend, reference: string, cache: LRUCache<string, ImageSummary>): Promise<ImageSummary | null> {
  const answer = await readManifest(backend, reference);
  if (!answer) return null;
  const key = `${backend.siteName}\0${backend.repository}\0${digestOf(answer)}`;
  const cached = cache.get(key);
  if (cached) return cached;
  const { digest, mediaType, size, created, platforms } = await describeImage(backend, answer);
  const summary = { digest, mediaType, size, created, platforms };
  // Read against a page's deadline that ran out, it may lack what the reads cut off would have said.
  if (!backend.aborted) cache.set(key, summary);
  return summary;
}

async function describeImage(backend: RepositoryBackend, answer: RegistryAnswer): Promise<ImageDetails> {
  const digest = digestOf(answer);
  const manifest = parseManifest(answer.body, String(answer.headers["content-type"] ?? ""));
  if (!manifest) return { digest, mediaType: mediaTypeOf(String(answer.headers["content-type"] ?? "")), size: answer.body.length, created: null, platforms: [], layers: [], layersOf: null, labels: {}, history: [] };
  if (!INDEX_TYPES.has(manifest.mediaType)) return { digest, ...(await describeImageManifest(backend, manifest)), layersOf: null, platforms: [] };
  return { digest, ...(await describeIndex(backend, manifest)) };
}

async function describeImageManifest(backend: RepositoryBackend, manifest: ManifestDocument, withConfig = true) {
  const config = manifest.config && withConfig ? await readConfig(backend, manifest.config.digest) : null;
  const size = manifest.size + (manifest.config?.size ?? 0) + manifest.layers.reduce((sum, layer) => sum + layer.size, 0);
  return { mediaType: manifest.mediaType, size, layers: manifest.layers, created: config?.created ?? null, labels: config?.labels ?? {}, history: config?.history ?? [] };
}

async function describeIndex(backend: RepositoryBackend, index: ManifestDocument) {
  const platforms = index.children.flatMap((child) => (child.platform ? [child.platform] : []));
  // Attestations ride in indexes as unknown/unknown entries: the first real platform is the one shown.
  const shown = index.children.filter((child) => child.platform?.os !== "unknown").slice(0, SIZED_PLATFORMS);
  // Only the first child's config is read: the page shows its creation time, labels and history alone.
  const children = await Promise.all(shown.map((child, index) => readChild(backend, child.digest, index === 0)));
  const sizes = children.map((child) => child?.size ?? 0);
  const first = children[0] ?? null;
  return {
    mediaType: index.mediaType,
    size: index.size + Math.max(0, ...sizes),
    platforms,
    created: first?.created ?? null,
    layers: first?.layers ?? [],
    layersOf: first ? (shown[0]!.platform ?? null) : null,
    labels: first?.labels ?? {},
    history: first?.history ?? [],
  };
}

async function readChild(backend: RepositoryBackend, digest: string, withConfig: boolean) {
  const answer = await backend.get(`manifests/${digest}`, ACCEPT, CHILD_MANIFEST_BYTES).catch(() => null);
  const manifest = answer?.status === 200 ? parseManifest(answer.body, String(answer.headers["content-type"] ?? "")) : null;
  return manifest && !INDEX_TYPES.has(manifest.mediaType) ? describeImageManifest(backend, manifest, withConfig) : null;
}

async function readConfig(backend: RepositoryBackend, digest: string) {
  const answer = await backend.get(`blobs/${digest}`, "application/json, */*", CONFIG_BYTES).catch(() => null);
  if (answer?.status !== 200) return null;
  const config = parseJson(answer.body);
  if (!config) return null;
  const inner = record(config.config);
  const labels: Record<string, string> = {};
  for (const [name, value] of Object.entries(record(inner?.Labels) ?? {}).slice(0, MAX_LABELS)) if (typeof value === "string") labels[text(name)] = text(value);
  const history: HistoryEntry[] = (Array.isArray(config.history) ? config.history : []).slice(0, MAX_HISTORY).flatMap((entry: unknown) => {
    const step = record(entry);
    return step ? [{ created: optionalText(step.created), createdBy: text(optionalText(step.created_by) ?? ""), emptyLayer: step.empty_layer === true }] : [];
  });
  return { created: optionalText(config.created), labels, history };
}

function parseManifest(body: Buffer, contentType: string): ManifestDocument | null {
  const json = parseJson(body);
  if (!json) return null;
  const mediaType = typeof json.mediaType === "string" ? json.mediaType : mediaTypeOf(contentType);
  const config = descriptor(json.config);
  const layers = (Array.isArray(json.layers) ? json.layers : []).slice(0, MAX_LAYERS).flatMap((layer: unknown) => {
    const found = descriptor(layer);
    return found ? [{ digest: found.digest, size: found.size, mediaType: found.mediaType }] : [];
  });
  const children = (Array.isArray(json.manifests) ? json.manifests : []).slice(0, MAX_PLATFORMS).flatMap((child: unknown) => {
    const found = descriptor(child);
    return found ? [{ digest: found.digest, size: found.size, platform: platformOf(record(child)?.platform, found.digest) }] : [];
  });
  return { mediaType, size: body.length, config: config && { digest: config.digest, size: config.size }, layers, children };
}

function descriptor(value: unknown): { digest: string; size: number; mediaType: string } | null {
  const found = record(value);
  if (!found || typeof found.digest !== "string" || !isValidDigest(found.digest)) return null;
  const size = typeof found.size === "number" && Number.isSafeInteger(found.size) && found.size >= 0 ? found.size : 0;
  return { digest: found.digest, size, mediaType: text(optionalText(found.mediaType) ?? "") };
}

function platformOf(value: unknown, digest: string): Platform | null {
  const found = record(value);
  if (!found) return null;
  return { os: text(optionalText(found.os) ?? ""), architecture: text(optionalText(found.architecture) ?? ""), variant: optionalText(found.variant), digest };
}

function parseJson(body: Buffer): Record<string, unknown> | null {
  try {
    return record(JSON.parse(body.toString("utf8")));
  } catch {
    return null;
  }
}

function record(value: unknown): Record<string, unknown> | null {
  return typeof value === "object" && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
}

function optionalText(value: unknown): string | null {
  return typeof value === "string" ? text(value) : null;
}

function text(value: string): string {
  return value.length > MAX_TEXT ? `${value.slice(0, MAX_TEXT)}…` : value;
}
