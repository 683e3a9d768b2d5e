// A site with `backends: [...]`, replicas of one registry. Three real distribution
// registries share one storage root (what one replica stores, every replica serves) but each signs its upload
// `_state` with its own http.secret, so an upload continued on the wrong replica would fail. Each replica's
// own access log is the oracle for where the gateway sent a request.
import assert from "node:assert/strict";
import { createHash, randomBytes, type Hash } from "node:crypto";
import type { IncomingMessage } from "node:http";
import https from "node:https";
import net from "node:net";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import { certDir, cleanupClients, hostsFile, skopeo } from "../helpers/clients.js";
import { gatewayRequest, startTestGateway, type GatewayResponse, type TestGateway } from "../helpers/gateway.js";
import { scrape, seriesKey, type Samples } from "../helpers/metrics.js";
import { buildOciImage, OCI_MANIFEST, sha256Digest, type OciImage } from "../helpers/oci.js";
import { formatRun, waitFor } from "../helpers/process.js";
import { readyz as readyzAt, type ReadyAnswer } from "../helpers/readiness.js";
import { startRedis, type RedisServer } from "../helpers/redis.js";
import { accessLog, startRegistry, type AccessLogLine, type Registry } from "../helpers/registry.js";
import { finishUpload, type UploadTarget } from "../helpers/upload.js";

const HOST = "replicas.registry.test";
const SITE = "replicas";
const REPO = "pool/app";
const MiB = 1024 * 1024;
const INTERVAL_MS = 200;
const HEALTH = { interval: `${INTERVAL_MS}ms`, timeout: "500ms", unhealthyThreshold: 2, healthyThreshold: 1 };

// ---------------------------------------------------------------- requests and uploads

interface Gw {
  port: number;
  caPem: string;
}

function request(gateway: Gw, options: Parameters<typeof gatewayRequest>[3]): Promise<GatewayResponse> {
  return gatewayRequest(gateway.port, gateway.caPem, HOST, options);
}

function target(gateway: Gw): UploadTarget {
  return { port: gateway.port, caPem: gateway.caPem, host: HOST };
}

/** An upload in progress: where to send its next request, and the hash of what it was sent so far. */
interface Upload {
  label: string;
  uuid: string;
  location: string;
  hash: Hash;
  sent: number;
}

const UUID_IN_LOCATION = /\/blobs\/uploads\/([^/?]+)/;

/** POST through `gateway` with a user agent naming the upload, so the replica that answered can be found in its log. */
async function startLabelledUpload(gateway: Gw, label: string): Promise<Upload> {
  const res = await request(gateway, {
    method: "POST",
    path: `/v2/${REPO}/blobs/uploads/`,
    headers: { "content-length": "0", "user-agent": label },
  });
  assert.equal(res.status, 202, `${label}: POST answered ${res.status} ${res.body.toString()}`);
  const location = res.headers.location;
  assert.equal(typeof location, "string");
  const uuid = UUID_IN_LOCATION.exec(location!)?.[1];
  assert.ok(uuid, `no upload UUID in ${location}`);
  return { label, uuid, location: location!, hash: createHash("sha256"), sent: 0 };
}

/**
 * One chunked PATCH (no Content-Length, no Content-Range: appended) of `bytes` fresh bytes to the upload's
 * current location through `gateway`. On 202 the upload moves on to the new Location; the body is returned
 * for error answers.
 */
