// A handful of images that show what the registry browser can display, pushed to a registry over its API:
// a multi-arch index (amd64 + arm64), images with OCI labels and several tags, and a signature (an OCI 1.1
// artifact whose subject is a tagged image, listed by the referrers API). The signature goes through the
// gateway, as signing tools push it: a registry without the referrers API has it listed by the gateway's
// emulation, which sees only what passes through it.
import { randomBytes } from "node:crypto";
import { OCI_INDEX, OCI_MANIFEST, imageConfig, sha256Digest, singleLayerManifest, type Descriptor } from "../test/helpers/oci.js";
import { artifactManifest, pushBlobThrough, putManifest as putManifestThrough, EMPTY_CONFIG, type SiteClient } from "../test/helpers/referrers.js";
import { pushBlob } from "../test/helpers/seed.js";

const AGENT = "registry-gateway-screenshots";

async function putManifest(registryUrl: string, repository: string, reference: string, body: Buffer, mediaType: string): Promise<Descriptor> {
  const res = await fetch(`${registryUrl}/v2/${repository}/manifests/${reference}`, { method: "PUT", body, headers: { "content-type": mediaType, "user-agent": AGENT } });
  if (res.status !== 201) throw new Error(`PUT ${repository}:${reference}: ${res.status} ${await res.text()}`);
  await res.arrayBuffer();
  return { mediaType, digest: sha256Digest(body), size: body.length };
}

/** One single-platform image with `labels`; its manifest is pushed by digest (tag it with tagManifest). */
async function pushImage(registryUrl: string, repository: string, platform: { os: string; architecture: string }, labels: Record<string, string>): Promise<Descriptor> {
  const layer = randomBytes(2048 + Math.floor(Math.random() * 4096));
  const layerDigest = await pushBlob(registryUrl, repository, layer, AGENT);
  const config = imageConfig(platform, labels, [layerDigest]);
  await pushBlob(registryUrl, repository, config, AGENT);
  const manifest = singleLayerManifest(config, layer);
  return putManifest(registryUrl, repository, sha256Digest(manifest), manifest, OCI_MANIFEST);
}

function labelsFor(title: string, version: string): Record<string, string> {
  return {
    "org.opencontainers.image.title": title,
    "org.opencontainers.image.version": version,
    "org.opencontainers.image.description": `${title}, built for the screenshots`,
    "org.opencontainers.image.source": `https://git.example.test/${title}`,
    "org.opencontainers.image.licenses": "Apache-2.0",
  };
}

async function tag(registryUrl: string, repository: string, descriptor: Descriptor, tags: readonly string[]): Promise<void> {
  const res = await fetch(`${registryUrl}/v2/${repository}/manifests/${descriptor.digest}`, { headers: { accept: descriptor.mediaType } });
  const body = Buffer.from(await res.arrayBuffer());
  for (const name of tags) await putManifest(registryUrl, repository, name, body, descriptor.mediaType);
}

export interface Showcase {
  /** The multi-arch image: repository and tag. */
  index: { repository: string; tag: string };
  /** A single-platform image to sign (signShowcase). */
  signed: { repository: string; tag: string; descriptor: Descriptor };
}

export async function pushShowcase(registryUrl: string): Promise<Showcase> {
  const base = "platform/base";
  const platforms = [
    { os: "linux", architecture: "amd64" },
    { os: "linux", architecture: "arm64" },
  ];
  const members = [];
  for (const platform of platforms) members.push({ ...(await pushImage(registryUrl, base, platform, labelsFor("base", "3.20.1"))), platform });
  const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: members }));
  await tag(registryUrl, base, await putManifest(registryUrl, base, sha256Digest(index), index, OCI_INDEX), ["3.20.1", "3.20", "latest"]);

  const web = "apps/web";
  const amd64 = platforms[0]!;
  for (const version of ["1.0.0", "1.1.0"]) await tag(registryUrl, web, await pushImage(registryUrl, web, amd64, labelsFor("web", version)), [version]);
  const current = await pushImage(registryUrl, web, amd64, labelsFor("web", "1.2.0"));
  await tag(registryUrl, web, current, ["1.2.0", "latest"]);

  for (const [repository, versions] of [["apps/api", ["2.3.0", "2.3.1", "latest"]], ["tools/cli", ["0.9.0"]]] as const) {
    const image = await pushImage(registryUrl, repository, amd64, labelsFor(repository.split("/")[1]!, versions[0]!));
    await tag(registryUrl, repository, image, versions);
  }
  return { index: { repository: base, tag: "3.20.1" }, signed: { repository: web, tag: "1.2.0", descriptor: current } };
}

/** Pushes a signature of the showcase's signed image through `client` (a signed-in client of the gateway's site). */
export async function signShowcase(client: SiteClient, showcase: Showcase): Promise<void> {
  const { repository, descriptor } = showcase.signed;
  await pushBlobThrough(client, repository, EMPTY_CONFIG);
  const layer = await pushBlobThrough(client, repository, Buffer.from(`signature of ${descriptor.digest}\n`));
  const artifact = artifactManifest(descriptor, "application/vnd.cncf.notary.signature", layer, { "io.cncf.notary.x509chain.thumbprint#S256": "screenshots" });
  const put = await putManifestThrough(client, repository, sha256Digest(artifact), artifact);
  if (put.status !== 201) throw new Error(`signature of ${repository}: ${put.status} ${put.body.toString()}`);
}
