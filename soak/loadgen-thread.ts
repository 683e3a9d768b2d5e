// The load generator's thread (see loadgen.ts): GETs on a timer, at most 32 waiting at once (beyond that a
// tick is skipped, not queued), each checked for its status and digest, reported back in batches.
import { parentPort, workerData } from "node:worker_threads";
import { closeAgents, send } from "../bench/client.js";
import { OCI_MANIFEST } from "../test/helpers/oci.js";
import type { OperationRecord } from "./attribution.js";
import { SMALL_GET, type LoadgenBatch, type LoadgenSetup } from "./loadgen.js";
import type { Latency } from "./percentile.js";
import { wallClockMs } from "./recorder.js";

const MAX_IN_FLIGHT = 32;
const setup = workerData as LoadgenSetup;
const now = () => (wallClockMs() - setup.startedAt) / 1000;
const paths = setup.targets.flatMap(({ endpoint, image }) => [
  { endpoint, path: `/v2/${image.repository}/manifests/${image.tag}`, digest: image.manifestDigest, accept: OCI_MANIFEST },
  { endpoint, path: `/v2/${image.repository}/blobs/${image.layerDigest}`, digest: image.layerDigest, accept: "*/*" },
]);
let records: OperationRecord[] = [];
let latencies: Latency[] = [];
const inFlight = new Set<Promise<void>>();
let next = 0;

async function get(target: (typeof paths)[number]): Promise<void> {
  const start = now();
  try {
    const reply = await send(target.endpoint, "GET", target.path, { headers: { authorization: setup.authorization, accept: target.accept }, timeoutMs: 15_000 });
    if (reply.status !== 200) throw new Error(`GET ${target.path}: HTTP ${reply.status} ${reply.body.subarray(0, 200).toString()}`);
    if (reply.headers["docker-content-digest"] !== target.digest) throw new Error(`GET ${target.path}: digest ${reply.headers["docker-content-digest"]}`);
    const end = now();
    records.push({ operation: SMALL_GET, start, end, ok: true });
    latencies.push({ t: start, ms: (end - start) * 1000 });
  } catch (err) {
    records.push({ operation: SMALL_GET, start, end: now(), ok: false, error: (err as Error).message.replace(/\s+/g, " ").slice(0, 300) });
  }
}

function flush(done: boolean): void {
  parentPort!.postMessage({ records, latencies, done } satisfies LoadgenBatch);
  records = [];
  latencies = [];
}

const ticker = setInterval(() => {
  if (inFlight.size >= MAX_IN_FLIGHT) return;
  const request = get(paths[next++ % paths.length]!).finally(() => inFlight.delete(request));
  inFlight.add(request);
}, 1000 / setup.perSecond);
const flusher = setInterval(() => flush(false), 250);

parentPort!.on("message", async () => {
  clearInterval(ticker);
  clearInterval(flusher);
  await Promise.all(inFlight);
  closeAgents();
  flush(true);
});