function patchPart(gateway: Gw, upload: Upload, bytes: number, chunkSize = MiB): Promise<{ status: number; body: string }> {
  const url = new URL(upload.location);
  const block = randomBytes(Math.min(chunkSize, bytes));
  let written = 0;
  return new Promise<{ status: number; body: string }>((resolve, reject) => {
    const req = https.request({
      host: "127.0.0.1",
      port: gateway.port,
      method: "PATCH",
      path: url.pathname + url.search,
      servername: HOST,
      ca: gateway.caPem,
      agent: false,
      headers: { host: `${HOST}:${gateway.port}`, "content-type": "application/octet-stream", "transfer-encoding": "chunked", "user-agent": upload.label },
    });
    // A PATCH answered early (404) may be cut while its body is still going out: the answer is what counts.
    let answered = false;
    req.on("error", (err) => (answered ? undefined : reject(err)));
    req.on("response", (res: IncomingMessage) => {
      answered = true;
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("error", reject);
      res.on("end", () => {
        const status = res.statusCode ?? 0;
        if (status === 202) {
          if (typeof res.headers.location !== "string") return reject(new Error(`${upload.label}: 202 without Location`));
          upload.location = res.headers.location;
        }
        resolve({ status, body: Buffer.concat(chunks).toString() });
      });
    });
    const writeMore = (): void => {
      while (written < bytes && !answered) {
        // A counter in every block keeps each blob unique (no deduplication by the registry); a copy, so a
        // block still queued is never changed under the writer.
        block.writeUInt32BE(upload.sent + written, 0);
        const piece = Buffer.from(block.subarray(0, Math.min(block.length, bytes - written)));
        upload.hash.update(piece);
        written += piece.length;
        if (!req.write(piece)) {
          req.once("drain", writeMore);
          return;
        }
      }
      req.end();
    };
    writeMore();
  }).then((result) => {
    upload.sent += written;
    return result;
  });
}

/** The digest of everything sent so far (the hash is copied, so more may be sent afterwards). */
function digestOf(upload: Upload): string {
  return `sha256:${upload.hash.copy().digest("hex")}`;
}

/** PUT ?digest= through `gateway`, then HEAD the blob: 201, and the stored blob has the right digest and length. */
async function finishAndCheck(gateway: Gw, upload: Upload): Promise<void> {
  const digest = digestOf(upload);
  const done = await finishUpload(target(gateway), upload.location, digest);
  assert.equal(done.status, 201, `${upload.label}: PUT answered ${done.status} ${done.body.toString()}`);
  assert.equal(done.headers["docker-content-digest"], digest);
  const head = await request(gateway, { method: "HEAD", path: `/v2/${REPO}/blobs/${digest}` });
  assert.equal(head.status, 200, `${upload.label}: HEAD of the finished blob answered ${head.status}`);
  assert.equal(head.headers["docker-content-digest"], digest);
  assert.equal(head.headers["content-length"], String(upload.sent));
}

// ---------------------------------------------------------------- replica access logs

/** Lines of `registry`'s access log written for upload `uuid` (its PATCH, PUT, GET, DELETE). */
function uploadLines(registry: Registry, uuid: string): AccessLogLine[] {
  return accessLog(registry).filter((line) => line.uri.includes(`/blobs/uploads/${uuid}`));
}

/** The replica whose log has the POST sent with user agent `label` (waits for the line: logs trail answers). */
async function replicaThatStarted(replicas: readonly Registry[], label: string): Promise<Registry> {
  return waitFor(
    () => {
      const holders = replicas.filter((r) => accessLog(r).some((line) => line.method === "POST" && line.userAgent === label));
      assert.ok(holders.length <= 1, `${label}: POSTed to ${holders.length} replicas`);
      return holders[0];
    },
    { timeoutMs: 5000, what: `the POST of ${label} in a replica's access log` },
  );
}

/**
 * Every request of the upload is in the log of the replica that started it and in no other: waits until
 * `expected` lines (method + status, in order) are there, then checks the other replicas have none.
 */
async function assertAllOn(replicas: readonly Registry[], holder: Registry, upload: Upload, expected: string[]): Promise<void> {
  const seen = () => uploadLines(holder, upload.uuid).map((line) => `${line.method} ${line.status}`);
  await waitFor(() => seen().length >= expected.length, { timeoutMs: 5000, what: `${expected.length} requests of ${upload.label} on ${holder.url}` }).catch(() => {});
  for (const other of replicas) {
    if (other === holder) continue;
    assert.deepEqual(
      uploadLines(other, upload.uuid).map((line) => line.line),
      [],
      `${upload.label} started on ${holder.url}, but ${other.url} received some of its requests`,
    );
  }
  assert.deepEqual(seen(), expected, `${upload.label}: requests on ${holder.url}`);
}

// ---------------------------------------------------------------- pulls

interface PullStats {
  ok: number;
  failures: string[];
  /** Pulls that started after `mark` was set (e.g. after a replica was killed) and succeeded. */
  okAfterMark: number;
  mark: boolean;
}

