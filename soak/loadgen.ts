// Small GETs at a steady rate through the balancer, on keep-alive connections (as a registry client holds
// them): the p99 series. Manifests and a small blob of each site, in turn, as the read-only user. The GETs
// run in a worker thread of their own, so the runner's own work (building images, hashing layers) never
// delays a timer or a response and shows up as gateway latency.
import { Worker } from "node:worker_threads";
import type { Endpoint } from "../bench/client.js";
import type { TinyImage } from "../test/helpers/seed.js";
import type { OperationRecord } from "./attribution.js";
import type { Latency } from "./percentile.js";
import type { Recorder } from "./recorder.js";

export const SMALL_GET = "loadgen small GET";

export interface SmallTarget {
  endpoint: Endpoint;
  image: TinyImage;
}

export interface LoadgenSetup {
  targets: SmallTarget[];
  perSecond: number;
  /** The run's start (Recorder.startedAt), to time records as the runner does. */
  startedAt: number;
  authorization: string;
}

/** What the thread sends back, a few times a second and once more after being told to stop. */
export interface LoadgenBatch {
  records: OperationRecord[];
  latencies: Latency[];
  done: boolean;
}

/** A worker thread does not inherit the main thread's `--import tsx`: it registers tsx itself, then loads the entry. */
function typeScriptEntry(entry: URL): string {
  const tsx = import.meta.resolve("tsx/esm/api");
  return `import(${JSON.stringify(tsx)}).then(({ register }) => { register(); return import(${JSON.stringify(entry.href)}); });`;
}

export function startLoadgen(recorder: Recorder, setup: Omit<LoadgenSetup, "startedAt">): { stop(): Promise<void> } {
  const worker = new Worker(typeScriptEntry(new URL("./loadgen-thread.ts", import.meta.url)), { eval: true, workerData: { ...setup, startedAt: recorder.startedAt } satisfies LoadgenSetup });
  let finished: () => void;
  const done = new Promise<void>((resolve) => (finished = resolve));
  worker.on("message", (batch: LoadgenBatch) => {
    recorder.records.push(...batch.records);
    recorder.latencies.push(...batch.latencies);
    if (batch.done) finished();
  });
  worker.on("error", (err) => {
    recorder.records.push({ operation: SMALL_GET, start: recorder.now(), end: recorder.now(), ok: false, error: `load generator thread: ${err.message}` });
    finished();
  });
  return {
    async stop() {
      worker.postMessage("stop");
      await done;
      await worker.terminate();
    },
  };
}
