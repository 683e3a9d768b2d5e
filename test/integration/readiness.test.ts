// /readyz reports what the data plane really sees, with one process (workers: 1) and with a cluster
// (workers: 2) alike: every backend of a pool of three replicas, under the pool's own name, healthy as its
// health checks say (a killed replica turns unhealthy within two intervals and healthy again once it is
// back), and with the requests outstanding on it. Driven as users run it (`node dist/main.js serve`).
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { httpsCall, startClusterProcess, type ClusterProcess } from "../helpers/cluster.js";
import { waitFor } from "../helpers/process.js";
import { readyz as readyzAt, type ReadyBackend } from "../helpers/readiness.js";
import { startRegistry, type Registry } from "../helpers/registry.js";
import { patchChunked } from "../helpers/upload.js";

const HOST = "ready.registry.test";
/** The pool a single process names `site/member` for a group member. */
const POOL = "ready/main";
const INTERVAL_MS = 500;
const KiB = 1024;

interface Ready {
  status: number;
  sentAt: number;
  backends: ReadyBackend[];
}

for (const workers of [1, 2]) {
  describe(`/readyz with workers: ${workers}`, () => {
    let dir: string;
    let replicas: Registry[];
    let gateway: ClusterProcess;
    let ca: string;

    const readyz = async (): Promise<Ready> => {
      const sentAt = performance.now();
      const { status, body } = await readyzAt(gateway.adminPort);
      return { status, sentAt, backends: body.backends };
    };
    const entry = (ready: Ready, replica: Registry) => ready.backends.find((b) => b.backend === replica.url);

    before(async () => {
      dir = await mkdtemp(join(tmpdir(), "rg-readiness-"));
      const storage = join(dir, "storage");
      // One storage root: what one replica stores, every replica serves.
      replicas = await Promise.all([0, 1, 2].map(() => startRegistry({ rootDir: storage })));
      const health = `{ interval: ${INTERVAL_MS}ms, timeout: 400ms, unhealthyThreshold: 1, healthyThreshold: 1 }`;
      const config = [
        "listen: 127.0.0.1:0",
        'admin: { listen: "127.0.0.1:0" }',
        `dataDir: ${join(dir, "data")}`,
        `workers: ${workers}`,
        "sites:",
        "  - name: ready",
        `    hosts: [${HOST}]`,
        "    pushTo: main",
        "    group:",
        `      - { name: main, backends: [${replicas.map((r) => r.url).join(", ")}], health: ${health} }`,
        "",
      ].join("\n");
      await writeFile(join(dir, "gateway.yaml"), config);
      gateway = await startClusterProcess(join(dir, "gateway.yaml"));
      ca = await readFile(gateway.caFile!, "utf8");
    });

    after(async () => {
      await gateway?.process.stop(10_000);
      await Promise.all((replicas ?? []).map((r) => r.stop()));
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    it("lists every replica under the pool's own name, healthy, reachable, nothing outstanding", async () => {
      const ready = await waitFor(
        async () => {
          const answer = await readyz();
          return answer.backends.every((b) => b.healthy) ? answer : undefined;
        },
        { timeoutMs: 5000, what: "every replica healthy" },
      );
      assert.equal(ready.status, 200);
      assert.deepEqual(ready.backends.map((b) => [b.pool, b.backend, b.reachable, b.outstanding]).sort(), replicas.map((r) => [POOL, r.url, true, 0]).sort());
    });

    it("counts a request held open on a replica as outstanding there", async () => {
      const started = await httpsCall({ port: gateway.httpsPort, ca, host: HOST, method: "POST", path: "/v2/held/app/blobs/uploads/", headers: { "content-length": "0" } });
      assert.equal(started.status, 202, started.body.toString());
      // 24 × 16 KiB, 100 ms apart: ~2.4 s in flight.
      const patch = patchChunked({ port: gateway.httpsPort, caPem: ca, host: HOST }, started.headers.location as string, { bytes: 24 * 16 * KiB, chunkSize: 16 * KiB, delayMs: 100 });
      const held = await waitFor(
        async () => {
          const answer = await readyz();
          return answer.backends.some((b) => b.outstanding >= 1) ? answer : undefined;
        },
        { timeoutMs: 2000, intervalMs: 50, what: "a backend with the PATCH outstanding" },
      );
      assert.equal(held.backends.filter((b) => b.outstanding > 0).length, 1, `the PATCH is outstanding on one replica: ${JSON.stringify(held.backends)}`);
      assert.equal((await patch).status, 202);
      await waitFor(async () => (await readyz()).backends.every((b) => b.outstanding === 0), { timeoutMs: 3000, what: "nothing outstanding once the PATCH is answered" });
    });

    it("shows a killed replica unhealthy and unreachable within two health-check intervals, and healthy again once it is back", async () => {
      const victim = replicas[1]!;
      process.kill(victim.process.pid, "SIGKILL");
      await victim.process.exited();
      const killedAt = performance.now();
      const down = await waitFor(
        async () => {
          const answer = await readyz();
          return entry(answer, victim)?.healthy === false ? answer : undefined;
        },
        { timeoutMs: 10_000, intervalMs: 50, what: `${victim.url} unhealthy in /readyz` },
      );
      assert.ok(down.sentAt - killedAt <= 2 * INTERVAL_MS, `unhealthy only after ${Math.round(down.sentAt - killedAt)} ms`);
      assert.equal(entry(down, victim)!.reachable, false);
      for (const replica of replicas.filter((r) => r !== victim)) assert.equal(entry(down, replica)!.healthy, true, replica.url);

      replicas[1] = await startRegistry({ rootDir: victim.rootDir, port: victim.port });
      const up = await waitFor(
        async () => {
          const answer = await readyz();
          return entry(answer, victim)?.healthy === true ? answer : undefined;
        },
        { timeoutMs: 10_000, intervalMs: 50, what: `${victim.url} healthy again in /readyz` },
      );
      assert.equal(entry(up, victim)!.reachable, true);
      assert.equal(up.status, 200);
    });
  });
}
