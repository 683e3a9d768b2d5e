// What a manifest PUT must be before a backend sees it. An old registry turns some malformed manifests into
// a 500; the gateway reads the (small) body whole and answers the spec's 400 MANIFEST_INVALID instead.
// The media types are the ones distribution stores: OCI image manifest and index, Docker schema 2
// manifest and manifest list (an OCI 1.1 artifact is an image manifest with `artifactType`).
import { isValidDigest } from "./digest.js";

export const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
export const OCI_INDEX = "application/vnd.oci.image.index.v1+json";
export const DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json";
export const DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json";

const KNOWN_MEDIA_TYPES = new Set([OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST]);

/** What registries accept at most for one manifest (distribution and the OCI conformance tests use 4 MiB). */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

export interface ManifestDescriptor {
  mediaType: string;
  digest: string;
  size: number;
}

/** The fields of a manifest the gateway reads. */
export interface Manifest {
  mediaType: string;
  artifactType?: string;
  config?: { mediaType?: string };
  subject?: ManifestDescriptor;
  annotations?: Record<string, string>;
}

export type ManifestReading = { ok: true; manifest: Manifest } | { ok: false; message: string };

/** The media type of a Content-Type header, without parameters, lower-cased; "" when absent. */
export function mediaTypeOf(contentType: string | undefined): string {
  return (contentType ?? "").split(";")[0]!.trim().toLowerCase();
}

/**
 * `body` as a manifest of a known media type: the body's `mediaType` when it has one (it must then agree with
 * the Content-Type, as distribution requires), else the Content-Type's.
 */
export function readManifest(body: Buffer, contentType: string | undefined): ManifestReading {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString("utf8"));
  } catch {
    return { ok: false, message: "the manifest is not JSON" };
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) return { ok: false, message: "the manifest is not a JSON object" };
  const fields = parsed as Record<string, unknown>;
  const header = mediaTypeOf(contentType);
  const declared = typeof fields.mediaType === "string" ? fields.mediaType : undefined;
  const mediaType = declared ?? header;
  if (!KNOWN_MEDIA_TYPES.has(mediaType)) return { ok: false, message: `unknown manifest media type ${JSON.stringify(mediaType)}` };
  if (declared !== undefined && header !== "" && KNOWN_MEDIA_TYPES.has(header) && header !== declared) {
    return { ok: false, message: `the manifest's mediaType ${declared} is not its Content-Type ${header}` };
  }
  if (fields.schemaVersion !== 2) return { ok: false, message: "the manifest's schemaVersion is not 2" };
  const subject = fields.subject;
  if (subject !== undefined && !isDescriptor(subject)) return { ok: false, message: "the manifest's subject is not a descriptor" };
  return { ok: true, manifest: { ...(fields as Omit<Manifest, "mediaType">), mediaType } };
}

function isDescriptor(value: unknown): value is ManifestDescriptor {
  if (typeof value !== "object" || value === null) return false;
  const { mediaType, digest, size } = value as Record<string, unknown>;
  return typeof mediaType === "string" && typeof digest === "string" && isValidDigest(digest) && Number.isSafeInteger(size) && (size as number) >= 0;
}
