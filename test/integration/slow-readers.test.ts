// Runs alone: measures the gateway's memory and a pull's time under a flood.
// Clients that ask for a download and then read nothing (a slow-read flood) cost the gateway and its backend
// bounded memory and time: timeouts.send closes a response whose client takes none of it, with its backend
// connection; relayed pulls read into buffers from one bounded pool; limits.downloadsPerClient caps the
// downloads one address has in flight. The flood runs against the gateway as users run it (its own process),
// so its memory is the process's own; the focused cases run it in-process.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { startGatewayProcess, type GatewayProcess } from "../helpers/cli.js";
import { gatewayRequest, startTestGateway, type TestGateway } from "../helpers/gateway.js";
import { run, waitFor } from "../helpers/process.js";
import { startRegistry, type Registry } from "../helpers/registry.js";
import { pushBlob } from "../helpers/seed.js";
import { drain, rssMiB, sampleRss, stallDownloads, type StalledClient } from "../helpers/slow-readers.js";

const HUB = "hub.registry.test";
const MiB = 1024 * 1024;
const BLOB_BYTES = 16 * MiB;
const FLOOD_ADDRESSES = ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"];

/** Established TCP connections to `port` (dport) or from it (sport), as `ss` lists them: "local peer" per line. */
async function established(direction: "dport" | "sport", port: number): Promise<string[]> {
  const result = await run("ss", ["-Htn", "state", "established", `( ${direction} = :${port} )`]);
  assert.equal(result.code, 0, result.stderr);
  return result.stdout.split("\n").filter((line) => line.trim() !== "");
}

/**
 * Bytes per second of one whole pull through the gateway, from 127.0.0.1, by curl: a process of its own, so
 * the flood's sockets in this one never keep it from reading (a pull not read for timeouts.send is cut).
 */
async function pullSpeed(port: number, caFile: string, path: string): Promise<number> {
  const result = await run("curl", [
    "-sS", "--http1.1", "-o", "/dev/null", "-w", "%{http_code} %{size_download} %{speed_download}",
    "--cacert", caFile, "--resolve", `${HUB}:${port}:127.0.0.1`, `https://${HUB}:${port}${path}`,
  ], { timeoutMs: 60_000 });
  const [status, size, speed] = result.stdout.trim().split(" ").map(Number);
  assert.equal(result.code, 0, result.stderr);
  assert.equal(status, 200);
  assert.equal(size, BLOB_BYTES);
  return speed!;
}

async function bestPullSpeed(port: number, caFile: string, path: string): Promise<number> {
  let best = 0;
  for (let i = 0; i < 5; i++) best = Math.max(best, await pullSpeed(port, caFile, path));
  return best;
}

let registry: Registry;
let blobPath: string;

before(async () => {
  registry = await startRegistry();
  blobPath = `/v2/hub/big/blobs/${await pushBlob(registry.url, "hub/big", randomBytes(BLOB_BYTES))}`;
});

after(async () => {
  await registry?.stop();
});

