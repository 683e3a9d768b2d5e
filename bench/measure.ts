// One function per measurement. Each runs against one endpoint, is bounded in time, checks the statuses
// it gets, and returns a number (or throws saying exactly what went wrong).
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { run } from "../test/helpers/process.js";
import { OCI_MANIFEST } from "../test/helpers/oci.js";
import { type BlobSource, type Endpoint, MiB, SITE_HOST, expectStatus, locationOf, send } from "./client.js";
import { PULL_REPO, PULL_TAG } from "./seed.js";

function curlTarget(endpoint: Endpoint): string[] {
  if (!endpoint.caFile) return [];
  // HTTP/1.1 for everyone: Caddy would otherwise negotiate h2, which nginx's recipe and the gateway do not offer.
  return ["--http1.1", "--cacert", endpoint.caFile, "--resolve", `${SITE_HOST}:${endpoint.port}:127.0.0.1`];
}

/** Throughput unit of every row: MB/s with MB = 10^6 bytes (blob sizes themselves are whole MiB). */
export const MB = 1e6;

/** Blob GET through the endpoint with curl, body discarded; MB/s over the whole transfer. */
export async function pullMBps(endpoint: Endpoint, digest: string, bytes: number): Promise<number> {
  const url = `${endpoint.origin}/v2/${PULL_REPO}/blobs/${digest}`;
  const args = ["-sS", "-o", "/dev/null", "-w", "%{http_code} %{size_download} %{speed_download}", ...curlTarget(endpoint), url];
  const result = await run("curl", args, { timeoutMs: 120_000 });
  const [status, size, speed] = result.stdout.trim().split(" ").map(Number);
  if (result.code !== 0 || status !== 200 || size !== bytes) {
    throw new Error(`pull via ${endpoint.name}: curl exit ${result.code}, HTTP ${status}, ${size} of ${bytes} bytes ${result.stderr.trim()}`);
  }
  return speed! / MB;
}

/** Where the upload continues: the registry's Location, resolved against the endpoint if relative. */
function nextUploadUrl(endpoint: Endpoint, location: string, what: string): URL {
  const url = new URL(location, endpoint.origin);
  if (url.origin !== endpoint.origin) {
    // Following it would bypass the proxy (or fail): the measurement would be meaningless.
    throw new Error(`${what} via ${endpoint.name}: Location ${location} does not point back at ${endpoint.origin}`);
  }
  return url;
}

export interface UploadTimes {
  seconds: number;
  mbPerSecond: number;
}

/**
 * A docker-style blob push: POST → one chunked PATCH (no Content-Length) → PUT ?digest=, timed from
 * the POST to the PUT's 201. The digest is computed before the clock starts.
 */
export async function pushMBps(endpoint: Endpoint, source: BlobSource, label: string, mebibytes: number): Promise<UploadTimes> {
  const digest = source.digest(label, mebibytes);
  const started = performance.now();
  const post = expectStatus(await send(endpoint, "POST", "/v2/bench/push/blobs/uploads/"), 202, `POST upload via ${endpoint.name}`);
  const patchUrl = nextUploadUrl(endpoint, locationOf(post, "POST upload"), "POST upload");
  const patch = await send(endpoint, "PATCH", patchUrl, {
    headers: { "content-type": "application/octet-stream", "transfer-encoding": "chunked" },
    body: source.stream(label, mebibytes),
    timeoutMs: 180_000,
  });
  expectStatus(patch, 202, `PATCH ${mebibytes} MiB via ${endpoint.name}`);
  const putUrl = nextUploadUrl(endpoint, locationOf(patch, "PATCH"), "PATCH");
  putUrl.searchParams.set("digest", digest);
  const put = await send(endpoint, "PUT", putUrl, { headers: { "content-length": "0" } });
  expectStatus(put, 201, `PUT ?digest via ${endpoint.name}`);
  const seconds = (performance.now() - started) / 1000;
  return { seconds, mbPerSecond: (mebibytes * MiB) / MB / seconds };
}

export interface RpsResult {
  requestsPerSecond: number;
  non2xx: number;
  socketErrors: number;
}

/** wrk -t2 -c32 on the manifest GET. wrk does not verify certificates; curl checked the chain already. */
export async function manifestRps(endpoint: Endpoint, workDir: string, seconds: number, headers: Record<string, string> = {}): Promise<RpsResult> {
  const script = join(workDir, `wrk-${endpoint.name}.lua`);
  const host = endpoint.caFile ? `${SITE_HOST}:${endpoint.port}` : `127.0.0.1:${endpoint.port}`;
  // `headers`: extra request headers (bench/auth.ts sends Authorization).
  const extra = Object.entries(headers).map(([name, value]) => `wrk.headers[${JSON.stringify(name)}] = ${JSON.stringify(value)}\n`);
  await writeFile(script, `wrk.headers["Host"] = "${host}"\nwrk.headers["Accept"] = "${OCI_MANIFEST}"\n${extra.join("")}`);
  const scheme = endpoint.caFile ? "https" : "http";
  const url = `${scheme}://127.0.0.1:${endpoint.port}/v2/${PULL_REPO}/manifests/${PULL_TAG}`;
  const args = ["-t2", "-c32", `-d${seconds}s`, "--timeout", "5s", "-s", script, url];
  const result = await run("wrk", args, { timeoutMs: (seconds + 30) * 1000 });
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(result.stdout);
  if (result.code !== 0 || !rps) throw new Error(`wrk via ${endpoint.name}: exit ${result.code} ${result.stdout} ${result.stderr}`);
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(result.stdout)?.[1] ?? 0);
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(result.stdout);
  const socketErrors = socket ? socket.slice(1).reduce((sum, n) => sum + Number(n), 0) : 0;
  return { requestsPerSecond: Number(rps[1]), non2xx, socketErrors };
}

