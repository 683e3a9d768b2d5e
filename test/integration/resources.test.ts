// Runs alone: counts connections and file descriptors against time limits.
// Nothing left behind: clients that leave, stall, go silent or open too many
// connections cost the gateway and its backend (a real distribution registry) nothing for long.
// Measured on raw TLS/TCP sockets, so every byte and every close is the gateway's doing, not a client
// library's. Timeouts are small (idle 2 s, keep-alive 1 s, handshake 1 s) to keep the file fast.
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import http from "node:http";
import net from "node:net";
import tls, { type TLSSocket } from "node:tls";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import { startTestGateway, type TestGateway } from "../helpers/gateway.js";
import { run, waitFor } from "../helpers/process.js";
import { parseHeaderLines } from "../helpers/raw-http.js";
import { startRegistry, type Registry } from "../helpers/registry.js";
import { finishUpload, patchChunked, startUpload, type UploadTarget } from "../helpers/upload.js";

const HUB = "hub.registry.test";
const KiB = 1024;
const MiB = 1024 * KiB;
const IDLE_MS = 2000;
const HANDSHAKE_MS = 1000;
const TIMEOUTS = { idle: "2s", keepAlive: "1s", handshake: "1s" };

// ---------------------------------------------------------------- raw HTTP/1.1 over TLS

interface RawResponse {
  status: number;
  /** Lower-case names; repeated headers joined with ", ". */
  headers: Record<string, string>;
  body: Buffer;
  /** When the last byte of the response arrived. */
  at: number;
  json(): any;
}

/** A client connection whose bytes and close are observed as they are, with a minimal response parser. */
class RawClient {
  private chunks: Buffer[] = [];
  private wake: (() => void) | null = null;
  /** Bytes received in all. */
  received = 0;
  lastDataAt = 0;
  closedAt: number | null = null;
  readonly openedAt = Date.now();
  readonly closed: Promise<number>;

  constructor(readonly socket: net.Socket, private readonly keep = true) {
    socket.on("data", (chunk: Buffer) => {
      this.received += chunk.length;
      this.lastDataAt = Date.now();
      if (this.keep) this.chunks.push(chunk);
      this.notify();
    });
    socket.on("error", () => {}); // resets are expected here; close is what is measured
    this.closed = new Promise((resolve) =>
      socket.once("close", () => {
        this.closedAt = Date.now();
        this.notify();
        resolve(this.closedAt);
      }),
    );
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = null;
    wake?.();
  }

  write(data: string | Buffer): Promise<void> {
    return new Promise((resolve, reject) => this.socket.write(data, (err) => (err ? reject(err) : resolve())));
  }

