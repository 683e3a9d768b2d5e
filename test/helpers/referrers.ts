// Pushing through the gateway with raw registry requests: blobs (POST + monolithic PUT), manifests, and the
// OCI 1.1 artifacts (image manifests with `artifactType` and `subject`) that signing tools push.
import { randomBytes } from "node:crypto";
import type { GatewayRequest, GatewayResponse } from "./gateway.js";
import { OCI_MANIFEST, sha256Digest, type Descriptor } from "./oci.js";

/** One request through the gateway to one site, as one caller (its headers ride on every request). */
export type SiteClient = (options: GatewayRequest) => Promise<GatewayResponse>;

export const OCI_EMPTY = "application/vnd.oci.empty.v1+json";
export const EMPTY_CONFIG = Buffer.from("{}");

export async function pushBlobThrough(client: SiteClient, repository: string, blob: Buffer): Promise<Descriptor> {
  const digest = sha256Digest(blob);
  const start = await client({ method: "POST", path: `/v2/${repository}/blobs/uploads/` });
  if (start.status !== 202) throw new Error(`upload start: ${start.status} ${start.body}`);
  const location = new URL(String(start.headers.location), "https://gateway.invalid");
  location.searchParams.set("digest", digest);
  const put = await client({ method: "PUT", path: location.pathname + location.search, headers: { "content-type": "application/octet-stream" }, body: blob });
  if (put.status !== 201) throw new Error(`blob put: ${put.status} ${put.body}`);
  return { mediaType: "application/octet-stream", digest, size: blob.length };
}

/** An image (config + one random layer) pushed by tag; its manifest's descriptor. */
export async function pushImageThrough(client: SiteClient, repository: string, tag: string): Promise<Descriptor> {
  const config = await pushBlobThrough(client, repository, EMPTY_CONFIG);
  const layer = await pushBlobThrough(client, repository, randomBytes(64));
  const manifest = Buffer.from(
    JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: { ...config, mediaType: OCI_EMPTY }, layers: [{ ...layer, mediaType: "application/vnd.oci.image.layer.v1.tar" }] }),
  );
  const put = await putManifest(client, repository, tag, manifest);
  if (put.status !== 201) throw new Error(`manifest put: ${put.status} ${put.body}`);
  return { mediaType: OCI_MANIFEST, digest: sha256Digest(manifest), size: manifest.length };
}

/** An artifact manifest referring to `subject`: an empty config, one layer (already pushed) and `artifactType`. */
export function artifactManifest(subject: Descriptor, artifactType: string, layer: Descriptor, annotations?: Record<string, string>): Buffer {
  return Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      artifactType,
      config: { mediaType: OCI_EMPTY, digest: sha256Digest(EMPTY_CONFIG), size: EMPTY_CONFIG.length },
      layers: [{ ...layer, mediaType: "application/octet-stream" }],
      subject,
      ...(annotations ? { annotations } : {}),
    }),
  );
}

export function putManifest(client: SiteClient, repository: string, reference: string, body: Buffer | string, contentType = OCI_MANIFEST): Promise<GatewayResponse> {
  return client({ method: "PUT", path: `/v2/${repository}/manifests/${reference}`, headers: { "content-type": contentType }, body });
}
