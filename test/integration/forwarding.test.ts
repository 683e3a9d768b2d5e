// What crosses the gateway, observed at a backend that records what it receives and can
// misbehave on cue (answer late, die mid-body). The registry cannot be made to do those things.
import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { once } from "node:events";
import { after, before, describe, it } from "node:test";
import { startTestGateway, type TestGateway } from "../helpers/gateway.js";
import { OCI_MANIFEST } from "../helpers/oci.js";
import { patchChunked } from "../helpers/upload.js";

const HOST = "hub.registry.test";

interface Received {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  rawHeaders: string[];
  bodyBytes: number;
}

function startRecordingBackend(): Promise<{ server: http.Server; url: string; received: Received[] }> {
  const received: Received[] = [];
  const server = http.createServer((req, res) => {
    let bodyBytes = 0;
    req.on("data", (chunk: Buffer) => (bodyBytes += chunk.length));
    req.on("end", () => {
      received.push({ method: req.method!, url: req.url!, headers: req.headers, rawHeaders: req.rawHeaders, bodyBytes });
      switch (req.url) {
        case "/v2/redirect/blobs/sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc":
          res.writeHead(307, { Location: "https://storage.example.invalid/blob?sig=a%2Fb" }).end();
          return;
        case "/v2/challenge/manifests/latest":
          res.writeHead(401, [
            ["WWW-Authenticate", 'Bearer realm="https://auth.example.invalid/token",service="x"'],
            ["WWW-Authenticate", 'Basic realm="x"'],
            ["Content-Length", "0"],
          ].flat());
          res.end();
          return;
        case "/v2/silent/manifests/latest":
          return; // never answers
        case "/v2/dies/blobs/sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc":
          res.writeHead(200, { "Content-Length": "1000000" });
          res.write(Buffer.alloc(1000));
          setTimeout(() => res.socket?.destroy(), 50);
          return;
        default:
          res.writeHead(201, { Location: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v2/x/blobs/uploads/u?_state=a%2Bb%3D` });
          res.end();
      }
    });
  });
  server.listen(0, "127.0.0.1");
  return once(server, "listening").then(() => ({ server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, received }));
}

describe("forwarding semantics", () => {
  let backend: Awaited<ReturnType<typeof startRecordingBackend>>;
  let gateway: TestGateway;
  const last = () => backend.received.at(-1)!;

  before(async () => {
    backend = await startRecordingBackend();
    gateway = await startTestGateway({
      sites: [{ hosts: [HOST], backend: backend.url }],
      timeouts: { idle: "1s" },
    });
  });

  after(async () => {
    await gateway?.stop();
    backend?.server.closeAllConnections();
    backend?.server.close();
  });

  it("replaces client X-Forwarded-* and Forwarded with the gateway's own", async () => {
    await gateway.request(HOST, {
      path: "/v2/",
      headers: { "x-forwarded-for": "6.6.6.6", "x-forwarded-host": "evil.example", "x-forwarded-proto": "http", forwarded: "for=6.6.6.6" },
    });
    const headers = last().headers;
    assert.equal(headers["x-forwarded-for"], "127.0.0.1");
    assert.equal(headers["x-forwarded-host"], `${HOST}:${gateway.port}`);
    assert.equal(headers["x-forwarded-proto"], "https");
    assert.equal(headers["forwarded"], `for=127.0.0.1;host="${HOST}:${gateway.port}";proto=https`);
    assert.equal(headers.host, `${HOST}:${gateway.port}`);
  });

  it("forwards every Accept value and the registry headers", async () => {
    await gateway.request(HOST, {
      path: "/v2/",
      headers: {
        accept: ["application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.v2+json"],
        range: "bytes=0-1",
        "docker-upload-uuid": "u-1",
        "content-range": "0-1",
      },
    });
    const { headers, rawHeaders } = last();
    const accepts = rawHeaders.filter((_, i) => i % 2 === 1 && rawHeaders[i - 1]!.toLowerCase() === "accept").join(", ");
    assert.equal(accepts, "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json");
    assert.equal(headers.range, "bytes=0-1");
    assert.equal(headers["docker-upload-uuid"], "u-1");
    assert.equal(headers["content-range"], "0-1");
  });

  it("strips hop-by-hop headers, including those the client names in Connection", async () => {
    await gateway.request(HOST, { path: "/v2/", headers: { connection: "x-hop", "x-hop": "1", "keep-alive": "timeout=1", te: "trailers" } });
    const { headers } = last();
    assert.equal(headers["x-hop"], undefined);
    assert.equal(headers["keep-alive"], undefined);
    assert.equal(headers.te, undefined);
    assert.equal(headers.connection, "keep-alive", "the gateway's own pooled connection");
  });

  it("forwards the accepted target byte for byte: the query is not re-encoded", async () => {
    // WHATWG URL would percent-encode the quote and the backslash-free but odd query; the backend must see what was checked.
    const target = "/v2/x/blobs/uploads/0f-a_b.c=?_state=a%2Bb%3D&digest=sha256%3A" + "d".repeat(64) + "&q='x'&n=1&n=2";
    const res = await gateway.request(HOST, { method: "PUT", path: target, body: "" });
    assert.equal(res.status, 201);
    assert.equal(last().url, target);
  });

  it("rewrites a Location that names the backend, keeping the query byte for byte", async () => {
    // A manifest the gateway's checks pass (they read it before forwarding); the scripted backend answers any PUT.
    const manifest = JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: {}, layers: [] });
    const res = await gateway.request(HOST, { method: "PUT", path: "/v2/x/manifests/latest", headers: { "content-type": OCI_MANIFEST }, body: manifest });
    assert.equal(res.status, 201);
    assert.equal(res.headers.location, `https://${HOST}:${gateway.port}/v2/x/blobs/uploads/u?_state=a%2Bb%3D`);
    assert.equal(res.headers["docker-distribution-api-version"], "registry/2.0", "added when the backend leaves it out");
  });

  it("passes a 307 storage redirect through untouched", async () => {
    const res = await gateway.request(HOST, { path: "/v2/redirect/blobs/sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc" });
    assert.equal(res.status, 307);
    assert.equal(res.headers.location, "https://storage.example.invalid/blob?sig=a%2Fb");
  });

  it("keeps several WWW-Authenticate challenges separate", async () => {
    const res = await gateway.request(HOST, { path: "/v2/challenge/manifests/latest" });
    assert.equal(res.status, 401);
    const challenges = res.rawHeaders.filter((_, i) => i % 2 === 1 && res.rawHeaders[i - 1]!.toLowerCase() === "www-authenticate");
    assert.deepEqual(challenges, ['Bearer realm="https://auth.example.invalid/token",service="x"', 'Basic realm="x"']);
  });

  it("answers 504 in registry format when the backend goes silent past the idle timeout", async () => {
    const started = Date.now();
    const res = await gateway.request(HOST, { path: "/v2/silent/manifests/latest" });
    assert.equal(res.status, 504);
    assert.equal(res.json().errors[0].code, "UNAVAILABLE");
    assert.ok(Date.now() - started < 5000);
  });

  it("cuts the client connection when the backend dies mid-body, rather than hang", async () => {
    await assert.rejects(gateway.request(HOST, { path: "/v2/dies/blobs/sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc" }), /aborted|ECONNRESET|socket hang up/);
  });

  it("lets a slow upload run far longer than the idle timeout as long as bytes keep flowing", async () => {
    const target = { port: gateway.port, caPem: gateway.caPem, host: HOST };
    const started = Date.now();
    // 1 s idle timeout; 16 chunks 250 ms apart = 4 s total.
    const result = await patchChunked(target, `https://${HOST}:${gateway.port}/v2/x/blobs/uploads/slow`, {
      bytes: 16 * 1024,
      chunkSize: 1024,
      delayMs: 250,
    });
    assert.ok(Date.now() - started >= 3500, "the upload was not slow");
    assert.equal(result.status, 201);
    assert.equal(last().bodyBytes, 16 * 1024);
    assert.equal(last().headers["content-length"], undefined, "still chunked upstream");
  });
});