  /** The next whole response on this connection. */
  async response(timeoutMs = 10_000): Promise<RawResponse> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const buffer = Buffer.concat(this.chunks);
      const parsed = parseResponse(buffer, this.closedAt !== null);
      if (parsed) {
        this.chunks = [buffer.subarray(parsed.consumed)];
        return { ...parsed.response, at: this.lastDataAt };
      }
      if (this.closedAt !== null) {
        throw new Error(`connection closed before a whole response arrived (${buffer.length} bytes: ${JSON.stringify(buffer.toString("latin1", 0, 300))})`);
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no whole response within ${timeoutMs} ms (${buffer.length} bytes so far)`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  /** Resolves with the close time, or rejects when the connection is still open after timeoutMs. */
  async closedWithin(timeoutMs: number, what: string): Promise<number> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: still open after ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      return await Promise.race([this.closed, late]);
    } finally {
      clearTimeout(timer);
    }
  }

  destroy(): void {
    this.socket.destroy();
  }
}

function parseResponse(buffer: Buffer, closed: boolean): { response: Omit<RawResponse, "at">; consumed: number } | null {
  const headEnd = buffer.indexOf("\r\n\r\n");
  if (headEnd < 0) return null;
  const [statusLine = "", ...lines] = buffer.toString("latin1", 0, headEnd).split("\r\n");
  const status = Number(statusLine.split(" ")[1]);
  const headers = parseHeaderLines(lines);
  let offset = headEnd + 4;
  let body: Buffer;
  if (headers["transfer-encoding"]?.toLowerCase() === "chunked") {
    const parts: Buffer[] = [];
    for (;;) {
      const lineEnd = buffer.indexOf("\r\n", offset);
      if (lineEnd < 0) return null;
      const size = parseInt(buffer.toString("latin1", offset, lineEnd), 16);
      if (size === 0) {
        if (buffer.length < lineEnd + 4) return null; // no trailers expected
        offset = lineEnd + 4;
        break;
      }
      if (buffer.length < lineEnd + 2 + size + 2) return null;
      parts.push(buffer.subarray(lineEnd + 2, lineEnd + 2 + size));
      offset = lineEnd + 2 + size + 2;
    }
    body = Buffer.concat(parts);
  } else if (headers["content-length"] !== undefined) {
    const length = Number(headers["content-length"]);
    if (buffer.length < offset + length) return null;
    body = buffer.subarray(offset, offset + length);
    offset += length;
  } else {
    if (!closed) return null;
    body = buffer.subarray(offset);
    offset = buffer.length;
  }
  const copy = Buffer.from(body);
  return { response: { status, headers, body: copy, json: () => JSON.parse(copy.toString()) }, consumed: offset };
}

function connectTls(gateway: TestGateway, options: { localAddress?: string; keep?: boolean } = {}): Promise<RawClient> {
  return new Promise((resolve, reject) => {
    const socket: TLSSocket = tls.connect({
      host: "127.0.0.1",
      port: gateway.port,
      servername: HUB,
      ca: gateway.caPem,
      ...(options.localAddress ? { localAddress: options.localAddress } : {}),
    });
    socket.once("error", reject);
    socket.once("secureConnect", () => {
      socket.off("error", reject);
      resolve(new RawClient(socket, options.keep));
    });
  });
}

function head(gateway: TestGateway, method: string, path: string, headers: Record<string, string> = {}): string {
  const lines = [`${method} ${path} HTTP/1.1`, `Host: ${HUB}:${gateway.port}`, ...Object.entries(headers).map(([n, v]) => `${n}: ${v}`)];
  return `${lines.join("\r\n")}\r\n\r\n`;
}

function chunk(data: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`${data.length.toString(16)}\r\n`), data, Buffer.from("\r\n")]);
}

function assertRegistryError(res: RawResponse, status: number, code: string): void {
  assert.equal(res.status, status, res.body.toString());
  assert.equal(res.headers["content-type"], "application/json; charset=utf-8");
  assert.equal(res.headers["docker-distribution-api-version"], "registry/2.0");
  const body = res.json();
  assert.equal(body.errors[0].code, code);
  assert.equal(typeof body.errors[0].message, "string");
}

/** Established TCP connections to the registry's port (from the gateway: nothing else here talks to it). */
async function backendConnections(registry: Registry): Promise<number> {
  const result = await run("ss", ["-Htn", "state", "established", `( dport = :${registry.port} )`]);
  assert.equal(result.code, 0, result.stderr);
  return result.stdout.split("\n").filter((line) => line.trim() !== "").length;
}

/** A request straight to the registry on a connection of its own (agent: false), so none lingers. */
function direct(method: string, url: string, body?: Buffer): Promise<{ status: number; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, agent: false, headers: { "content-length": String(body?.length ?? 0) } }, (res) => {
      res.resume();
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

/** Puts a blob into the registry directly; returns its digest. */
async function pushBlobDirect(registry: Registry, repository: string, data: Buffer): Promise<string> {
  const digest = `sha256:${createHash("sha256").update(data).digest("hex")}`;
  const started = await direct("POST", `${registry.url}/v2/${repository}/blobs/uploads/`);
  assert.equal(started.status, 202);
  const location = new URL(String(started.headers.location), registry.url);
  location.searchParams.set("digest", digest);
  const put = await direct("PUT", location.href, data);
  assert.equal(put.status, 201);
  return digest;
}

const idle = (gateway: TestGateway) => gateway.inFlight() === 0 && gateway.upstreamSocketsInUse() === 0;

const site = (registry: Registry) => ({ hosts: [HUB], backend: registry.url });

/**
 * gateway.stop(), bounded. shutdown() waits for every connection to close, so a connection the gateway
 * leaked (a failing case here) would keep the file running forever: after 3 s the leftover server-side
 * sockets of this listener (same process) are destroyed so the file can end, and the leak is reported.
 */
async function stopGateway(gateway: TestGateway | undefined): Promise<void> {
  if (!gateway) return;
  const stopped = gateway.stop().then(() => true);
  if (await Promise.race([stopped, sleep(3000).then(() => false)])) return;
  const handles = (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles();
  const leaked = handles.filter((h): h is net.Socket => h instanceof net.Socket && h.localPort === gateway.port);
  console.log(`  !! gateway.stop() still pending after 3 s: destroying ${leaked.length} leaked server-side connection(s) on :${gateway.port}`);
  for (const socket of leaked) socket.destroy();
  await Promise.race([stopped, sleep(5000)]);
}

/** A connection that has been answered once (200 on /v2/) and is held open with keep-alive. */
async function heldConnection(gateway: TestGateway, localAddress?: string): Promise<RawClient> {
  const client = await connectTls(gateway, { localAddress });
  await client.write(head(gateway, "GET", "/v2/"));
  const res = await client.response();
  assert.equal(res.status, 200, `a connection within the caps was refused: ${res.body.toString()}`);
  assert.notEqual(res.headers.connection, "close");
  return client;
}

/** Connects, asks, expects the refusal in registry JSON and the connection closed by the gateway. */
async function refusedConnection(gateway: TestGateway, status: number, code: string, localAddress?: string): Promise<void> {
  const client = await connectTls(gateway, { localAddress }); // the TLS handshake itself succeeds
  await client.write(head(gateway, "GET", "/v2/"));
  const res = await client.response();
  assertRegistryError(res, status, code);
  assert.equal(res.headers.connection, "close");
  await client.closedWithin(1000, `a connection refused ${status}`);
}

/** After a connection is gone, the gateway may take a moment to notice: retry for up to 1 s. */
async function admittedAgain(gateway: TestGateway, localAddress?: string): Promise<{ client: RawClient; afterMs: number }> {
  const started = Date.now();
  for (;;) {
    const client = await connectTls(gateway, { localAddress });
    await client.write(head(gateway, "GET", "/v2/"));
    const res = await client.response();
    if (res.status === 200) return { client, afterMs: Date.now() - started };
    client.destroy();
    if (Date.now() - started > 1000) assert.fail(`a freed slot was still refused after 1 s: ${res.status} ${res.body.toString()}`);
    await sleep(50);
  }
}

function connectTcp(gateway: TestGateway): Promise<RawClient> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: "127.0.0.1", port: gateway.port });
    socket.once("error", reject);
    socket.once("connect", () => {
      socket.off("error", reject);
      resolve(new RawClient(socket));
    });
  });
}

// ---------------------------------------------------------------- tests

let registry: Registry;

before(async () => {
  registry = await startRegistry();
});

after(async () => {
  await registry?.stop();
});

describe("abandoned and stalled requests release their backend connection", () => {
  let gateway: TestGateway;
  let target: UploadTarget;
  let bigBlob: { digest: string; size: number };

  before(async () => {
    gateway = await startTestGateway({ sites: [site(registry)], timeouts: TIMEOUTS });
    target = { port: gateway.port, caPem: gateway.caPem, host: HUB };
    const size = 64 * MiB;
    bigBlob = { digest: await pushBlobDirect(registry, "hub/big", randomBytes(size)), size };
  });

  after(async () => {
    await stopGateway(gateway);
  });

  it("200 abandoned chunked GETs are refused 400 and closed, and hold no backend connection", async () => {
    const path = "/v2/hub/big/manifests/latest";
    const request = Buffer.concat([
      Buffer.from(head(gateway, "GET", path, { "Transfer-Encoding": "chunked" })),
      Buffer.from("400\r\n"), // announces 1 KiB ...
      randomBytes(100), // ... and sends 100 bytes of it
    ]);
    const clients = await Promise.all(Array.from({ length: 200 }, () => connectTls(gateway)));
    await Promise.all(clients.map((client) => client.write(request)));
    // Half leave at once, half stay connected and wait.
    const leaving = clients.slice(0, 100);
    const staying = clients.slice(100);
    for (const client of leaving) client.destroy();

    const started = Date.now();
    const responses = await Promise.all(staying.map((client) => client.response(IDLE_MS + 1000)));
    for (const res of responses) {
      assertRegistryError(res, 400, "UNSUPPORTED");
      assert.equal(res.headers.connection, "close");
    }
    // The gateway closes them itself (the unread body must not be read as a next request).
    await Promise.all(staying.map((client) => client.closedWithin(IDLE_MS, "a refused chunked GET's connection")));
    const closedAfter = Date.now() - started;

    await waitFor(() => idle(gateway), { timeoutMs: IDLE_MS, intervalMs: 20, what: "no request in flight and no backend socket in use" });
    const backend = await backendConnections(registry);
    assert.ok(backend <= 8, `${backend} connections from the gateway to the registry are still established`);
    // And the gateway serves normally afterwards.
    assert.equal((await gateway.request(HUB, { path: "/v2/" })).status, 200);
    console.log(`  [1] 100 staying clients answered 400 and closed within ${closedAfter} ms; backend connections left: ${backend}`);
  });

  it("GET, HEAD and DELETE with a Content-Length body are refused 400 with Connection: close", async () => {
    for (const method of ["GET", "HEAD", "DELETE"]) {
      const client = await connectTls(gateway);
      await client.write(head(gateway, method, "/v2/hub/big/manifests/latest", { "Content-Length": "5" }) + "hello");
      if (method === "HEAD") {
        // No body on a HEAD answer: read the head only.
        const text = await new Promise<string>((resolve) => client.socket.once("data", (data: Buffer) => resolve(data.toString("latin1"))));
        assert.match(text, /^HTTP\/1\.1 400 /, method);
        assert.match(text, /\r\nconnection: close\r\n/i, method);
      } else {
        const res = await client.response();
        assertRegistryError(res, 400, "UNSUPPORTED");
        assert.equal(res.headers.connection, "close", method);
      }
      await client.closedWithin(1000, `${method} with a body`);
    }
  });

  it("a client that stops reading a large blob download is cut at the idle timeout and releases the backend", async () => {
    const clients = await Promise.all(Array.from({ length: 4 }, () => connectTls(gateway, { keep: false })));
    for (const client of clients) {
      await client.write(head(gateway, "GET", `/v2/hub/big/blobs/${bigBlob.digest}`));
      client.socket.pause(); // reads nothing more: the gateway's writes back up
    }
    await waitFor(() => gateway.upstreamSocketsInUse() === clients.length, { timeoutMs: 2000, intervalMs: 10, what: "all downloads to reach the backend" });
    // Backpressure reaches the backend: nothing moves, then the idle timeout ends the exchange.
    const started = Date.now();
    await waitFor(() => idle(gateway), { timeoutMs: IDLE_MS + 2000, intervalMs: 20, what: "the stalled downloads to be released" });
    const releasedAfter = Date.now() - started;
    assert.ok(releasedAfter >= IDLE_MS * 0.8, `released ${releasedAfter} ms after the downloads started: before the idle timeout`);
    for (const client of clients) client.socket.resume();
    await Promise.all(clients.map((client) => client.closedWithin(3000, "a stalled download's connection")));
    for (const client of clients) assert.ok(client.received < bigBlob.size, `a stalled client received all ${client.received} bytes: it was not cut`);
    const backend = await backendConnections(registry);
    assert.ok(backend <= 8, `${backend} connections from the gateway to the registry are still established`);
    console.log(`  [1b] stalled downloads released ${releasedAfter} ms after they reached the backend; received ${clients.map((c) => c.received).join(", ")} of ${bigBlob.size} bytes`);
  });

  it("an upload PATCH whose client stops sending mid-body is cut at the idle timeout and releases the backend", async () => {
    const location = new URL(await startUpload(target, "hub/stalled"));
    const client = await connectTls(gateway);
    await client.write(
      head(gateway, "PATCH", location.pathname + location.search, { "Content-Type": "application/octet-stream", "Transfer-Encoding": "chunked" }),
    );
    for (let i = 0; i < 4; i++) await client.write(chunk(randomBytes(64 * KiB)));
    const lastWrite = Date.now();
    await waitFor(() => gateway.upstreamSocketsInUse() === 1, { timeoutMs: 1000, intervalMs: 10, what: "the upload to reach the backend" });

    // 408 in registry JSON, or (acceptable too) a closed connection; either way at ~idle.
    let status: number | "closed";
    try {
      const res = await client.response(IDLE_MS + 2000);
      assertRegistryError(res, 408, "UNSUPPORTED");
      assert.equal(res.headers.connection, "close");
      status = res.status;
    } catch (err) {
      if (client.closedAt === null) throw err;
      status = "closed";
    }
    const cutAfter = Date.now() - lastWrite;
    assert.ok(cutAfter >= IDLE_MS * 0.8, `cut after ${cutAfter} ms: before the idle timeout`);
    assert.ok(cutAfter <= IDLE_MS + 1500, `cut after ${cutAfter} ms: long after the idle timeout`);
    await client.closedWithin(1000, "the stalled upload's connection");
    await waitFor(() => idle(gateway), { timeoutMs: 500, intervalMs: 10, what: "the stalled upload's backend request to be released" });
    console.log(`  [2] stalled PATCH answered ${status} ${cutAfter} ms after its last bytes`);
  });

  it("an upload PATCH whose client leaves mid-body releases the backend request at once", async () => {
    const location = new URL(await startUpload(target, "hub/left"));
    const client = await connectTls(gateway);
    await client.write(
      head(gateway, "PATCH", location.pathname + location.search, { "Content-Type": "application/octet-stream", "Transfer-Encoding": "chunked" }),
    );
    for (let i = 0; i < 4; i++) await client.write(chunk(randomBytes(64 * KiB)));
    await waitFor(() => gateway.upstreamSocketsInUse() === 1, { timeoutMs: 1000, intervalMs: 10, what: "the upload to reach the backend" });
    await sleep(100);
    const left = Date.now();
    client.destroy();
    await waitFor(() => idle(gateway), { timeoutMs: IDLE_MS, intervalMs: 5, what: "the abandoned upload's backend request to be released" });
    const releasedAfter = Date.now() - left;
    assert.ok(releasedAfter < IDLE_MS / 4, `released ${releasedAfter} ms after the client left: waited for a timeout`);
    console.log(`  [2b] abandoned PATCH released ${releasedAfter} ms after the client left`);
  });

  it("lets a slow but steady upload run far past the idle timeout, body intact", async () => {
    const location = await startUpload(target, "hub/slow");
    const started = Date.now();
    // 64 KiB every 500 ms, 10 chunks: ~4.5 s in all, more than twice timeouts.idle, never idle for long.
    const patched = await patchChunked(target, location, { bytes: 10 * 64 * KiB, chunkSize: 64 * KiB, delayMs: 500 });
    const took = Date.now() - started;
    assert.equal(patched.status, 202);
    assert.ok(took >= IDLE_MS * 2, `the upload took only ${took} ms: not slow enough to prove anything`);
    // The registry recomputes the digest over everything it received.
    const done = await finishUpload(target, patched.location!, patched.digest);
    assert.equal(done.status, 201, done.body.toString());
    assert.equal(done.headers["docker-content-digest"], patched.digest);
    const headed = await gateway.request(HUB, { method: "HEAD", path: `/v2/hub/slow/blobs/${patched.digest}` });
    assert.equal(headed.headers["content-length"], String(10 * 64 * KiB));
    console.log(`  [6] slow upload of ${10 * 64} KiB took ${took} ms and arrived whole`);
  });
});

describe("idle and silent connections are closed on time", () => {
  it("closes an idle keep-alive connection at timeouts.keepAlive, after a forwarded answer and after its own error", async () => {
    // idle far above keepAlive, so the two cannot be confused.
    const gateway = await startTestGateway({ sites: [site(registry)], timeouts: { keepAlive: "2s", idle: "10s", handshake: "1s" } });
    const keepAliveMs = 2000;
    const measured: string[] = [];
    try {
      for (const [what, path, expected] of [
        ["forwarded GET /v2/", "/v2/", 200],
        ["gateway-made 404", "/not-a-registry-path", 404],
      ] as const) {
        const client = await connectTls(gateway);
        await client.write(head(gateway, "GET", path));
        const res = await client.response();
        assert.equal(res.status, expected, what);
        if (expected !== 200) assertRegistryError(res, expected, "NAME_UNKNOWN");
        assert.notEqual(res.headers.connection, "close", `${what}: the connection should stay open for keep-alive`);
        // Told one second less than the gateway waits, so the client never reuses a connection being closed.
        assert.equal(res.headers["keep-alive"], "timeout=1", `${what}: the keep-alive time the client is told`);
        const closedAt = await client.closedWithin(5000, `idle keep-alive connection after a ${what}`);
        const idleFor = closedAt - res.at;
        assert.ok(idleFor >= keepAliveMs - 100, `${what}: closed ${idleFor} ms after the answer, before the keep-alive timeout`);
        assert.ok(idleFor <= keepAliveMs + 500, `${what}: closed ${idleFor} ms after the answer, not at the keep-alive timeout`);
        measured.push(`${what}: ${idleFor} ms`);
      }
    } finally {
      await stopGateway(gateway);
    }
    console.log(`  [3] keepAlive 2s (idle 10s): idle connection closed ${measured.join("; ")}`);
  });

  it("closes silent TCP connections at timeouts.handshake when it is the sooner (and silent TLS ones at timeouts.idle)", async () => {
    const gateway = await startTestGateway({ sites: [site(registry)], timeouts: TIMEOUTS });
    const clients: RawClient[] = [];
    try {
      const tcp = await Promise.all(Array.from({ length: 50 }, () => connectTcp(gateway)));
      clients.push(...tcp);
      const tcpLifetimes = await Promise.all(
        tcp.map(async (client) => (await client.closedWithin(HANDSHAKE_MS + 1000, "a silent TCP connection")) - client.openedAt),
      );
      assert.ok(Math.min(...tcpLifetimes) >= HANDSHAKE_MS * 0.8, `a silent connection was closed after ${Math.min(...tcpLifetimes)} ms, before the handshake timeout`);
      assert.ok(tcp.every((client) => client.received === 0), "the gateway sent bytes to a connection that never said hello");

      // Handshake done, then no request: the idle timeout applies, being shorter here than timeouts.header.
      const secured = await Promise.all(Array.from({ length: 10 }, () => connectTls(gateway)));
      clients.push(...secured);
      const tlsLifetimes = await Promise.all(
        secured.map(async (client) => (await client.closedWithin(IDLE_MS + 1000, "a silent TLS connection")) - client.openedAt),
      );
      console.log(
        `  [4] 50 silent TCP connections closed after ${Math.min(...tcpLifetimes)}–${Math.max(...tcpLifetimes)} ms; ` +
          `10 silent TLS connections after ${Math.min(...tlsLifetimes)}–${Math.max(...tlsLifetimes)} ms`,
      );
    } finally {
      for (const client of clients) client.destroy();
      await stopGateway(gateway);
    }
  });

  it("closes a connection that brings no request at timeouts.header from the accept, TLS handshake included", async () => {
    // header below handshake and far below idle and keepAlive, so none of them can be taken for another.
    const HEADER_MS = 1500;
    const gateway = await startTestGateway({ sites: [site(registry)], timeouts: { header: "1500ms", handshake: "3s", idle: "10s", keepAlive: "5s" } });
    const clients: RawClient[] = [];
    const lifetime = async (connect: () => Promise<RawClient>, what: string) => {
      const started = Date.now();
      const client = await connect();
      clients.push(client);
      return { client, lived: (await client.closedWithin(HEADER_MS + 1500, what)) - started };
    };
    try {
      // Handshake done, then nothing: told why (as Node's header timeout would) and closed.
      const secured = await Promise.all(Array.from({ length: 10 }, () => lifetime(() => connectTls(gateway), "a silent TLS connection")));
      // No handshake at all, with the handshake timeout longer: the header timeout is the sooner.
      const tcp = await Promise.all(Array.from({ length: 10 }, () => lifetime(() => connectTcp(gateway), "a silent TCP connection")));
      for (const { lived } of [...secured, ...tcp]) {
        assert.ok(lived >= HEADER_MS - 100 && lived <= HEADER_MS + 1000, `a silent connection lived ${lived} ms, not timeouts.header (${HEADER_MS} ms)`);
      }
      assertRegistryError(await secured[0]!.client.response(), 400, "UNSUPPORTED");
      assert.ok(tcp.every(({ client }) => client.received === 0), "the gateway sent bytes to a connection that never said hello");

      // A connection that brought a request is past that deadline: kept alive for timeouts.keepAlive.
      const kept = await connectTls(gateway);
      clients.push(kept);
      await kept.write(head(gateway, "GET", "/v2/"));
      const answered = await kept.response();
      assert.equal(answered.status, 200);
      const idleFor = (await kept.closedWithin(7000, "an idle keep-alive connection")) - answered.at;
      assert.ok(idleFor >= 5000 - 100, `a kept-alive connection was closed ${idleFor} ms after its answer, before timeouts.keepAlive`);
      const range = (list: { lived: number }[]) => `${Math.min(...list.map((x) => x.lived))}–${Math.max(...list.map((x) => x.lived))} ms`;
      console.log(`  [4c] header 1.5s: 10 silent TLS connections closed after ${range(secured)}, 10 silent TCP after ${range(tcp)}; keep-alive after ${idleFor} ms idle`);
    } finally {
      for (const client of clients) client.destroy();
      await stopGateway(gateway);
    }
  });

  it("a silent connection, once gone, no longer counts against limits.maxConnectionsPerIp", async () => {
    const gateway = await startTestGateway({ sites: [site(registry)], timeouts: TIMEOUTS, limits: { maxConnectionsPerIp: 3 } });
    try {
      const silent = await Promise.all(Array.from({ length: 3 }, () => connectTcp(gateway)));
      await sleep(HANDSHAKE_MS + 500);
      for (const client of silent) client.destroy(); // gone, whatever the gateway did meanwhile
      await sleep(300);
      const again = await admittedAgain(gateway);
      again.client.destroy();
      console.log(`  [4b] after 3 silent connections left, 127.0.0.1 was admitted after ${again.afterMs} ms`);
    } finally {
      await stopGateway(gateway);
    }
  });
});

describe("connection caps", () => {
  it("limits.maxConnectionsPerIp: the excess gets 429 TOOMANYREQUESTS and is closed; other addresses and freed slots work", async () => {
    const gateway = await startTestGateway({
      sites: [site(registry)],
      timeouts: { handshake: "1s" },
      limits: { maxConnectionsPerIp: 5 },
    });
    const held: RawClient[] = [];
    try {
      for (let i = 0; i < 5; i++) held.push(await heldConnection(gateway));
      await refusedConnection(gateway, 429, "TOOMANYREQUESTS");
      held.push(await heldConnection(gateway, "127.0.0.2"));
      const freed = held.shift()!;
      freed.destroy();
      const again = await admittedAgain(gateway);
      held.push(again.client);
      // Full again from 127.0.0.1.
      await refusedConnection(gateway, 429, "TOOMANYREQUESTS");
      console.log(`  [5] per-IP cap: a freed slot was usable after ${again.afterMs} ms`);
    } finally {
      for (const client of held) client.destroy();
      await stopGateway(gateway);
    }
  });

  it("limits.maxConnections: the excess gets 503 UNAVAILABLE and is closed, whatever its address", async () => {
    const gateway = await startTestGateway({
      sites: [site(registry)],
      timeouts: { handshake: "1s" },
      limits: { maxConnections: 3 },
    });
    const held: RawClient[] = [];
    try {
      for (let i = 0; i < 3; i++) held.push(await heldConnection(gateway, i === 2 ? "127.0.0.2" : undefined));
      await refusedConnection(gateway, 503, "UNAVAILABLE");
      await refusedConnection(gateway, 503, "UNAVAILABLE", "127.0.0.3");
      held.shift()!.destroy();
      const again = await admittedAgain(gateway);
      held.push(again.client);
      console.log(`  [5] global cap: a freed slot was usable after ${again.afterMs} ms`);
      // Beyond twice the cap a flood is dropped at accept: no handshake is spent on it.
      for (let i = 0; i < 3; i++) held.push(await connectTcp(gateway));
      await assert.rejects(connectTls(gateway), /ECONNRESET|socket disconnected|socket hang up|EPIPE/, "the 7th connection should be dropped at accept");
    } finally {
      for (const client of held) client.destroy();
      await stopGateway(gateway);
    }
  });
});