/** One GET of the manifest with a verifying client: proves the path works before wrk hammers it. */
export async function checkManifest(endpoint: Endpoint, manifestDigest: string): Promise<void> {
  const reply = await send(endpoint, "GET", `/v2/${PULL_REPO}/manifests/${PULL_TAG}`, { headers: { accept: OCI_MANIFEST } });
  expectStatus(reply, 200, `GET manifest via ${endpoint.name}`);
  const digest = reply.headers["docker-content-digest"];
  if (digest !== manifestDigest) throw new Error(`GET manifest via ${endpoint.name}: Docker-Content-Digest ${String(digest)}, expected ${manifestDigest}`);
}

// ---- memory ----------------------------------------------------------------------------------------------

async function statusKiB(pid: number, field: "VmRSS" | "VmHWM"): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status);
  if (!match) throw new Error(`/proc/${pid}/status has no ${field}`);
  return Number(match[1]);
}

const sumKiB = async (pids: number[], field: "VmRSS" | "VmHWM") =>
  (await Promise.all(pids.map((pid) => statusKiB(pid, field)))).reduce((a, b) => a + b, 0);

/** Current RSS summed over pids, MB. */
export async function rssMB(pids: number[]): Promise<number> {
  return ((await sumKiB(pids, "VmRSS")) * 1024) / MB;
}

/** Resets VmHWM to the current RSS (Linux ≥ 4.0, needs ptrace rights over pid); false if refused. */
async function resetPeak(pid: number): Promise<boolean> {
  try {
    await writeFile(`/proc/${pid}/clear_refs`, "5");
    return true;
  } catch {
    return false;
  }
}

export interface MemoryResult {
  /** Sum of VmHWM before the reset: the peak over the process's whole life up to this upload, MB. */
  earlierPeakMB: number;
  /** RSS just before the upload, MB. */
  beforeMB: number;
  /** Highest sum of VmRSS seen by the 100 ms sampler, MB. */
  sampledPeakMB: number;
  /** Sum of VmHWM after the upload, the peaks reset just before it; null if the reset was refused. */
  hwmMB: number | null;
  uploadMBps: number;
}

/**
 * Streams one chunked PATCH of `mebibytes` through the endpoint while sampling the proxy's RSS every
 * 100 ms, then cancels the upload (DELETE) so the registry drops the bytes instead of keeping GiBs on disk.
 */
export async function uploadMemory(
  endpoint: Endpoint,
  pids: number[],
  source: BlobSource,
  label: string,
  mebibytes: number,
): Promise<MemoryResult> {
  if (pids.length === 0) throw new Error(`${endpoint.name}: no processes to measure`);
  const earlierPeakKiB = await sumKiB(pids, "VmHWM");
  const resets = await Promise.all(pids.map(resetPeak));
  const beforeKiB = await sumKiB(pids, "VmRSS");
  let peakKiB = beforeKiB;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      peakKiB = Math.max(peakKiB, await sumKiB(pids, "VmRSS"));
      await sleep(100);
    }
  })();
  const started = performance.now();
  let uploadUrl: URL | undefined;
  try {
    const post = expectStatus(await send(endpoint, "POST", "/v2/bench/rss/blobs/uploads/"), 202, `POST upload via ${endpoint.name}`);
    uploadUrl = nextUploadUrl(endpoint, locationOf(post, "POST upload"), "POST upload");
    const patch = await send(endpoint, "PATCH", uploadUrl, {
      headers: { "content-type": "application/octet-stream", "transfer-encoding": "chunked" },
      body: source.stream(label, mebibytes),
      timeoutMs: 240_000,
    });
    expectStatus(patch, 202, `PATCH ${mebibytes} MiB via ${endpoint.name}`);
    uploadUrl = nextUploadUrl(endpoint, locationOf(patch, "PATCH"), "PATCH");
  } finally {
    sampling = false;
    await sampler;
  }
  const seconds = (performance.now() - started) / 1000;
  const hwmKiB = resets.every(Boolean) ? await sumKiB(pids, "VmHWM") : null;
  expectStatus(await send(endpoint, "DELETE", uploadUrl), 204, `DELETE upload via ${endpoint.name}`);
  return {
    earlierPeakMB: (earlierPeakKiB * 1024) / MB,
    beforeMB: (beforeKiB * 1024) / MB,
    sampledPeakMB: (peakKiB * 1024) / MB,
    hwmMB: hwmKiB === null ? null : (hwmKiB * 1024) / MB,
    uploadMBps: (mebibytes * MiB) / MB / seconds,
  };
}

/** User + system CPU seconds a process has used: /proc/PID/stat fields 14 and 15, in clock ticks (100/s on Linux). */
export async function processCpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}