/** A manifest GET and a GET of every blob through `gateway`, each body checked against its digest. */
async function pullOnce(gateway: Gw, image: OciImage, userAgent: string): Promise<void> {
  const manifest = await request(gateway, { path: `/v2/${REPO}/manifests/${image.tag}`, headers: { accept: OCI_MANIFEST, "user-agent": userAgent } });
  if (manifest.status !== 200) throw new Error(`GET manifest → ${manifest.status} ${manifest.body.toString()}`);
  if (sha256Digest(manifest.body) !== image.manifestDigest) throw new Error("GET manifest → wrong content");
  for (const digest of [image.configDigest, ...image.layerDigests]) {
    const blob = await request(gateway, { path: `/v2/${REPO}/blobs/${digest}`, headers: { "user-agent": userAgent } });
    if (blob.status !== 200) throw new Error(`GET blob ${digest} → ${blob.status} ${blob.body.toString()}`);
    if (sha256Digest(blob.body) !== digest) throw new Error(`GET blob ${digest} → wrong content (${blob.body.length} bytes)`);
  }
}

/** `workers` loops of pullOnce (pausing `pauseMs` between pulls) until stop() is called; every failure is recorded, none thrown. */
function pullLoop(gateway: Gw, image: OciImage, workers: number, userAgent: string, pauseMs = 0) {
  const stats: PullStats = { ok: 0, failures: [], okAfterMark: 0, mark: false };
  let running = true;
  const loops = Array.from({ length: workers }, async () => {
    while (running) {
      const afterMark = stats.mark;
      try {
        await pullOnce(gateway, image, userAgent);
        stats.ok++;
        if (afterMark) stats.okAfterMark++;
      } catch (err) {
        stats.failures.push(`${new Date().toISOString()} ${(err as Error).message}`);
      }
      if (pauseMs > 0) await sleep(pauseMs);
    }
  });
  return {
    stats,
    async stop(): Promise<PullStats> {
      running = false;
      await Promise.all(loops);
      return stats;
    },
  };
}

// ---------------------------------------------------------------- admin

function readyz(gateway: TestGateway): Promise<ReadyAnswer> {
  return readyzAt(gateway.admin.port);
}

function backendUp(samples: Samples, backend: string): number | undefined {
  return samples.get(seriesKey("registry_gateway_backend_up", { pool: SITE, backend }));
}

// ---------------------------------------------------------------- the tests

