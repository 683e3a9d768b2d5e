// Twenty reloads while pulls and a chunked upload are in flight, through a pool of two replicas with the rate
// limits and upload sessions in Redis: no request is lost (every pull gets the right bytes, the upload
// completes on its replica), a reload with the same Redis settings opens no new Redis connection, and once
// the load is over no backend connection or Redis client of a replaced configuration is left open.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { execFile } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import https from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { Redis } from "ioredis";
import { gatewayConfig, type GatewayConfigInput } from "../../src/config/schema.js";
import { startTestGateway, type TestGateway } from "../helpers/gateway.js";
import { OCI_MANIFEST } from "../helpers/oci.js";
import { waitFor } from "../helpers/process.js";
import { startRedis, type RedisServer } from "../helpers/redis.js";
import { startRegistry, type Registry } from "../helpers/registry.js";
import { pushTinyImage, type TinyImage } from "../helpers/seed.js";
import { finishUpload, patchChunked, startUpload, type UploadTarget } from "../helpers/upload.js";

const execFileAsync = promisify(execFile);
const HOST = "pool.registry.test";
const RELOADS = 20;
/** Clients pulling at once, each one pull after the other. */
const PULLERS = 4;

/** Established TCP connections to `ports` on loopback (the gateway's backend connections). */
async function connectionsTo(ports: number[]): Promise<number> {
  const filter = ports.map((port) => `dport = :${port}`).join(" or ");
  const { stdout } = await execFileAsync("ss", ["-Htn", "state", "established", `( ${filter} )`]);
  return stdout.split("\n").filter((line) => line.trim()).length;
}

describe("reloads under load", () => {
  let dir: string;
  let replicas: Registry[];
  let redis: RedisServer;
  let observer: Redis;
  let image: TinyImage;
  let gateway: TestGateway;

  /** Each reload flips the idle timeout (another forwarder) and the limit (other counters); Redis stays the same. */
  const configFor = (flip: boolean): Omit<GatewayConfigInput, "listen" | "admin" | "dataDir"> => ({
    workers: 1,
    redis: { url: redis.url },
    timeouts: { idle: flip ? "31s" : "30s" },
    sites: [
      {
        name: "pool",
        hosts: [HOST],
        backends: replicas.map((replica) => replica.url),
        health: { interval: "200ms", timeout: "500ms" },
        limits: [{ name: "pulls", operations: ["pull"], rate: flip ? 10_001 : 10_000, per: "1m" }],
      },
    ],
  });
  /** Clients of the test's Redis other than the observer itself. */
  const redisClients = async () => String(await observer.client("LIST")).split("\n").filter((line) => line.trim()).length - 1;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "rg-reload-load-"));
    [redis, ...replicas] = await Promise.all([
      startRedis(),
      // Replicas of one registry: one storage, each its own upload secret (an upload must stay on its replica).
      ...["a", "b"].map((name) => startRegistry({ rootDir: join(dir, "storage"), secret: `secret-${name}-0123456789` })),
    ]);
    observer = new Redis(redis.url);
    image = await pushTinyImage(replicas[0]!.url, "load/app", "v1", "reload-under-load-seed");
    gateway = await startTestGateway(configFor(false));
  });

  after(async () => {
    await gateway?.stop();
    observer?.disconnect();
    await Promise.all([...(replicas ?? []).map((replica) => replica.stop()), redis?.stop()]);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("loses no pull and no upload, opens no Redis connection for the same settings, and leaves nothing open", async () => {
    const clientsAtStart = await redisClients();
    assert.ok(clientsAtStart >= 2, `the gateway holds its Redis connections (rate limits, upload sessions): ${clientsAtStart}`);
    const target: UploadTarget = { port: gateway.port, caPem: gateway.caPem, host: HOST };

    // A slow upload, in flight across every reload.
    const location = await startUpload(target, "load/upload");
    const upload = patchChunked(target, location, { bytes: 3 * 1024 * 1024, chunkSize: 32 * 1024, delayMs: 30 });
    let reloading = true;
    const pulls: string[] = [];
    const pullLoop = async () => {
      // Kept alive: a connection outlives the configuration its first request started on.
      const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
      while (reloading) {
        const manifest = await gateway.request(HOST, { path: `/v2/${image.repository}/manifests/${image.tag}`, headers: { accept: OCI_MANIFEST }, agent });
        assert.equal(manifest.status, 200, manifest.body.toString());
        assert.equal(manifest.headers["docker-content-digest"], image.manifestDigest);
        const blob = await gateway.request(HOST, { path: `/v2/${image.repository}/blobs/${image.layerDigest}`, agent });
        assert.equal(blob.status, 200, blob.body.toString());
        pulls.push(`sha256:${createHash("sha256").update(blob.body).digest("hex")}`);
      }
      agent.destroy();
    };
    const pullers = Array.from({ length: PULLERS }, pullLoop);

    const clientsDuring: number[] = [];
    for (let i = 1; i <= RELOADS; i++) {
      const config = gatewayConfig.parse({ listen: "127.0.0.1:0", admin: { listen: "127.0.0.1:0" }, dataDir: gateway.dataDir, ...configFor(i % 2 === 1) });
      const outcome = await gateway.reload(config);
      assert.equal(outcome.ok, true, JSON.stringify(outcome));
      clientsDuring.push(await redisClients());
    }
    reloading = false;
    await Promise.all(pullers);

    const patched = await upload;
    assert.equal(patched.status, 202, "the upload's PATCH went through every reload");
    const finished = await finishUpload(target, patched.location!, patched.digest);
    assert.equal(finished.status, 201, finished.body.toString());
    assert.equal(finished.headers["docker-content-digest"], patched.digest);

    assert.ok(pulls.length >= PULLERS * 2, `pulls completed meanwhile: ${pulls.length}`);
    assert.deepEqual(new Set(pulls), new Set([image.layerDigest]), "every pull got the layer's bytes");
    assert.deepEqual(clientsDuring, Array(RELOADS).fill(clientsAtStart), "a reload with the same Redis settings keeps its connections");

    // Once the replaced configurations' requests are done, what they held is closed.
    const ports = replicas.map((replica) => Number(new URL(replica.url).port));
    await waitFor(async () => gateway.inFlight() === 0 && gateway.upstreamSocketsInUse() === 0 && (await redisClients()) === clientsAtStart, {
      timeoutMs: 5000,
      what: "every request done and no Redis client beyond the current configuration's",
    });
    // Idle keep-alive sockets of the forwarder in service only: at most one per concurrent request per replica
    // (a forwarder per reload left open would hold ten times more).
    const open = await connectionsTo(ports);
    assert.ok(open <= 2 * (PULLERS + 2), `backend connections left open: ${open}`);
  });
});
