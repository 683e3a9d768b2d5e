// Small GETs at a steady rate through the balancer, on keep-alive connections (as a registry client holds
// them): the p99 series. Manifests and a small blob of each site, in turn, as the read-only user.
import { closeAgents, send, type Endpoint } from "../bench/client.js";
import { OCI_MANIFEST } from "../test/helpers/oci.js";
import type { TinyImage } from "../test/helpers/seed.js";
import { basic } from "./credentials.js";
import type { Recorder } from "./recorder.js";

export const SMALL_GET = "loadgen small GET";

export interface SmallTarget {
  endpoint: Endpoint;
  image: TinyImage;
}

/** Starts the GETs; at most `maxInFlight` wait at once (beyond that a tick is skipped, not queued). */
export function startLoadgen(recorder: Recorder, targets: readonly SmallTarget[], perSecond: number, maxInFlight = 32): { stop(): Promise<void> } {
  const paths = targets.flatMap(({ endpoint, image }) => [
    { endpoint, path: `/v2/${image.repository}/manifests/${image.tag}`, digest: image.manifestDigest, accept: OCI_MANIFEST },
    { endpoint, path: `/v2/${image.repository}/blobs/${image.layerDigest}`, digest: image.layerDigest, accept: "*/*" },
  ]);
  const authorization = basic("reader");
  const inFlight = new Set<Promise<unknown>>();
  let next = 0;
  const tick = () => {
    if (inFlight.size >= maxInFlight) return;
    const target = paths[next++ % paths.length]!;
    const started = performance.now();
    const t = recorder.now();
    const done = recorder
      .track(SMALL_GET, async () => {
        const reply = await send(target.endpoint, "GET", target.path, { headers: { authorization, accept: target.accept }, timeoutMs: 15_000 });
        if (reply.status !== 200) throw new Error(`GET ${target.path}: HTTP ${reply.status} ${reply.body.subarray(0, 200).toString()}`);
        if (reply.headers["docker-content-digest"] !== target.digest) throw new Error(`GET ${target.path}: digest ${reply.headers["docker-content-digest"]}`);
        recorder.latencies.push({ t, ms: performance.now() - started });
      })
      .finally(() => inFlight.delete(done));
    inFlight.add(done);
  };
  const timer = setInterval(tick, 1000 / perSecond);
  return {
    async stop() {
      clearInterval(timer);
      await Promise.all(inFlight);
      closeAgents();
    },
  };
}
