// Puts the content the pull measurements read into the registry, directly (never through a proxy):
// one big layer blob, a tiny config blob and a manifest tagged v1 in repository bench/pull.
import { randomBytes } from "node:crypto";
import type { Readable } from "node:stream";
import { OCI_CONFIG, OCI_MANIFEST, sha256Digest } from "../test/helpers/oci.js";
import { BlobSource, type Endpoint, MiB, expectStatus, locationOf, send } from "./client.js";

export const PULL_REPO = "bench/pull";
export const PULL_TAG = "v1";

export interface Seeded {
  layerDigest: string;
  layerBytes: number;
  manifestDigest: string;
}

/** POST, then one monolithic PUT carrying the whole blob with its Content-Length. */
async function pushBlob(registry: Endpoint, repo: string, digest: string, bytes: number, body: Buffer | Readable) {
  const started = expectStatus(await send(registry, "POST", `/v2/${repo}/blobs/uploads/`), 202, "start upload");
  const location = new URL(locationOf(started, "start upload"), registry.origin);
  location.searchParams.set("digest", digest);
  const reply = await send(registry, "PUT", location, {
    headers: { "content-type": "application/octet-stream", "content-length": String(bytes) },
    body,
    timeoutMs: 120_000,
  });
  expectStatus(reply, 201, `PUT blob ${digest}`);
}

export async function seedRegistry(registry: Endpoint, source: BlobSource, layerMiB: number): Promise<Seeded> {
  const layerDigest = source.digest("pull-layer", layerMiB);
  const layerBytes = layerMiB * MiB;
  await pushBlob(registry, PULL_REPO, layerDigest, layerBytes, source.stream("pull-layer", layerMiB));

  const config = Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [layerDigest] } }));
  const configDigest = sha256Digest(config);
  await pushBlob(registry, PULL_REPO, configDigest, config.length, config);

  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: OCI_CONFIG, digest: configDigest, size: config.length },
      layers: [{ mediaType: "application/vnd.oci.image.layer.v1.tar", digest: layerDigest, size: layerBytes }],
    }),
  );
  const put = await send(registry, "PUT", `/v2/${PULL_REPO}/manifests/${PULL_TAG}`, {
    headers: { "content-type": OCI_MANIFEST, "content-length": String(manifest.length) },
    body: manifest,
  });
  expectStatus(put, 201, "PUT manifest");
  return { layerDigest, layerBytes, manifestDigest: sha256Digest(manifest) };
}

/** The manifest wrk requests: seeded (1 MiB layer) unless the registry already has it. */
export async function ensureManifest(registry: Endpoint): Promise<void> {
  const existing = await send(registry, "GET", `/v2/${PULL_REPO}/manifests/${PULL_TAG}`, { headers: { accept: OCI_MANIFEST } });
  if (existing.status === 200) return;
  await seedRegistry(registry, new BlobSource(randomBytes(MiB)), 1);
}
