// Upload ranges (OCI distribution spec v1.1) in front of distribution 2.8, which ignores a PATCH's
// Content-Range and appends whatever it is sent. Through the gateway an out-of-order or repeated chunk is
// answered 416 with the upload's current Range and never reaches the registry (its access log is the
// oracle), a GET on the session is answered 204 with Range, Location and Docker-Upload-UUID, and real
// clients (skopeo, podman) push as before: on a single backend and on replicas sharing one storage.
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { gatewayConfig } from "../../src/config/schema.js";
import { certDir, cleanupClients, hostsFile, podman, podmanStore, skopeo, type PodmanStore } from "../helpers/clients.js";
import { startClusterProcess, workerOfRequest, type ClusterProcess } from "../helpers/cluster.js";
import { gatewayRequest, startTestGateway, type GatewayResponse, type TestGateway } from "../helpers/gateway.js";
import { buildOciImage } from "../helpers/oci.js";
import { freePort } from "../helpers/ports.js";
import { formatRun, waitFor } from "../helpers/process.js";
import { startRedis, type RedisServer } from "../helpers/redis.js";
import { accessLog, startRegistry, type Registry } from "../helpers/registry.js";
import { finishUpload, patchChunked, startUpload, type UploadTarget } from "../helpers/upload.js";

const HOST = "ranges.registry.test";
const PASS_HOST = "pass.registry.test";
const POOL_HOST = "pool.registry.test";
const HEALTH = { interval: "200ms", timeout: "500ms", unhealthyThreshold: 2, healthyThreshold: 1 };
const UUID_IN_LOCATION = /\/blobs\/uploads\/([^/?]+)/;

/** A chunk sent as one PATCH with its Content-Range (and Content-Length). */
function patchChunk(target: UploadTarget, location: string, chunk: Buffer, start: number, requestId?: string): Promise<GatewayResponse> {
  const url = new URL(location, `https://${target.host}`);
  return gatewayRequest(target.port, target.caPem, target.host, {
    method: "PATCH",
    path: url.pathname + url.search,
    headers: {
      "content-type": "application/octet-stream",
      "content-range": `${start}-${start + chunk.length - 1}`,
      ...(requestId ? { "x-request-id": requestId } : {}),
    },
    body: chunk,
  });
}

function getSession(target: UploadTarget, location: string): Promise<GatewayResponse> {
  const url = new URL(location, `https://${target.host}`);
  return gatewayRequest(target.port, target.caPem, target.host, { path: url.pathname + url.search });
}

/** Where requests for `host` go: an in-process gateway's or a cluster's listener. */
function targetOf(gateway: { port: number; caPem: string }, host: string): UploadTarget {
  return { port: gateway.port, caPem: gateway.caPem, host };
}

/** The backends' access-log lines for upload `uuid`. */
function sessionLines(backends: readonly Registry[], uuid: string, method: string) {
  return backends.flatMap((registry) => accessLog(registry)).filter((line) => line.method === method && line.uri.includes(uuid));
}

/**
 * Two chunks in order with an out-of-order and a repeated one between them, and status asked twice: the
 * refused chunks and the status never reach a backend, and the blob is exactly the two chunks.
 */
