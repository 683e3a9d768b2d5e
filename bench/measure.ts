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

/**
 * `count` curl pulls of the same blob started together, each on its own connection, as several
 * clients pulling layers at once would. Aggregate MB/s = all bytes / wall time from spawning the first
 * curl to the exit of the last.
 */
export async function concurrentPullMBps(endpoint: Endpoint, digest: string, bytes: number, count: number): Promise<number> {
  const url = `${endpoint.origin}/v2/${PULL_REPO}/blobs/${digest}`;
  const args = ["-sS", "-o", "/dev/null", "-w", "%{http_code} %{size_download}", ...curlTarget(endpoint), url];
  const started = performance.now();
  const results = await Promise.all(Array.from({ length: count }, () => run("curl", args, { timeoutMs: 240_000 })));
  const seconds = (performance.now() - started) / 1000;
  results.forEach((result, i) => {
    const [status, size] = result.stdout.trim().split(" ").map(Number);
    if (result.code !== 0 || status !== 200 || size !== bytes) {
      throw new Error(`pull ${i + 1} of ${count} via ${endpoint.name}: curl exit ${result.code}, HTTP ${status}, ${size} of ${bytes} bytes ${result.stderr.trim()}`);
    }
  });
  return (count * bytes) / MB / seconds;
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

/** Current RSS of each pid, MB. */
export async function rssPerProcess(pids: number[]): Promise<Map<number, number>> {
  const kib = await Promise.all(pids.map((pid) => statusKiB(pid, "VmRSS")));
  return new Map(pids.map((pid, i) => [pid, toMB(kib[i]!)]));
}

const toMB = (kib: number) => (kib * 1024) / MB;

/** Resets VmHWM to the current RSS (Linux ≥ 4.0, needs ptrace rights over pid); false if refused. */
async function resetPeak(pid: number): Promise<boolean> {
  try {
    await writeFile(`/proc/${pid}/clear_refs`, "5");
    return true;
  } catch {
    return false;
  }
}

/** One process's memory around the upload, MB. */
export interface ProcessMemory {
  pid: number;
  /** VmHWM before the reset: the process's peak over its whole life up to this upload. */
  earlierPeakMB: number;
  /** VmRSS just before the upload. */
  beforeMB: number;
  /** Highest VmRSS seen by the 100 ms sampler during the upload. */
  sampledPeakMB: number;
  /** VmHWM after the upload, reset just before it; null if the reset was refused. */
  hwmMB: number | null;
}

export interface MemoryResult {
  /** Every process measured, in the order given. */
  processes: ProcessMemory[];
  uploadMBps: number;
}

/** The peak during the upload: VmHWM when the reset worked, else what the sampler saw. */
export const uploadPeakMB = (p: ProcessMemory): number => p.hwmMB ?? p.sampledPeakMB;

/** Upload time allowed: 60 s plus 10 MB/s, far below what any proxy here does (~100 MB/s). */
const uploadTimeoutMs = (mebibytes: number) => 60_000 + Math.ceil(((mebibytes * MiB) / (10 * MB)) * 1000);

/**
 * Streams one chunked PATCH of `mebibytes` through the endpoint while sampling each process's RSS every
 * 100 ms, then cancels the upload (DELETE) so the registry drops the bytes instead of keeping GiBs on disk.
 * Each process is read on its own: in a cluster one worker serves the upload, and its peak is the one
 * that must stay bounded, not a sum that also counts processes that did nothing.
 */
export async function uploadMemory(
  endpoint: Endpoint,
  pids: number[],
  source: BlobSource,
  label: string,
  mebibytes: number,
): Promise<MemoryResult> {
  if (pids.length === 0) throw new Error(`${endpoint.name}: no processes to measure`);
  const earlierPeakKiB = await Promise.all(pids.map((pid) => statusKiB(pid, "VmHWM")));
  const resets = await Promise.all(pids.map(resetPeak));
  const beforeKiB = await Promise.all(pids.map((pid) => statusKiB(pid, "VmRSS")));
  const peakKiB = [...beforeKiB];
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      const now = await Promise.all(pids.map((pid) => statusKiB(pid, "VmRSS")));
      now.forEach((kib, i) => (peakKiB[i] = Math.max(peakKiB[i]!, kib)));
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
      timeoutMs: uploadTimeoutMs(mebibytes),
    });
    expectStatus(patch, 202, `PATCH ${mebibytes} MiB via ${endpoint.name}`);
    uploadUrl = nextUploadUrl(endpoint, locationOf(patch, "PATCH"), "PATCH");
  } finally {
    sampling = false;
    await sampler;
  }
  const seconds = (performance.now() - started) / 1000;
  const hwmKiB = await Promise.all(pids.map((pid, i) => (resets[i] ? statusKiB(pid, "VmHWM") : null)));
  expectStatus(await send(endpoint, "DELETE", uploadUrl), 204, `DELETE upload via ${endpoint.name}`);
  return {
    processes: pids.map((pid, i) => ({
      pid,
      earlierPeakMB: toMB(earlierPeakKiB[i]!),
      beforeMB: toMB(beforeKiB[i]!),
      sampledPeakMB: toMB(peakKiB[i]!),
      hwmMB: hwmKiB[i] === null ? null : toMB(hwmKiB[i]!),
    })),
    uploadMBps: (mebibytes * MiB) / MB / seconds,
  };
}

/** User + system CPU seconds a process has used: /proc/PID/stat fields 14 and 15, in clock ticks (100/s on Linux). */
export async function processCpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}