describe("a slow-read flood: 1000 stalled downloads from 4 addresses (gateway process)", () => {
  const SEND_MS = 3000;
  const PER_CLIENT = 32;
  let workDir: string;
  let gateway: GatewayProcess;
  let ca: string;

  before(async () => {
    workDir = await mkdtemp(join(tmpdir(), "rg-slow-readers-"));
    const configFile = join(workDir, "gateway.yaml");
    await writeFile(
      configFile,
      [
        "listen: 127.0.0.1:0",
        'admin: { listen: "127.0.0.1:0" }',
        `dataDir: ${JSON.stringify(join(workDir, "data"))}`,
        "workers: 1",
        "log: { access: false }",
        `timeouts: { send: ${SEND_MS / 1000}s }`,
        // The defaults, stated: the flood is judged against them (256 connections per address take 250 each).
        `limits: { maxConnectionsPerIp: 256, downloadsPerClient: ${PER_CLIENT} }`,
        "sites:",
        `  - hosts: [${HUB}]`,
        `    backend: ${registry.url}`,
        "",
      ].join("\n"),
    );
    gateway = await startGatewayProcess(configFile);
    ca = await readFile(gateway.caFile!, "utf8");
  });

  after(async () => {
    await gateway?.process.stop();
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  it("bounds the gateway's memory and backend connections, closes every stalled download at timeouts.send, and leaves pulls their speed", async () => {
    // Quiet: warm (JIT, the relay's buffers, a pooled backend connection), then the reference speed.
    await pullSpeed(gateway.httpsPort, gateway.caFile!, blobPath);
    // Best of five, here and during the flood: the machine's other load only ever slows a pull down.
    const quiet = await bestPullSpeed(gateway.httpsPort, gateway.caFile!, blobPath);
    const rssBefore = await rssMiB(gateway.process.pid);
    const rss = sampleRss(gateway.process.pid);
    // Idle keep-alive connections already there (the gateway's pool, the seeding client's).
    const backendBefore = (await established("dport", registry.port)).length;
    // Every 200 ms: the gateway's connections to the registry, and which flood connections it still holds
    // (by the client's address:port, as the gateway's side lists its peer) with what its kernel still has to
    // send (Send-Q): while that changes, the gateway is still writing, i.e. the download still moves.
    let backendNow = 0;
    let backendPeak = 0;
    const lastSeen = new Map<string, number>();
    const sendQueue = new Map<string, string>();
    const lastMoved = new Map<string, number>();
    /** The longest time between two samples: how late a sample may see a change. */
    let sampleGap = 0;
    let sampling = true;
    /** Set while the judged pull runs: the quiet pulls ran without this process listing sockets either. */
    let samplerPaused = false;
    let lastSample: number | undefined;
    const sampler = (async () => {
      while (sampling) {
        if (samplerPaused) {
          await new Promise((resolve) => setTimeout(resolve, 50));
          continue;
        }
        const [backend, front] = await Promise.all([established("dport", registry.port), established("sport", gateway.httpsPort)]);
        const now = performance.now();
        if (lastSample !== undefined) sampleGap = Math.max(sampleGap, now - lastSample);
        lastSample = now;
        backendNow = backend.length;
        backendPeak = Math.max(backendPeak, backendNow);
        for (const line of front) {
          const fields = line.trim().split(/\s+/);
          const peer = fields.at(-1)!;
          lastSeen.set(peer, now);
          if (sendQueue.get(peer) !== fields[1]) lastMoved.set(peer, now);
          sendQueue.set(peer, fields[1]!);
        }
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    })();

    const floodStarted = performance.now();
    let floodOver = false;
    const flood = stallDownloads({ port: gateway.httpsPort, servername: HUB, ca, path: blobPath, addresses: FLOOD_ADDRESSES, count: 1000 }).finally(() => (floodOver = true));
    // A normal pull while the flood is still coming (handshakes, and each new download filling the kernel's
    // buffers: megabytes of TLS each, on the same cores): reported, not judged.
    await waitFor(() => floodOver || backendNow >= (PER_CLIENT * FLOOD_ADDRESSES.length) / 2, { timeoutMs: 60_000, intervalMs: 50, what: "the flood to reach the backend" });
    const opening = await pullSpeed(gateway.httpsPort, gateway.caFile!, blobPath);
    const clients = await flood;
    const floodSeconds = (performance.now() - floodStarted) / 1000;
    // A normal pull while the gateway holds the stalled downloads: judged.
    const heldDuringPull = backendNow;
    samplerPaused = true;
    const loaded = await bestPullSpeed(gateway.httpsPort, gateway.caFile!, blobPath);
    samplerPaused = false;
    lastSample = undefined;
    const stalled = clients.filter((c) => c.status === 200);
    const refused = clients.filter((c) => c.status === 429);
    for (const c of refused) c.socket.destroy();

    // Every stalled download closed by the gateway within timeouts.send + 5 s of its answer.
    const key = (c: StalledClient) => `${c.localAddress}:${c.localPort}`;
    const held = async () => {
      const open = new Set((await established("sport", gateway.httpsPort)).map((line) => line.trim().split(/\s+/).at(-1)!));
      return stalled.filter((c) => open.has(key(c))).length;
    };
    const lastAnswer = Math.max(...stalled.map((c) => c.answeredAt));
    await waitFor(async () => (await held()) === 0, {
      timeoutMs: Math.max(1000, lastAnswer + SEND_MS + 5000 - performance.now()),
      intervalMs: 200,
      what: "every stalled download's connection to be closed by the gateway",
    }).catch(async (err) => assert.fail(`${(err as Error).message}: ${await held()} of ${stalled.length} still established`));
    sampling = false;
    await sampler;
    const rssPeak = await rss.stop();
    // Seen established last (200 ms before it was not), relative to its answer and to its last move.
    const heldFor = stalled.map((c) => (lastSeen.get(key(c)) ?? c.answeredAt) - c.answeredAt);
    const heldStill = stalled.map((c) => (lastSeen.get(key(c)) ?? c.answeredAt) - (lastMoved.get(key(c)) ?? c.answeredAt));

    // Cut, not completed: what a client gets once it reads again is less than the blob, and then the close. A
    // sample (each has megabytes waiting in kernel buffers); the rest are let go.
    const sample = stalled.filter((_, i) => i % Math.ceil(stalled.length / 16) === 0);
    for (const c of stalled) if (!sample.includes(c)) c.socket.destroy();
    const drained = await Promise.all(sample.map((c) => drain(c, 20_000)));
    const growth = rssPeak - rssBefore;
    console.log(
      `  flood: ${clients.length} connections answered in ${floodSeconds.toFixed(1)} s: ${JSON.stringify(countBy(clients))}; ` +
        `gateway RSS ${rssBefore.toFixed(0)} → peak ${rssPeak.toFixed(0)} MiB (+${growth.toFixed(1)}); backend connections at most ${backendPeak} (${backendBefore} before); ` +
        `stalled downloads held at most ${(Math.max(...heldFor) / 1000).toFixed(1)} s after their answer, ${(Math.max(...heldStill) / 1000).toFixed(1)} s after they last moved (samples ${sampleGap.toFixed(0)} ms apart at most); ` +
        `pull ${(quiet / 1e6).toFixed(0)} MB/s quiet, ${(opening / 1e6).toFixed(0)} MB/s while the flood opened, ${(loaded / 1e6).toFixed(0)} MB/s with ${heldDuringPull} backend connections held`,
    );
    // Every connection answered (a download, or the cap's refusal with Retry-After), bar a few handshakes a
    // loaded machine may not finish within timeouts.handshake.
    assert.ok(stalled.length + refused.length >= clients.length * 0.98, `statuses: ${JSON.stringify(countBy(clients))}`);
    for (const c of refused) assert.match(c.head, /\r\nretry-after: \d+/i);
    assert.ok(stalled.length >= PER_CLIENT, `only ${stalled.length} downloads admitted`);
    // timeouts.send counts from a download's last progress: the kernel takes megabytes from a client that reads
    // nothing, and on a loaded machine the gateway may still be encrypting them seconds after the answer.
    // Closed within 1.25 × the timeout of its last move, give or take two samples.
    const bound = SEND_MS * 1.25 + 2 * sampleGap;
    const stillTooLong = heldStill.filter((ms) => ms > bound).length;
    assert.equal(stillTooLong, 0, `${stillTooLong} stalled downloads were held more than ${bound.toFixed(0)} ms after they last moved`);
    assert.equal(drained.filter((d) => d.open).length, 0, "stalled downloads still open once read again");
    const completed = drained.filter((d) => d.bytes >= BLOB_BYTES).length;
    assert.equal(completed, 0, `${completed} stalled downloads were delivered whole`);
    assert.ok(growth <= 64, `gateway RSS grew ${growth.toFixed(1)} MiB (${rssBefore.toFixed(0)} → ${rssPeak.toFixed(0)}): more than 64`);
    // At most the cap's downloads at once (more over the whole flood: the send timeout frees slots), beyond
    // the connections there before and the normal pull's.
    assert.ok(backendPeak <= backendBefore + PER_CLIENT * FLOOD_ADDRESSES.length + 1, `${backendPeak} backend connections at once (${backendBefore} before the flood)`);
    assert.ok(heldDuringPull >= PER_CLIENT, `only ${heldDuringPull} downloads were held while the normal pull ran`);
    assert.ok(loaded >= quiet * 0.5, `a pull during the flood ran at ${(loaded / 1e6).toFixed(0)} MB/s, under half its quiet ${(quiet / 1e6).toFixed(0)} MB/s`);
    // The gateway still serves.
    assert.equal((await gatewayRequest(gateway.httpsPort, ca, HUB, { path: "/v2/" })).status, 200);
  });
});

function countBy(clients: StalledClient[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const c of clients) counts[c.status] = (counts[c.status] ?? 0) + 1;
  return counts;
}

describe("timeouts.send and limits.downloadsPerClient (in-process)", () => {
  const SEND_MS = 1000;
  const gateways: TestGateway[] = [];
  const start = async (backend: string, extra: Record<string, unknown> = {}) => {
    const gateway = await startTestGateway({ sites: [{ hosts: [HUB], backend }], timeouts: { send: "1s", idle: "1m" }, log: { level: "warn" }, ...extra });
    gateways.push(gateway);
    return gateway;
  };
  const idle = (gateway: TestGateway) => gateway.inFlight() === 0 && gateway.upstreamSocketsInUse() === 0;
  const stallOne = async (gateway: TestGateway, path: string, localAddress = "127.0.0.1") =>
    (await stallDownloads({ port: gateway.port, servername: HUB, ca: gateway.caPem, path, addresses: [localAddress], count: 1 }))[0]!;

  after(async () => {
    for (const gateway of gateways) await gateway.stop();
  });

  /** Asserts the stalled `client` is let go at the send timeout (not before, nor at the idle timeout), backend included. */
  async function cutAtSendTimeout(gateway: TestGateway, client: StalledClient, what: string): Promise<number> {
    assert.equal(client.status, 200, client.head);
    await waitFor(() => gateway.upstreamSocketsInUse() === 1, { timeoutMs: 2000, intervalMs: 10, what: `${what}: the download to reach the backend` });
    await waitFor(() => idle(gateway), { timeoutMs: SEND_MS * 1.25 + 5000, intervalMs: 20, what: `${what}: the stalled download to be released` });
    const releasedAfter = performance.now() - client.answeredAt;
    assert.ok(releasedAfter >= SEND_MS * 0.8, `${what}: released ${releasedAfter.toFixed(0)} ms after the answer: before the send timeout`);
    const { open, bytes } = await drain(client, 5000);
    assert.equal(open, false, `${what}: the client's connection is still open`);
    assert.ok(bytes < BLOB_BYTES, `${what}: the stalled client got the whole body once it read again`);
    return releasedAfter;
  }

  it("closes a relayed blob download whose client reads nothing, and its backend connection", async () => {
    const gateway = await start(registry.url);
    const client = await stallOne(gateway, blobPath);
    const releasedAfter = await cutAtSendTimeout(gateway, client, "relayed download");
    // Destroyed, not parked in the keep-alive pool: no connection to the registry is left.
    await waitFor(async () => (await established("dport", registry.port)).length === 0, { timeoutMs: 1000, intervalMs: 20, what: "no connection to the registry" });
    console.log(`  relayed download released ${releasedAfter.toFixed(0)} ms after its answer (send timeout ${SEND_MS} ms)`);
  });

  it("closes a download on the general path (a chunked answer; and a catalog through http-proxy) whose client reads nothing", async () => {
    // A backend that answers every GET with an endless chunked body, as fast as it is read.
    const backendClosed: string[] = [];
    const backend = http.createServer((req, res) => {
      req.socket.once("close", () => backendClosed.push(req.url!));
      res.writeHead(200, { "Content-Type": "application/octet-stream" });
      const chunk = Buffer.alloc(64 * 1024, 1);
      const more = () => {
        while (!res.destroyed && res.write(chunk));
      };
      res.on("drain", more);
      more();
    });
    await new Promise<void>((resolve) => backend.listen(0, "127.0.0.1", resolve));
    try {
      const gateway = await start(`http://127.0.0.1:${(backend.address() as AddressInfo).port}`);
      // A single registry's catalog is forwarded as it answers (tag lists are read and paged by the gateway).
      for (const path of [`/v2/hub/chunked/blobs/sha256:${"b".repeat(64)}`, "/v2/_catalog"]) {
        const client = await stallOne(gateway, path);
        assert.match(client.head, /\r\ntransfer-encoding: chunked/i);
        const releasedAfter = await cutAtSendTimeout(gateway, client, path);
        await waitFor(() => backendClosed.includes(path), { timeoutMs: 1000, intervalMs: 10, what: `${path}: the backend connection to be closed` });
        console.log(`  ${path} released ${releasedAfter.toFixed(0)} ms after its answer`);
      }
    } finally {
      backend.closeAllConnections();
      await new Promise((resolve) => backend.close(resolve));
    }
  });

  it("answers a download over limits.downloadsPerClient with 429 TOOMANYREQUESTS in registry JSON, per address, until one ends", async () => {
    const gateway = await start(registry.url, { timeouts: { send: "1m" }, limits: { downloadsPerClient: 2 } });
    const held = [await stallOne(gateway, blobPath, "127.0.0.2"), await stallOne(gateway, blobPath, "127.0.0.2")];
    for (const client of held) assert.equal(client.status, 200, client.head);

    const refused = await gatewayRequest(gateway.port, gateway.caPem, HUB, { path: blobPath, localAddress: "127.0.0.2" });
    assert.equal(refused.status, 429);
    assert.equal(refused.headers["content-type"], "application/json; charset=utf-8");
    assert.equal(refused.headers["docker-distribution-api-version"], "registry/2.0");
    assert.equal(refused.headers["retry-after"], "1");
    assert.equal(refused.json().errors[0].code, "TOOMANYREQUESTS");
    // Manifests count too; HEAD (no body) and other routes do not.
    assert.equal((await gatewayRequest(gateway.port, gateway.caPem, HUB, { path: "/v2/hub/big/manifests/latest", localAddress: "127.0.0.2" })).status, 429);
    assert.equal((await gatewayRequest(gateway.port, gateway.caPem, HUB, { method: "HEAD", path: blobPath, localAddress: "127.0.0.2" })).status, 200);
    assert.equal((await gatewayRequest(gateway.port, gateway.caPem, HUB, { path: "/v2/", localAddress: "127.0.0.2" })).status, 200);
    // Another address has its own count.
    const other = await gatewayRequest(gateway.port, gateway.caPem, HUB, { path: blobPath, localAddress: "127.0.0.3" });
    assert.equal(other.status, 200);
    assert.equal(other.body.length, BLOB_BYTES);

    // One held download ends: the address may download again.
    held[0]!.socket.destroy();
    await waitFor(
      async () => (await gatewayRequest(gateway.port, gateway.caPem, HUB, { method: "GET", path: blobPath, localAddress: "127.0.0.2" })).status === 200,
      { timeoutMs: 2000, intervalMs: 50, what: "a download from 127.0.0.2 to be admitted once one of its two ended" },
    );
    held[1]!.socket.destroy();
  });
});
