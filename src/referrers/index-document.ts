// The referrers index of one subject: an OCI image index listing a descriptor per manifest whose `subject`
// is that digest (OCI distribution spec v1.1, "Listing Referrers"). The same document is what the spec's
// fallback tag holds, so a client reading the tag and one asking the API see one list.
import { OCI_INDEX, type Manifest } from "../registry/manifest.js";

export interface ReferrerDescriptor {
  mediaType: string;
  digest: string;
  size: number;
  artifactType?: string;
  annotations?: Record<string, string>;
}

export interface ReferrersIndex {
  schemaVersion: 2;
  mediaType: typeof OCI_INDEX;
  manifests: ReferrerDescriptor[];
}

/** The image config type that says "no config": an artifact's type is then its `artifactType` alone. */
const EMPTY_CONFIG = "application/vnd.oci.empty.v1+json";

export function emptyIndex(): ReferrersIndex {
  return { schemaVersion: 2, mediaType: OCI_INDEX, manifests: [] };
}

/**
 * The spec's fallback tag for `digest`: `<alg>-<ref>`, the reference cut to 64 characters and every
 * character a tag may not hold replaced by `-`.
 */
export function fallbackTag(digest: string): string {
  const colon = digest.indexOf(":");
  const tag = `${digest.slice(0, colon)}-${digest.slice(colon + 1, colon + 1 + 64)}`;
  return tag.replace(/[^a-zA-Z0-9_.-]/g, "-");
}

/** The descriptor of a referrer manifest of `size` bytes and `digest`, as the spec lists it. */
export function referrerDescriptor(manifest: Manifest, digest: string, size: number): ReferrerDescriptor {
  const descriptor: ReferrerDescriptor = { mediaType: manifest.mediaType, digest, size };
  const configType = manifest.config?.mediaType;
  const artifactType = manifest.artifactType ?? (configType !== EMPTY_CONFIG ? configType : undefined);
  if (artifactType !== undefined) descriptor.artifactType = artifactType;
  if (manifest.annotations && Object.keys(manifest.annotations).length > 0) descriptor.annotations = manifest.annotations;
  return descriptor;
}

/** A stored index, or null when the bytes are not one (a tag someone else put there). */
export function parseIndex(body: Buffer): ReferrersIndex | null {
  try {
    const parsed = JSON.parse(body.toString("utf8")) as Partial<ReferrersIndex>;
    if (parsed.schemaVersion !== 2 || !Array.isArray(parsed.manifests)) return null;
    const manifests = parsed.manifests.filter((d) => typeof d?.digest === "string" && typeof d.mediaType === "string" && typeof d.size === "number");
    return { schemaVersion: 2, mediaType: OCI_INDEX, manifests };
  } catch {
    return null;
  }
}

/** `index` listing `descriptor` once: a referrer pushed again replaces its entry, in place. */
export function withReferrer(index: ReferrersIndex, descriptor: ReferrerDescriptor): ReferrersIndex {
  const at = index.manifests.findIndex((d) => d.digest === descriptor.digest);
  const manifests = [...index.manifests];
  if (at === -1) manifests.push(descriptor);
  else manifests[at] = descriptor;
  return { ...index, manifests };
}

export function withoutReferrer(index: ReferrersIndex, digest: string): ReferrersIndex {
  return { ...index, manifests: index.manifests.filter((d) => d.digest !== digest) };
}

/** Whether `index` lists `digest`: what a write is checked by, once read back. */
export function lists(index: ReferrersIndex, digest: string): boolean {
  return index.manifests.some((d) => d.digest === digest);
}

/** Only the descriptors whose artifactType is one of `types`; every one when `types` is empty. */
export function filterByArtifactType(index: ReferrersIndex, types: readonly string[]): ReferrersIndex {
  if (types.length === 0) return index;
  return { ...index, manifests: index.manifests.filter((d) => d.artifactType !== undefined && types.includes(d.artifactType)) };
}

export function serializeIndex(index: ReferrersIndex): Buffer {
  return Buffer.from(JSON.stringify(index));
}
