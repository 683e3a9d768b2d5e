// A rolling restart's SIGTERM, with uploads in flight on the gateway that gets it: their PATCHes must be
// answered (the gateway drains them), and each upload then finishes through the balancer on another gateway
// (which finds the upload's replica in Redis).
import { setTimeout as sleep } from "node:timers/promises";
import { gatewayRequest } from "../test/helpers/gateway.js";
import { finishUpload, patchChunked, type PatchResult } from "../test/helpers/upload.js";
import { basic } from "./credentials.js";
import { faultCheck } from "./invariants.js";
import type { Fleet, GatewaySlot } from "./fleet.js";
import { HUB } from "./gateway-config.js";
import type { InvariantResult } from "./result.js";
import { digestOnDisk } from "./verify.js";

const UPLOADS = 3;
const BYTES = 4 << 20;

export async function uploadsThroughSigterm(fleet: Fleet, slot: GatewaySlot): Promise<{ detail: string; check: InvariantResult }> {
  const authorization = basic("uploader");
  const direct = { port: slot.httpsPort, caPem: fleet.caPem, host: HUB };
  const locations = await Promise.all(
    Array.from({ length: UPLOADS }, async (_, i) => {
      const post = await gatewayRequest(slot.httpsPort, fleet.caPem, HUB, { method: "POST", path: `/v2/soak/rolling-${i}/blobs/uploads/`, headers: { authorization, "content-length": "0" } });
      if (post.status !== 202) throw new Error(`rolling-sigterm: upload start answered ${post.status}`);
      return post.headers.location as string;
    }),
  );
  // 16 chunks of 256 KiB, 150 ms apart: about 2.4 s per PATCH, the SIGTERM lands in the middle.
  const patches = locations.map((location) => patchChunked(direct, location, { bytes: BYTES, chunkSize: 256 << 10, delayMs: 150, headers: { authorization } }).catch((): PatchResult => ({ status: 0, location: undefined, range: undefined, digest: "", sent: 0, socket: null })));
  await sleep(800);
  const victim = slot.current.process;
  process.kill(victim.pid, "SIGTERM");
  const answered = await Promise.all(patches);
  const finished: number[] = [];
  const stored: boolean[] = [];
  for (const patch of answered) {
    if (patch.status !== 202 || !patch.location) {
      finished.push(0);
      stored.push(false);
      continue;
    }
    const put = await finishUpload({ port: fleet.port, caPem: fleet.caPem, host: HUB }, patch.location, patch.digest, { authorization }).catch(() => ({ status: 0 }));
    finished.push(put.status);
    stored.push(put.status === 201 && (await digestOnDisk(fleet.storageOf("hub"), patch.digest)) === patch.digest);
  }
  const exit = await victim.exited();
  const ok = answered.every((p) => p.status === 202) && finished.every((s) => s === 201) && stored.every(Boolean) && exit.code === 0;
  return {
    detail: `SIGTERM gateway 3 (pid ${victim.pid}) with ${UPLOADS} uploads of ${BYTES >> 20} MiB in flight on it`,
    check: faultCheck(
      "a SIGTERMed gateway finishes its uploads in flight",
      ok,
      `PATCH answers ${answered.map((p) => p.status).join(", ")} (202 expected), PUT through the balancer ${finished.join(", ")} (201), stored intact ${stored.filter(Boolean).length}/${UPLOADS}, gateway exit ${JSON.stringify(exit)}`,
    ),
  };
}
