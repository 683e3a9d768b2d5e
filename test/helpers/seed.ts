// Seeds a registry directly (not through the gateway) with a tiny OCI image over plain HTTP: one random
// layer, a config and a manifest by tag. Fast enough to make several repositories per test file.
import { randomBytes } from "node:crypto";
import { OCI_CONFIG, OCI_LAYER_GZIP, OCI_MANIFEST, sha256Digest } from "./oci.js";

export interface TinyImage {
  repository: string;
  tag: string;
  manifest: Buffer;
  manifestDigest: string;
  configDigest: string;
  layerDigest: string;
}

/** Pushes one image to `registryUrl` (http://127.0.0.1:PORT); every request carries `userAgent`. */
export async function pushTinyImage(registryUrl: string, repository: string, tag: string, userAgent: string): Promise<TinyImage> {
  const layer = randomBytes(256 + Math.floor(Math.random() * 256));
  const layerDigest = sha256Digest(layer);
  const config = Buffer.from(JSON.stringify({ architecture: "amd64", os: "linux", config: {}, rootfs: { type: "layers", diff_ids: [layerDigest] } }));
  const configDigest = sha256Digest(config);
  for (const blob of [layer, config]) await pushBlob(registryUrl, repository, blob, userAgent);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: OCI_CONFIG, digest: configDigest, size: config.length },
      layers: [{ mediaType: OCI_LAYER_GZIP, digest: layerDigest, size: layer.length }],
    }),
  );
  const put = await fetch(`${registryUrl}/v2/${repository}/manifests/${tag}`, {
    method: "PUT",
    body: manifest,
    headers: { "user-agent": userAgent, "content-type": OCI_MANIFEST },
  });
  const text = await put.text();
  if (put.status !== 201) throw new Error(`manifest put to ${repository}:${tag}: ${put.status} ${text}`);
  return { repository, tag, manifest, manifestDigest: sha256Digest(manifest), configDigest, layerDigest };
}

/** Puts one blob into `registryUrl` (POST, then a monolithic PUT); returns its digest. */
export async function pushBlob(registryUrl: string, repository: string, blob: Buffer, userAgent = "registry-gateway-tests"): Promise<string> {
  const digest = sha256Digest(blob);
  const start = await fetch(`${registryUrl}/v2/${repository}/blobs/uploads/`, { method: "POST", headers: { "user-agent": userAgent } });
  await start.arrayBuffer();
  if (start.status !== 202) throw new Error(`upload start to ${repository}: ${start.status}`);
  const location = new URL(start.headers.get("location")!, registryUrl);
  location.searchParams.set("digest", digest);
  const put = await fetch(location, {
    method: "PUT",
    body: blob,
    headers: { "user-agent": userAgent, "content-type": "application/octet-stream" },
  });
  await put.arrayBuffer();
  if (put.status !== 201) throw new Error(`blob upload to ${repository}: ${put.status}`);
  return digest;
}