async function chunkedUploadWithMistakes(gateway: TestGateway, host: string, backends: readonly Registry[], repository: string): Promise<void> {
  const target = targetOf(gateway, host);
  const first = randomBytes(1000);
  const second = randomBytes(500);
  const started = await startUpload(target, repository);
  const uuid = UUID_IN_LOCATION.exec(started)![1]!;

  const accepted = await patchChunk(target, started, first, 0);
  assert.equal(accepted.status, 202, accepted.body.toString());
  assert.equal(accepted.headers.range, "0-999");
  const current = accepted.headers.location!;

  const ahead = await patchChunk(target, current, second, 2000);
  assert.equal(ahead.status, 416, ahead.body.toString());
  assert.equal(ahead.json().errors[0].code, "BLOB_UPLOAD_INVALID");
  assert.equal(ahead.headers.range, "0-999");
  assert.equal(ahead.headers.location, current, "the session URL as the client knows it, the latest _state");
  assert.equal(ahead.headers["docker-upload-uuid"], uuid);

  const repeated = await patchChunk(target, current, first, 0);
  assert.equal(repeated.status, 416);
  assert.equal(repeated.headers.range, "0-999");

  for (const asked of [current, started]) {
    const status = await getSession(target, asked);
    assert.equal(status.status, 204, `GET ${asked}: ${status.body.toString()}`);
    assert.equal(status.headers.range, "0-999");
    assert.equal(status.headers.location, current);
    assert.equal(status.headers["docker-upload-uuid"], uuid);
  }

  const next = await patchChunk(target, current, second, 1000);
  assert.equal(next.status, 202, next.body.toString());
  assert.equal(next.headers.range, "0-1499");
  const digest = `sha256:${createHash("sha256").update(first).update(second).digest("hex")}`;
  const finished = await finishUpload(target, next.headers.location!, digest);
  assert.equal(finished.status, 201, finished.body.toString());

  await waitFor(() => sessionLines(backends, uuid, "PUT").length === 1, { timeoutMs: 5000, what: "the PUT in the access log" });
  assert.deepEqual(
    sessionLines(backends, uuid, "PATCH").map((line) => line.status),
    [202, 202],
    "only the two chunks in order reached the registry",
  );
  assert.equal(sessionLines(backends, uuid, "GET").length, 0, "the gateway answered the status itself");
  // The session is over: its record went with it, so the status is the registry's again.
  const over = await getSession(target, next.headers.location!);
  assert.equal(over.status, 404);
}