describe("replicas of one registry behind one site (backends: [...])", () => {
  let storage: string;
  let workDir: string;
  let replicas: Registry[];
  let redis: RedisServer;
  /** Upload affinity in memory. */
  let gateway: TestGateway;
  /** Two gateways sharing upload affinity through Redis. */
  let gatewayA: TestGateway;
  let gatewayB: TestGateway;
  let image: OciImage;
  let secrets: string[];

  const site = () => ({ name: SITE, hosts: [HOST], backends: replicas.map((r) => r.url), health: HEALTH });

  before(async () => {
    [storage, workDir] = await Promise.all([mkdtemp(join(tmpdir(), "rg-pool-storage-")), mkdtemp(join(tmpdir(), "rg-pools-"))]);
    secrets = [0, 1, 2].map(() => randomBytes(16).toString("hex"));
    [replicas, redis, image] = await Promise.all([
      Promise.all(secrets.map((secret) => startRegistry({ rootDir: storage, secret, accessLog: true }))),
      startRedis(),
      buildOciImage(join(workDir, "image"), { layers: 2, layerSize: 256 * 1024, tag: "v1" }),
    ]);
    [gateway, gatewayA, gatewayB] = await Promise.all([
      startTestGateway({ sites: [site()] }),
      startTestGateway({ sites: [site()], redis: { url: redis.url } }),
      startTestGateway({ sites: [site()], redis: { url: redis.url } }),
    ]);
    // Pushed through the pool by a real client: its uploads already depend on upload affinity.
    const [certs, hosts] = await Promise.all([certDir(gateway.caPem), hostsFile(workDir, { [HOST]: "127.0.0.1" })]);
    const push = ["copy", "--dest-cert-dir", certs, image.ociRef, `docker://${HOST}:${gateway.port}/${REPO}:v1`];
    const pushed = await skopeo(push, { hosts, timeoutMs: 60_000 });
    assert.equal(pushed.code, 0, formatRun("skopeo push", push, pushed));
  });

  after(async () => {
    await Promise.all([gateway?.stop(), gatewayA?.stop(), gatewayB?.stop()]);
    await Promise.all([...(replicas ?? []).map((r) => r.stop()), redis?.stop()]);
    await cleanupClients();
    await Promise.all([storage, workDir].filter(Boolean).map((dir) => rm(dir, { recursive: true, force: true })));
  });

  it("spreads manifest GETs over every replica", async () => {
    const N = 30;
    const agent = "pools-spread";
    for (let i = 0; i < N; i++) {
      const res = await request(gateway, { path: `/v2/${REPO}/manifests/v1`, headers: { accept: OCI_MANIFEST, "user-agent": agent } });
      assert.equal(res.status, 200);
      assert.equal(sha256Digest(res.body), image.manifestDigest);
    }
    const served = () => replicas.map((r) => accessLog(r).filter((line) => line.userAgent === agent && line.method === "GET").length);
    await waitFor(() => served().reduce((a, b) => a + b, 0) === N, { timeoutMs: 5000, what: `${N} GETs in the replicas' logs` });
    const counts = served();
    // Sequential requests find every replica idle: ties go round-robin, so 10 each; at least a fifth each.
    for (const [i, count] of counts.entries()) assert.ok(count >= N / 5, `replica ${replicas[i]!.url} served ${count} of ${N} (${counts.join("/")})`);
  });

  it("keeps every PATCH and the PUT of a 256 MiB upload on the replica that answered its POST, while other traffic flows", async () => {
    // Paced: traffic alongside, not a CPU race the 256 MiB (sent through TLS twice over) would lose.
    const pulls = pullLoop(gateway, image, 2, "pools-busy", 50);
    const big = await startLabelledUpload(gateway, "pools-big");
    // Small uploads alongside the big one, each on the replica that answered its POST.
    const small = await Promise.all([1, 2, 3].map((i) => startLabelledUpload(gateway, `pools-small-${i}`)));
    const parts = 4;
    const smallWork = (async () => {
      for (let round = 0; round < 3; round++) {
        for (const upload of small) assert.equal((await patchPart(gateway, upload, 512 * 1024)).status, 202);
      }
      for (const upload of small) await finishAndCheck(gateway, upload);
    })();
    for (let part = 0; part < parts; part++) {
      const patched = await patchPart(gateway, big, (256 / parts) * MiB);
      assert.equal(patched.status, 202, `PATCH ${part + 1}/${parts}: ${patched.body}`);
    }
    assert.equal(big.sent, 256 * MiB);
    await finishAndCheck(gateway, big);
    await smallWork;
    const stats = await pulls.stop();
    assert.deepEqual(stats.failures, [], `${stats.failures.length} pulls failed alongside the upload`);
    assert.ok(stats.ok > 0, "no pull completed alongside the upload");

    const holder = await replicaThatStarted(replicas, big.label);
    await assertAllOn(replicas, holder, big, [...Array(parts).fill("PATCH 202"), "PUT 201"]);
    // Least outstanding: while the big PATCHes kept its replica busy, the pulls went mostly to the other two.
    const pulled = replicas.map((r) => accessLog(r).filter((line) => line.userAgent === "pools-busy").length);
    const onHolder = pulled[replicas.indexOf(holder)]!;
    const elsewhere = pulled.filter((_, i) => replicas[i] !== holder);
    assert.ok(onHolder < Math.min(...elsewhere) / 2, `pull requests per replica ${pulled.join("/")}, ${holder.url} (busy with the upload) took ${onHolder}`);
    for (const upload of small) {
      await assertAllOn(replicas, await replicaThatStarted(replicas, upload.label), upload, [...Array(3).fill("PATCH 202"), "PUT 201"]);
    }
  });

  it("continues an upload started through gateway A through gateway B (affinity in Redis)", async () => {
    const uploads = await Promise.all([1, 2, 3, 4, 5, 6].map((i) => startLabelledUpload(gatewayA, `pools-shared-${i}`)));
    await Promise.all(
      uploads.map(async (upload) => {
        // A → B: only Redis can tell B where the upload lives; then back through A, then B finishes it.
        assert.equal((await patchPart(gatewayB, upload, 2 * MiB)).status, 202, upload.label);
        assert.equal((await patchPart(gatewayA, upload, MiB)).status, 202, upload.label);
        assert.equal((await patchPart(gatewayB, upload, MiB)).status, 202, upload.label);
        await finishAndCheck(gatewayB, upload);
      }),
    );
    const holders = new Set<Registry>();
    for (const upload of uploads) {
      const holder = await replicaThatStarted(replicas, upload.label);
      holders.add(holder);
      await assertAllOn(replicas, holder, upload, ["PATCH 202", "PATCH 202", "PATCH 202", "PUT 201"]);
    }
    // Otherwise the test proves little: a gateway B guessing would have had to guess right every time.
    assert.ok(holders.size >= 2, `all ${uploads.length} uploads started on one replica`);
  });

  it("survives a replica killed mid-traffic: pulls keep succeeding, its uploads are BLOB_UPLOAD_UNKNOWN, the others complete", async () => {
    const uploads = await Promise.all([1, 2, 3, 4, 5, 6].map((i) => startLabelledUpload(gateway, `pools-kill-${i}`)));
    for (const upload of uploads) assert.equal((await patchPart(gateway, upload, MiB)).status, 202, upload.label);
    const holderOf = new Map<Upload, Registry>();
    for (const upload of uploads) holderOf.set(upload, await replicaThatStarted(replicas, upload.label));
    const victim = holderOf.get(uploads[0]!)!;
    const onVictim = uploads.filter((u) => holderOf.get(u) === victim);
    const elsewhere = uploads.filter((u) => holderOf.get(u) !== victim);
    assert.ok(elsewhere.length > 0, "every upload started on one replica");

    const pulls = pullLoop(gateway, image, 4, "pools-kill-pull");
    await waitFor(() => pulls.stats.ok >= 10 || pulls.stats.failures.length > 0, { timeoutMs: 10_000, what: "pulls before the kill" });
    // SIGKILL: no graceful shutdown, connections in use are cut.
    process.kill(victim.process.pid, "SIGKILL");
    const killedAt = new Date().toISOString();
    await victim.process.exited();
    pulls.stats.mark = true;
    // Pulls go on for several health-check intervals after the kill, and for a few pulls at least (a busy
    // machine may manage few in that time).
    await sleep(5 * INTERVAL_MS);
    const AFTER_KILL = 8;
    await waitFor(() => pulls.stats.okAfterMark >= AFTER_KILL, { timeoutMs: 15_000, what: `${AFTER_KILL} pulls after the kill` }).catch(() => {});
    const stats = await pulls.stop();

    for (const upload of onVictim) {
      const patched = await patchPart(gateway, upload, MiB);
      assert.equal(patched.status, 404, `${upload.label} (on the killed replica): PATCH answered ${patched.status} ${patched.body}`);
      assert.match(patched.body, /"code":"BLOB_UPLOAD_UNKNOWN"/);
      // Answered by the gateway: no other replica was asked (one would answer 404 BLOB_UPLOAD_INVALID: another secret).
      for (const other of replicas.filter((r) => r !== victim)) assert.deepEqual(uploadLines(other, upload.uuid).map((l) => l.line), [], upload.label);
    }
    for (const upload of elsewhere) {
      const patched = await patchPart(gateway, upload, 3 * MiB);
      assert.equal(patched.status, 202, `${upload.label}: ${patched.body}`);
      await finishAndCheck(gateway, upload);
    }
    for (const upload of elsewhere) {
      const holder = holderOf.get(upload)!;
      await assertAllOn(replicas, holder, upload, ["PATCH 202", "PATCH 202", "PUT 201"]);
    }

    const ready = await readyz(gateway);
    assert.equal(ready.status, 200, JSON.stringify(ready.body));
    assert.equal(ready.body.status, "ready");
    for (const replica of replicas) {
      const member = ready.body.backends.find((b) => b.pool === SITE && b.backend === replica.url);
      assert.ok(member, `${replica.url} missing from /readyz: ${JSON.stringify(ready.body.backends)}`);
      const up = replica !== victim;
      assert.equal(member.healthy, up, `${replica.url} healthy: ${JSON.stringify(member)}`);
      assert.equal(member.reachable, up, `${replica.url} reachable: ${JSON.stringify(member)}`);
    }
    const samples = await scrape(gateway.admin.port);
    for (const replica of replicas) assert.equal(backendUp(samples, replica.url), replica === victim ? 0 : 1, `backend_up of ${replica.url}`);

    // Last, so a failed pull does not hide the checks above.
    assert.deepEqual(
      stats.failures,
      [],
      `${stats.failures.length} of ${stats.ok + stats.failures.length} pulls failed around the kill of ${victim.url} at ${killedAt}; ` +
        `the gateway's log of them: ${JSON.stringify(gateway.logs.filter((l) => l.msg === "request" && Number(l.status) >= 500))}`,
    );
    assert.ok(stats.okAfterMark >= AFTER_KILL, `only ${stats.okAfterMark} pulls completed after the kill`);
  });

  it("brings the killed replica back once it answers again on its port", async () => {
    const victimIndex = replicas.findIndex((r) => r.process.exitStatus !== undefined);
    assert.ok(victimIndex >= 0, "no replica was killed (the previous test did not run?)");
    const victim = replicas[victimIndex]!;
    const restarted = await startRegistry({ rootDir: storage, secret: secrets[victimIndex], port: victim.port, accessLog: true });
    replicas[victimIndex] = restarted;
    const upAt = performance.now();
    await waitFor(
      async () => {
        const ready = await readyz(gateway);
        const member = ready.body.backends.find((b) => b.backend === restarted.url);
        return ready.status === 200 && member?.healthy === true && member.reachable === true && backendUp(await scrape(gateway.admin.port), restarted.url) === 1;
      },
      { timeoutMs: 5000, intervalMs: 25, what: `${restarted.url} healthy again in /readyz and /metrics` },
    );
    const tookMs = performance.now() - upAt;
    // healthyThreshold 1: the next check passes, one interval later at most (plus slack for a busy machine).
    assert.ok(tookMs <= 5 * INTERVAL_MS, `healthy again only after ${Math.round(tookMs)} ms`);

    // And back in rotation: sequential pulls reach it again.
    const agent = "pools-after-restart";
    for (let i = 0; i < 9; i++) {
      const res = await request(gateway, { path: `/v2/${REPO}/manifests/v1`, headers: { accept: OCI_MANIFEST, "user-agent": agent } });
      assert.equal(res.status, 200);
    }
    await waitFor(() => accessLog(restarted).some((line) => line.userAgent === agent), { timeoutMs: 5000, what: "a pull on the restarted replica" });
  });

  it("retries a GET on another replica when its replica cuts the connection before answering (a replica dying mid-request)", async () => {
    // Passes health checks (GET /v2/ → 200) but resets every other request once it has read it: what the
    // gateway sees of a pull in flight on a replica killed at that moment (the test above, now and then).
    const dying = net.createServer((socket) => {
      let head = "";
      socket.on("error", () => {});
      socket.on("data", (chunk: Buffer) => {
        head += chunk.toString("latin1");
        if (!head.includes("\r\n\r\n")) return;
        if (head.startsWith("GET /v2/ ")) socket.end("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}");
        else socket.resetAndDestroy();
      });
    });
    await new Promise<void>((resolve) => dying.listen(0, "127.0.0.1", resolve));
    const dyingUrl = `http://127.0.0.1:${(dying.address() as net.AddressInfo).port}`;
    const live = replicas.find((r) => r.process.exitStatus === undefined)!;
    const gw = await startTestGateway({ sites: [{ name: "dying", hosts: [HOST], backends: [dyingUrl, live.url], health: HEALTH }] });
    try {
      const statuses: number[] = [];
      for (let i = 0; i < 6; i++) {
        const res = await request(gw, { path: `/v2/${REPO}/manifests/v1`, headers: { accept: OCI_MANIFEST } });
        statuses.push(res.status);
      }
      await sleep(300); // the gateway's access log is written in batches
      assert.deepEqual(
        statuses,
        Array(6).fill(200),
        `GETs failed instead of going to ${live.url}; the gateway's log: ${JSON.stringify(gw.logs.filter((l) => l.msg === "request" && Number(l.status) >= 500))}`,
      );
    } finally {
      await gw.stop();
      await new Promise((resolve) => dying.close(resolve));
    }
  });
});
