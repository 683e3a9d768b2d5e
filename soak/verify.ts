// Every push that got a success answer, pulled back through the balancer: the manifest by tag has the digest
// the client was told, and each blob it names (config and layers) streams back with its digest and is
// stored intact on the registry's disk (sha256 of the blob file itself).
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import https from "node:https";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { Writable } from "node:stream";
import { send, type Endpoint } from "../bench/client.js";
import { sha256Digest } from "../test/helpers/oci.js";
import { basic } from "./credentials.js";
import type { Fleet } from "./fleet.js";
import { HUB, TEAM } from "./gateway-config.js";
import type { PushRecord } from "./recorder.js";
import type { BlobCheck } from "./result.js";

const ACCEPT = [
  "application/vnd.oci.image.manifest.v1+json",
  "application/vnd.docker.distribution.manifest.v2+json",
  "application/vnd.oci.image.index.v1+json",
  "application/vnd.docker.distribution.manifest.list.v2+json",
].join(", ");

export function endpointOf(fleet: Fleet, host: string): Endpoint {
  return { name: host, origin: `https://${host}:${fleet.port}`, port: fleet.port, ca: fleet.caPem };
}

/** sha256 of a response body, streamed (a 512 MiB layer never sits in memory). */
function digestOverHttps(endpoint: Endpoint, path: string): Promise<{ status: number; digest: string }> {
  return new Promise((resolve, reject) => {
    const url = new URL(path, endpoint.origin);
    const req = https.get(
      { host: "127.0.0.1", port: endpoint.port, path: url.pathname, servername: url.hostname, ca: endpoint.ca, agent: false, headers: { host: url.host, authorization: basic("reader") } },
      (res) => {
        const hash = createHash("sha256");
        const sink = new Writable({ write: (chunk: Buffer, _e, done) => (hash.update(chunk), done()) });
        pipeline(res, sink).then(() => resolve({ status: res.statusCode ?? 0, digest: `sha256:${hash.digest("hex")}` }), reject);
      },
    );
    req.on("error", reject);
  });
}

/** sha256 of the blob's data file in the registry's storage; null when it is not there. */
export async function digestOnDisk(storageRoot: string, digest: string): Promise<string | null> {
  const hex = digest.slice("sha256:".length);
  const file = join(storageRoot, "docker", "registry", "v2", "blobs", "sha256", hex.slice(0, 2), hex, "data");
  const hash = createHash("sha256");
  try {
    await pipeline(createReadStream(file), new Writable({ write: (chunk: Buffer, _e, done) => (hash.update(chunk), done()) }));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw err;
  }
  return `sha256:${hash.digest("hex")}`;
}

type Verdict = { outcome: "verified" } | { outcome: "lost" | "corrupt"; problem: string };

async function verifyPush(fleet: Fleet, push: PushRecord): Promise<Verdict> {
  const endpoint = endpointOf(fleet, push.site === "hub" ? HUB : TEAM);
  const reply = await send(endpoint, "GET", `/v2/${push.repository}/manifests/${push.tag}`, { headers: { authorization: basic("reader"), accept: ACCEPT } });
  if (reply.status !== 200) return { outcome: "lost", problem: `${push.reference}: manifest HTTP ${reply.status}` };
  if (sha256Digest(reply.body) !== push.manifestDigest) return { outcome: "corrupt", problem: `${push.reference}: manifest ${sha256Digest(reply.body)}, pushed ${push.manifestDigest}` };
  const manifest = JSON.parse(reply.body.toString()) as { config: { digest: string }; layers: { digest: string }[] };
  for (const digest of [manifest.config.digest, ...manifest.layers.map((l) => l.digest)]) {
    const pulled = await digestOverHttps(endpoint, `/v2/${push.repository}/blobs/${digest}`);
    if (pulled.status !== 200) return { outcome: "lost", problem: `${push.reference}: blob ${digest} HTTP ${pulled.status}` };
    if (pulled.digest !== digest) return { outcome: "corrupt", problem: `${push.reference}: blob ${digest} pulled as ${pulled.digest}` };
    const stored = await digestOnDisk(fleet.storageOf(push.site), digest);
    if (stored === null) return { outcome: "lost", problem: `${push.reference}: blob ${digest} not on disk` };
    if (stored !== digest) return { outcome: "corrupt", problem: `${push.reference}: blob ${digest} on disk hashes to ${stored}` };
  }
  return { outcome: "verified" };
}

export async function verifyPushes(fleet: Fleet, pushes: readonly PushRecord[]): Promise<{ blobs: BlobCheck; problems: string[] }> {
  const blobs: BlobCheck = { pushed: pushes.length, verified: 0, lost: 0, corrupt: 0 };
  const problems: string[] = [];
  for (const push of pushes) {
    const verdict = await verifyPush(fleet, push).catch((err: Error): Verdict => ({ outcome: "lost", problem: `${push.reference}: ${err.message}` }));
    blobs[verdict.outcome]++;
    if (verdict.outcome !== "verified") problems.push(verdict.problem);
  }
  return { blobs, problems };
}