describe("upload ranges in front of distribution 2.8", () => {
  let workDir: string;
  let registry: Registry;
  let replicas: Registry[];
  let gateway: TestGateway;
  let store: PodmanStore;
  let redis: RedisServer;
  /** Two gateways keeping upload records in one Redis. */
  let shared: TestGateway[];

  before(async () => {
    // Lower case: podman names an image pulled from an OCI layout after its path, and a name must be.
    workDir = join(tmpdir(), `rg-ranges-${randomBytes(6).toString("hex")}`);
    await mkdir(workDir);
    const storage = join(workDir, "pool-storage");
    const secret = randomBytes(16).toString("hex");
    [registry, replicas, store, redis] = await Promise.all([
      startRegistry({ accessLog: true }),
      Promise.all([0, 1].map(() => startRegistry({ rootDir: storage, secret, accessLog: true }))),
      podmanStore(),
      startRedis(),
    ]);
    shared = await Promise.all([0, 1].map(() => startTestGateway({ sites: [{ name: "ranges", hosts: [HOST], backend: registry.url }], redis: { url: redis.url } })));
    gateway = await startTestGateway({
      sites: [
        { name: "ranges", hosts: [HOST], backend: registry.url },
        { name: "pass", hosts: [PASS_HOST], backend: registry.url, uploadRanges: "pass" },
        { name: "pool", hosts: [POOL_HOST], backends: replicas.map((replica) => replica.url), health: HEALTH },
      ],
    });
  });

  after(async () => {
    await Promise.all([gateway?.stop(), ...(shared ?? []).map((one) => one.stop())]);
    await Promise.all([registry?.stop(), ...(replicas ?? []).map((replica) => replica.stop()), store?.remove(), redis?.stop()]);
    await cleanupClients();
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  it("refuses out-of-order and repeated chunks with 416 and answers the session's status, on a single backend", async () => {
    await chunkedUploadWithMistakes(gateway, HOST, [registry], "ranges/single");
  });

  it("does the same on replicas (the record is the session's affinity record)", async () => {
    await chunkedUploadWithMistakes(gateway, POOL_HOST, replicas, "ranges/pool");
  });

  it("knows where an upload stands whichever gateway sharing its Redis took the last chunk", async () => {
    const [a, b] = shared;
    const location = await startUpload(targetOf(a!, HOST), "ranges/shared");
    const uuid = UUID_IN_LOCATION.exec(location)![1]!;
    const accepted = await patchChunk(targetOf(a!, HOST), location, randomBytes(100), 0);
    assert.equal(accepted.status, 202);
    const repeated = await patchChunk(targetOf(b!, HOST), accepted.headers.location!, randomBytes(100), 0);
    assert.equal(repeated.status, 416);
    assert.equal(repeated.headers.range, "0-99");
    const status = await getSession(targetOf(b!, HOST), location);
    assert.equal(status.status, 204);
    assert.equal(status.headers.range, "0-99");
    assert.equal(sessionLines([registry], uuid, "PATCH").length, 1);
  });

  it("keeps where an upload stands across a reload", async () => {
    const input = { sites: [{ name: "ranges", hosts: [HOST], backend: registry.url }] };
    const reloading = await startTestGateway(input);
    try {
      const location = await startUpload(targetOf(reloading, HOST), "ranges/reload");
      const accepted = await patchChunk(targetOf(reloading, HOST), location, randomBytes(100), 0);
      assert.equal(accepted.status, 202);
      const next = gatewayConfig.parse({ ...input, listen: "127.0.0.1:0", admin: { listen: "127.0.0.1:0" }, dataDir: reloading.dataDir, timeouts: { idle: "4m" } });
      const outcome = await reloading.reload(next);
      assert.ok(outcome.ok, JSON.stringify(outcome));
      const repeated = await patchChunk(targetOf(reloading, HOST), accepted.headers.location!, randomBytes(100), 0);
      assert.equal(repeated.status, 416);
      assert.equal(repeated.headers.range, "0-99");
    } finally {
      await reloading.stop();
    }
  });

  it("refuses a malformed Content-Range with 400 before the registry sees it", async () => {
    const target = targetOf(gateway, HOST);
    const location = await startUpload(target, "ranges/malformed");
    const uuid = UUID_IN_LOCATION.exec(location)![1]!;
    const url = new URL(location);
    const res = await gateway.request(HOST, { method: "PATCH", path: url.pathname + url.search, headers: { "content-range": "bytes 0-9/10" }, body: randomBytes(10) });
    assert.equal(res.status, 400);
    assert.equal(res.json().errors[0].code, "BLOB_UPLOAD_INVALID");
    assert.equal(res.headers["docker-upload-uuid"], uuid);
    const cancelled = await gateway.request(HOST, { method: "DELETE", path: url.pathname + url.search });
    assert.equal(cancelled.status, 204);
    await waitFor(() => sessionLines([registry], uuid, "DELETE").length === 1, { timeoutMs: 5000, what: "the DELETE in the access log" });
    assert.equal(sessionLines([registry], uuid, "PATCH").length, 0);
  });

  it("after a chunk cut short, where the upload stands is the backend's to say again", async () => {
    const target = targetOf(gateway, HOST);
    const started = await startUpload(target, "ranges/cut");
    const uuid = UUID_IN_LOCATION.exec(started)![1]!;
    const accepted = await patchChunk(target, started, randomBytes(1000), 0);
    assert.equal(accepted.status, 202);
    const location = accepted.headers.location!;
    const bytes = 8 * 1024 * 1024;
    const cut = await patchChunked(target, location, { bytes, abortAfter: 1024 * 1024, headers: { "content-range": `1000-${1000 + bytes - 1}` } });
    assert.equal(cut.status, 0, "the client went away mid-chunk");
    // The backend may hold some of the cut chunk: the gateway no longer answers the status from its record.
    await waitFor(
      async () => {
        await getSession(target, location);
        return sessionLines([registry], uuid, "GET").length > 0;
      },
      { timeoutMs: 5000, what: "a status request sent on to the registry" },
    );
  });

  it("with uploadRanges: pass, leaves chunks to the backend as before", async () => {
    const target = targetOf(gateway, PASS_HOST);
    const location = await startUpload(target, "ranges/pass");
    const ahead = await patchChunk(targetOf(gateway, PASS_HOST), location, randomBytes(10), 100);
    assert.equal(ahead.status, 202, "distribution 2.8 appends it");
  });

  it("skopeo and podman push through it as before", async () => {
    const [certs, hosts, skopeoImage, podmanImage] = await Promise.all([
      certDir(gateway.caPem),
      hostsFile(workDir, { [HOST]: "127.0.0.1", [POOL_HOST]: "127.0.0.1" }),
      buildOciImage(join(workDir, "skopeo-image"), { layers: 2, layerSize: 256 * 1024, tag: "v1" }),
      buildOciImage(join(workDir, "podman-image"), { layers: 2, layerSize: 256 * 1024, tag: "v1" }),
    ]);
    for (const host of [HOST, POOL_HOST]) {
      const push = ["copy", "--dest-cert-dir", certs, skopeoImage.ociRef, `docker://${host}:${gateway.port}/ranges/skopeo:v1`];
      const pushed = await skopeo(push, { hosts, timeoutMs: 60_000 });
      assert.equal(pushed.code, 0, formatRun("skopeo copy", push, pushed));
    }
    const pulled = await podman(["pull", podmanImage.ociRef], { store, timeoutMs: 60_000 });
    assert.equal(pulled.code, 0, formatRun("podman pull", [podmanImage.ociRef], pulled));
    const id = pulled.stdout.trim().split("\n").at(-1)!;
    for (const host of [HOST, POOL_HOST]) {
      const push = ["push", "--cert-dir", certs, id, `docker://${host}:${gateway.port}/ranges/podman:v1`];
      const pushed = await podman(push, { store, hosts, timeoutMs: 60_000 });
      assert.equal(pushed.code, 0, formatRun("podman push", push, pushed));
    }
    const refused = gateway.logs.filter((line) => line.status === 416);
    assert.equal(refused.length, 4, "only the tests' own mistakes were refused");
  });
});

describe("upload ranges with workers: 2 (records in the primary)", () => {
  let dir: string;
  let registry: Registry;
  let cluster: ClusterProcess;
  let target: UploadTarget;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "rg-ranges-workers-"));
    const configPath = join(dir, "gateway.yaml");
    let ports: number[];
    [registry, ports] = await Promise.all([startRegistry({ accessLog: true }), Promise.all([freePort(), freePort()])]);
    const config = {
      listen: `127.0.0.1:${ports[0]}`,
      admin: { listen: `127.0.0.1:${ports[1]}` },
      dataDir: join(dir, "data"),
      workers: 2,
      sites: [{ name: "ranges", hosts: [HOST], backend: registry.url }],
    };
    await writeFile(configPath, JSON.stringify(config));
    cluster = await startClusterProcess(configPath);
    target = { port: cluster.httpsPort, caPem: await readFile(cluster.caFile!, "utf8"), host: HOST };
  });

  after(async () => {
    await cluster?.process.stop(15_000);
    await registry?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("every worker refuses a repeated chunk: the offset one worker learnt is the primary's", async () => {
    const location = await startUpload(target, "ranges/workers");
    const uuid = UUID_IN_LOCATION.exec(location)![1]!;
    const accepted = await patchChunk(target, location, randomBytes(100), 0);
    assert.equal(accepted.status, 202);
    const served = new Set<number>();
    for (let i = 0; i < 6; i++) {
      const id = `ranges-repeat-${i}`;
      const repeated = await patchChunk(target, accepted.headers.location!, randomBytes(100), 0, id);
      assert.equal(repeated.status, 416);
      assert.equal(repeated.headers.range, "0-99");
      served.add(await workerOfRequest(cluster, id));
    }
    assert.deepEqual([...served].sort(), [1, 2], "both workers were sent the repeated chunk");
    assert.equal(sessionLines([registry], uuid, "PATCH").length, 1);
  });
});
