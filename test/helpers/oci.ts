import { createHash, randomBytes, type Hash } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { constants as zlibConstants, createGzip } from "node:zlib";

export const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
export const OCI_INDEX = "application/vnd.oci.image.index.v1+json";
export const OCI_CONFIG = "application/vnd.oci.image.config.v1+json";
export const OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip";
const REF_NAME = "org.opencontainers.image.ref.name";

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}

export interface OciImageOptions {
  layers: number;
  /** Bytes of random content in each layer's single file. */
  layerSize: number;
  tag: string;
}

export interface OciImage {
  dir: string;
  tag: string;
  /** Reference for skopeo: oci:DIR:TAG */
  ociRef: string;
  manifestDigest: string;
  manifestSize: number;
  configDigest: string;
  /** Digests of the compressed layer blobs, in manifest order. */
  layerDigests: string[];
  /** sha256 of each uncompressed tar, as in config rootfs.diff_ids. */
  diffIds: string[];
}

/**
 * Writes a pullable single-platform OCI image into an image layout at dir.
 * Calling it again with another tag adds that image to the same layout.
 */
export async function buildOciImage(dir: string, { layers, layerSize, tag }: OciImageOptions): Promise<OciImage> {
  const blobsDir = join(dir, "blobs", "sha256");
  await mkdir(blobsDir, { recursive: true });
  await writeFile(join(dir, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));

  const layerResults: LayerBlob[] = [];
  for (let i = 0; i < layers; i++) layerResults.push(await writeLayerBlob(blobsDir, `layer-${i}.bin`, layerSize));

  const config = {
    created: new Date().toISOString(),
    architecture: "amd64",
    os: "linux",
    config: {},
    rootfs: { type: "layers", diff_ids: layerResults.map((layer) => layer.diffId) },
    history: layerResults.map((_, i) => ({ created_by: `registry-gateway test layer ${i}` })),
  };
  const configDescriptor = await writeJsonBlob(blobsDir, OCI_CONFIG, config);

  const manifest = {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST,
    config: configDescriptor,
    layers: layerResults.map((layer) => layer.descriptor),
  };
  const manifestDescriptor = await writeJsonBlob(blobsDir, OCI_MANIFEST, manifest);
  await addToIndex(dir, { ...manifestDescriptor, annotations: { [REF_NAME]: tag } });

  return {
    dir,
    tag,
    ociRef: `oci:${dir}:${tag}`,
    manifestDigest: manifestDescriptor.digest,
    manifestSize: manifestDescriptor.size,
    configDigest: configDescriptor.digest,
    layerDigests: layerResults.map((layer) => layer.descriptor.digest),
    diffIds: layerResults.map((layer) => layer.diffId),
  };
}

export function sha256Digest(data: Buffer | string): string {
  return `sha256:${createHash("sha256").update(data).digest("hex")}`;
}

async function writeJsonBlob(blobsDir: string, mediaType: string, value: unknown): Promise<Descriptor> {
  const bytes = Buffer.from(JSON.stringify(value));
  const digest = sha256Digest(bytes);
  await writeFile(join(blobsDir, digest.slice("sha256:".length)), bytes);
  return { mediaType, digest, size: bytes.length };
}

/** Replaces any entry carrying the same tag, so rebuilding a tag does not leave duplicates. */
async function addToIndex(dir: string, entry: Descriptor): Promise<void> {
  const indexPath = join(dir, "index.json");
  let manifests: Descriptor[] = [];
  try {
    manifests = (JSON.parse(await readFile(indexPath, "utf8")) as { manifests: Descriptor[] }).manifests;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  const tag = entry.annotations?.[REF_NAME];
  manifests = manifests.filter((m) => m.annotations?.[REF_NAME] !== tag);
  manifests.push(entry);
  await writeFile(indexPath, JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests }));
}

interface LayerBlob {
  descriptor: Descriptor;
  diffId: string;
}

/** Streams tar → gzip → file, hashing both sides, so large layers never sit in memory. */
async function writeLayerBlob(blobsDir: string, fileName: string, size: number): Promise<LayerBlob> {
  const tarHash = createHash("sha256");
  const gzipHash = createHash("sha256");
  let compressedSize = 0;
  const partPath = join(blobsDir, `.${fileName}.${randomBytes(4).toString("hex")}.part`);
  try {
    await pipeline(
      Readable.from(tarWithOneFile(fileName, size)),
      hashing(tarHash),
      // Random bytes do not compress; the fastest level keeps big layers cheap.
      createGzip({ level: zlibConstants.Z_BEST_SPEED }),
      hashing(gzipHash, (n) => (compressedSize += n)),
      createWriteStream(partPath),
    );
    const hex = gzipHash.digest("hex");
    await rename(partPath, join(blobsDir, hex));
    return {
      descriptor: { mediaType: OCI_LAYER_GZIP, digest: `sha256:${hex}`, size: compressedSize },
      diffId: `sha256:${tarHash.digest("hex")}`,
    };
  } finally {
    await rm(partPath, { force: true });
  }
}

function hashing(hash: Hash, onBytes?: (n: number) => void): Transform {
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      hash.update(chunk);
      onBytes?.(chunk.length);
      callback(null, chunk);
    },
  });
}

const BLOCK = 512;
const CHUNK = 1 << 20;

/** A minimal ustar archive: one regular file, zero padding, two zero end blocks. */
async function* tarWithOneFile(name: string, size: number): AsyncGenerator<Buffer> {
  yield ustarHeader(name, size);
  for (let written = 0; written < size; written += CHUNK) yield randomBytes(Math.min(CHUNK, size - written));
  const padding = (BLOCK - (size % BLOCK)) % BLOCK;
  yield Buffer.alloc(padding + 2 * BLOCK);
}

function ustarHeader(name: string, size: number): Buffer {
  if (Buffer.byteLength(name) > 100) throw new Error(`tar name too long: ${name}`);
  const header = Buffer.alloc(BLOCK);
  const put = (offset: number, length: number, value: string) => header.write(value, offset, length, "ascii");
  const octal = (offset: number, length: number, value: number) =>
    put(offset, length, `${value.toString(8).padStart(length - 1, "0")}\0`);

  put(0, 100, name);
  octal(100, 8, 0o644); // mode
  octal(108, 8, 0); // uid
  octal(116, 8, 0); // gid
  octal(124, 12, size);
  octal(136, 12, Math.floor(Date.now() / 1000)); // mtime
  put(156, 1, "0"); // regular file
  put(257, 6, "ustar\0");
  put(263, 2, "00");
  put(265, 32, "root");
  put(297, 32, "root");
  // The checksum is computed with its own field read as eight spaces.
  put(148, 8, "        ");
  let sum = 0;
  for (const byte of header) sum += byte;
  put(148, 8, `${sum.toString(8).padStart(6, "0")}\0 `);
  return header;
}


/** An image config's bytes: one platform, its labels, and the layers' diff ids (here the layer digests). */
export function imageConfig(platform: { os: string; architecture: string }, labels: Record<string, string>, layerDigests: readonly string[], created = new Date()): Buffer {
  return Buffer.from(JSON.stringify({ created: created.toISOString(), ...platform, config: { Labels: labels }, rootfs: { type: "layers", diff_ids: layerDigests } }));
}

/** An image manifest's bytes for a config and one gzip layer, both given as their bytes. */
export function singleLayerManifest(config: Buffer, layer: Buffer): Buffer {
  return Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: OCI_CONFIG, digest: sha256Digest(config), size: config.length },
      layers: [{ mediaType: OCI_LAYER_GZIP, digest: sha256Digest(layer), size: layer.length }],
    }),
  );
}
