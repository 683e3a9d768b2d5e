// Bad input: each malformed request gets a registry-format error on its own connection, and
// the gateway keeps serving everyone else. Raw TLS sockets, because well-behaved clients cannot send these.
import assert from "node:assert/strict";
import http from "node:http";
import net, { type AddressInfo } from "node:net";
import { once } from "node:events";
import tls from "node:tls";
import { after, before, describe, it } from "node:test";
import { startTestGateway, type TestGateway } from "../helpers/gateway.js";
import { formatRun, run } from "../helpers/process.js";

const HOST = "hub.registry.test";

interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Sends bytes as they are and reads until the gateway closes or a full response has arrived. */
function rawExchange(gateway: TestGateway, request: string): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: "127.0.0.1", port: gateway.port, servername: HOST, ca: gateway.caPem }, () => socket.write(request));
    let data = "";
    const finish = () => {
      const [head = "", ...rest] = data.split("\r\n\r\n");
      const [statusLine = "", ...lines] = head.split("\r\n");
      const headers = Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf(":")).toLowerCase(), l.slice(l.indexOf(":") + 1).trim()]));
      resolve({ status: Number(statusLine.split(" ")[1]), headers, body: rest.join("\r\n\r\n") });
    };
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      data += chunk;
      const length = /content-length: (\d+)/i.exec(data);
      const bodyStart = data.indexOf("\r\n\r\n");
      if (length && bodyStart >= 0 && data.length - bodyStart - 4 >= Number(length[1])) {
        socket.end();
        finish();
      }
    });
    socket.on("end", finish);
    socket.on("error", reject);
    socket.setTimeout(5000, () => reject(new Error(`no answer; got so far: ${JSON.stringify(data)}`)));
  });
}

function assertRegistryError(res: RawResponse, status: number, code: string): void {
  assert.equal(res.status, status, JSON.stringify(res));
  assert.equal(res.headers["content-type"], "application/json; charset=utf-8");
  assert.equal(res.headers["docker-distribution-api-version"], "registry/2.0");
  assert.equal(JSON.parse(res.body).errors[0].code, code);
}

describe("bad input", () => {
  let gateway: TestGateway;
  let backend: http.Server;
  let backendRequests: string[];

  before(async () => {
    backendRequests = [];
    backend = http.createServer((req, res) => {
      backendRequests.push(`${req.method} ${req.url}`);
      req.resume();
      req.on("end", () => res.writeHead(200, { "Content-Type": "application/json" }).end("{}"));
    });
    backend.listen(0, "127.0.0.1");
    await once(backend, "listening");
    gateway = await startTestGateway({
      sites: [{ hosts: [HOST], backend: `http://127.0.0.1:${(backend.address() as AddressInfo).port}` }],
      limits: { maxHeaderBytes: 8192 },
    });
  });

  after(async () => {
    await gateway?.stop();
    backend?.closeAllConnections();
    backend?.close();
  });

  async function stillServes(): Promise<void> {
    const res = await gateway.request(HOST, { path: "/v2/" });
    assert.equal(res.status, 200, "the gateway stopped serving well-formed requests");
  }

  it("a request without Host gets 400 in registry format", async () => {
    assertRegistryError(await rawExchange(gateway, "GET /v2/ HTTP/1.1\r\nConnection: close\r\n\r\n"), 400, "UNSUPPORTED");
    assertRegistryError(await rawExchange(gateway, "GET /v2/ HTTP/1.0\r\n\r\n"), 400, "UNSUPPORTED");
    await stillServes();
  });

  it("a malformed Host gets 400 in registry format", async () => {
    for (const host of ["bad host", "a:b:c", "hub.registry.test:99999", "hub.registry.test:port"]) {
      assertRegistryError(await rawExchange(gateway, `GET /v2/ HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`), 400, "UNSUPPORTED");
    }
    await stillServes();
  });

  it("paths with .. or %2e%2e are refused before reaching the backend", async () => {
    const before = backendRequests.length;
    for (const path of ["/v2/../etc/passwd", "/v2/%2e%2e/%2E%2e/secret", "/v2/a/./manifests/latest"]) {
      const res = await gateway.request(HOST, { path });
      assert.equal(res.status, 400, path);
      assert.equal(res.json().errors[0].code, "NAME_INVALID");
    }
    assert.equal(backendRequests.length, before);
    await stillServes();
  });

  it("Content-Length together with Transfer-Encoding (smuggling) is refused and nothing is forwarded", async () => {
    const before = backendRequests.length;
    const smuggled =
      `POST /v2/a/blobs/uploads/ HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n` +
      `0\r\n\r\nGET /v2/smuggled HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`;
    assertRegistryError(await rawExchange(gateway, smuggled), 400, "UNSUPPORTED");
    assert.deepEqual(backendRequests.slice(before), []);
    await stillServes();
  });

  it("oversized headers get 431 in registry format", async () => {
    const res = await rawExchange(gateway, `GET /v2/ HTTP/1.1\r\nHost: ${HOST}\r\nX-Big: ${"a".repeat(20_000)}\r\n\r\n`);
    assertRegistryError(res, 431, "UNSUPPORTED");
    await stillServes();
  });

  it("an absolute-form target (forward-proxy use) is refused", async () => {
    const res = await rawExchange(gateway, `GET http://127.0.0.1:1/v2/ HTTP/1.1\r\nHost: ${HOST}\r\nConnection: close\r\n\r\n`);
    assertRegistryError(res, 400, "UNSUPPORTED");
    await stillServes();
  });

  it("plain HTTP on the TLS port gets a 400 in registry format saying to use https://", async () => {
    const socket = net.connect(gateway.port, "127.0.0.1");
    socket.end(`GET /v2/ HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`);
    let text = "";
    socket.setEncoding("utf8").on("data", (chunk: string) => (text += chunk));
    await once(socket, "close");
    const [head = "", body = ""] = text.split("\r\n\r\n");
    assert.match(head, /^HTTP\/1\.1 400 /);
    assert.match(head, /Docker-Distribution-Api-Version: registry\/2\.0/);
    const error = JSON.parse(body).errors[0];
    assert.equal(error.code, "UNSUPPORTED");
    assert.match(error.message, /https:\/\//);
    await stillServes();
  });

  it("an IP address as SNI (what wrk and clients connecting by address send) names no site: the Host decides", async () => {
    // OpenSSL's client sends -servername as given; Node's refuses an IP address there (RFC 6066) since Node 26.
    const args = ["s_client", "-connect", `127.0.0.1:${gateway.port}`, "-servername", "127.0.0.1", "-quiet"];
    const request = `GET /v2/ HTTP/1.1\r\nHost: ${HOST}\r\nConnection: close\r\n\r\n`;
    const result = await run("openssl", args, { input: request, timeoutMs: 15_000 });
    assert.match(result.stdout, /^HTTP\/1\.1 200 /, formatRun("openssl", args, result));
  });

  it("garbage instead of HTTP gets 400 in registry format", async () => {
    assertRegistryError(await rawExchange(gateway, "HELLO\r\n\r\n"), 400, "UNSUPPORTED");
    await stillServes();
  });
});
