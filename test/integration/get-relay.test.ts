// Blob and manifest GETs are relayed socket to socket (src/proxy/get-relay.ts). A real registry
// only ever answers them plainly (a Content-Length body), which every pull test covers; this backend answers in
// every other way too, byte for byte as scripted, and records each connection and each request on it.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import type { ClientRequest, IncomingHttpHeaders, IncomingMessage } from "node:http";
import https from "node:https";
import net from "node:net";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { startTestGateway, type TestGateway } from "../helpers/gateway.js";

const HOST = "relay.test";
const blobPath = (name: string) => `/v2/relay/${name}/blobs/sha256:${"a".repeat(64)}`;

interface Seen {
  connection: number;
  head: string;
}

/** Answers each request head by the repository name in its target; `null` answers nothing. */
type Script = (socket: net.Socket, method: string) => Promise<void> | void;

function startScriptedBackend(scripts: Record<string, Script>) {
  const seen: Seen[] = [];
  const closed: number[] = [];
  let connections = 0;
  const server = net.createServer((socket) => {
    const connection = ++connections;
    let pending = Buffer.alloc(0);
    socket.on("close", () => closed.push(connection));
    socket.on("error", () => {});
    socket.on("data", (data) => {
      pending = Buffer.concat([pending, data]);
      for (let end = pending.indexOf("\r\n\r\n"); end >= 0; end = pending.indexOf("\r\n\r\n")) {
        const head = pending.subarray(0, end).toString("latin1");
        pending = pending.subarray(end + 4);
        seen.push({ connection, head });
        const [, method = "", name = ""] = /^(GET|HEAD) \/v2\/relay\/([a-z0-9-]+)\//.exec(head) ?? [];
        const script = scripts[name];
        if (script) void script(socket, method);
        else socket.end("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
      }
    });
  });
  return {
    seen,
    closed,
    connections: () => connections,
    listen: () => new Promise<string>((resolve) => server.listen(0, "127.0.0.1", () => resolve(`http://127.0.0.1:${(server.address() as net.AddressInfo).port}`))),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

const BODY = Buffer.alloc(3 * 1024 * 1024 + 17, 7);
const digest = (bytes: Buffer) => createHash("sha256").update(bytes).digest("hex");

interface PullOptions {
  /** Site host name (SNI and Host); the single-backend site's by default. */
  host?: string;
  method?: "GET" | "HEAD";
  /** Called with the first body bytes; may stop the exchange. */
  onFirstBytes?: (req: ClientRequest, res: IncomingMessage) => void;
}

/** A request whose body is read as it comes. Resolves with what arrived and how it ended (status 0: no answer). */
function pull(gateway: TestGateway, path: string, { host = HOST, method = "GET", onFirstBytes }: PullOptions = {}) {
  return new Promise<{ status: number; headers: IncomingHttpHeaders; body: Buffer; complete: boolean }>((resolve) => {
    const req = https.request({ host: "127.0.0.1", port: gateway.port, method, path, servername: host, ca: gateway.caPem, headers: { host }, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      let first = true;
      res.on("data", (chunk: Buffer) => {
        chunks.push(chunk);
        if (first && onFirstBytes) onFirstBytes(req, res);
        first = false;
      });
      const done = () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks), complete: res.complete });
      res.on("end", done);
      res.on("error", done);
      res.on("aborted", done);
    });
    req.on("error", () => resolve({ status: 0, headers: {}, body: Buffer.alloc(0), complete: false }));
    req.end();
  });
}

describe("blob and manifest GETs relayed socket to socket", () => {
  let gateway: TestGateway;
  const staleServed = new WeakMap<net.Socket, number>();
  let hugeWritten = 0;
  const backend = startScriptedBackend({
    plain: (s, method) => {
      const head = Buffer.from(`HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: ${BODY.length}\r\n\r\n`);
      s.write(method === "HEAD" ? head : Buffer.concat([head, BODY]));
    },
    chunked: (s) => {
      s.write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
    },
    "bad-value": (s) => void s.write("HTTP/1.1 200 OK\r\nX-Odd: a\x01b\r\nContent-Length: 2\r\n\r\nok"),
    surplus: (s) => void s.write("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nfour and more that is not a response"),
    "not-modified": (s) => void s.write('HTTP/1.1 304 Not Modified\r\nETag: "x"\r\n\r\n'),
    "close-delimited": (s) => void s.end("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end"),
    dies: async (s) => {
      s.write(`HTTP/1.1 200 OK\r\nContent-Length: ${BODY.length}\r\n\r\n`);
      s.write(BODY.subarray(0, 100_000));
      await sleep(50);
      s.destroy();
    },
    silent: () => {},
    // Answers, and keeps the connection; the next request on it finds it closed (a backend's idle timeout).
    stale: (s) => {
      const served = (staleServed.get(s) ?? 0) + 1;
      staleServed.set(s, served);
      if (served === 1) s.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
      else s.destroy();
    },
    // Answers, then sends a second answer nobody asked for on the idle connection.
    unasked: async (s) => {
      s.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
      await sleep(30);
      s.write("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nEVIL");
    },
    "lf-head": (s) => void s.write("HTTP/1.1 200 OK\nContent-Length: 2\n\nok"),
    huge: async (s) => {
      // 1 GiB announced; written while the socket takes it, until the gateway hangs up.
      s.write(`HTTP/1.1 200 OK\r\nContent-Length: ${1024 ** 3}\r\n\r\n`);
      const chunk = Buffer.alloc(64 * 1024, 1);
      while (!s.destroyed) {
        hugeWritten += chunk.length;
        if (!s.write(chunk)) await new Promise((resolve) => s.once("drain", resolve).once("close", resolve));
      }
    },
  });

  before(async () => {
    const url = await backend.listen();
    gateway = await startTestGateway({ sites: [{ hosts: [HOST], backend: url }], timeouts: { idle: "1s" } });
  });

  after(async () => {
    await gateway?.stop();
    await backend.close();
  });

  const requestsTo = (name: string) => backend.seen.filter((s) => s.head.includes(`/v2/relay/${name}/`));

  it("relays a Content-Length body byte for byte and reuses the backend connection", async () => {
    const first = await pull(gateway, blobPath("plain"));
    const second = await pull(gateway, blobPath("plain"));
    for (const res of [first, second]) {
      assert.equal(res.status, 200);
      assert.equal(res.headers["content-length"], String(BODY.length));
      assert.equal(digest(res.body), digest(BODY));
    }
    const [a, b] = requestsTo("plain");
    assert.equal(a!.connection, b!.connection, "one keep-alive connection for both");
    assert.match(a!.head, new RegExp(`^GET ${blobPath("plain")} HTTP/1.1\r\n`));
    assert.match(a!.head, /\r\nx-forwarded-for: 127\.0\.0\.1\r\n/);
    assert.match(a!.head, /\r\nx-request-id: /);
    // The relay's own request head: Node's client (the general path) would have added Connection: keep-alive.
    assert.doesNotMatch(a!.head, /\r\nconnection:/i);
  });

  it("relays a manifest GET the same way; a HEAD (whose length frames no body) goes through Node's client", async () => {
    const manifest = await pull(gateway, "/v2/relay/plain/manifests/v1");
    assert.equal(manifest.status, 200);
    assert.equal(digest(manifest.body), digest(BODY));
    assert.doesNotMatch(requestsTo("plain").at(-1)!.head, /\r\nconnection:/i);
    const head = await pull(gateway, blobPath("plain"), { method: "HEAD" });
    assert.equal(head.status, 200);
    assert.equal(head.body.length, 0);
    assert.match(requestsTo("plain").at(-1)!.head, /^HEAD .*\r\nconnection: keep-alive/is);
  });

  it("hands a chunked answer to Node's client: decoded for the client, the backend asked once", async () => {
    const res = await pull(gateway, blobPath("chunked"));
    assert.equal(res.status, 200);
    assert.equal(res.body.toString(), "hello world");
    assert.equal(requestsTo("chunked").length, 1);
  });

  it("refuses a head with a control character in a value: 502, the backend asked once", async () => {
    const res = await pull(gateway, blobPath("bad-value"));
    assert.equal(res.status, 502);
    assert.match(res.body.toString(), /UNAVAILABLE/);
    assert.equal(requestsTo("bad-value").length, 1);
  });

  it("relays exactly Content-Length bytes of a longer answer and does not reuse that connection", async () => {
    const res = await pull(gateway, blobPath("surplus"));
    assert.equal(res.status, 200);
    assert.equal(res.body.toString(), "four");
    await sleep(50);
    const surplusConnection = requestsTo("surplus")[0]!.connection;
    assert.ok(backend.closed.includes(surplusConnection), "the gateway closed the connection the surplus came on");
    const next = await pull(gateway, blobPath("plain"));
    assert.equal(next.status, 200);
    assert.notEqual(requestsTo("plain").at(-1)!.connection, surplusConnection);
  });

  it("relays a 304 without a body, and the connection serves the next GET", async () => {
    const res = await pull(gateway, blobPath("not-modified"));
    assert.equal(res.status, 304);
    assert.equal(res.headers.etag, '"x"');
    const connection = requestsTo("not-modified")[0]!.connection;
    assert.doesNotMatch(requestsTo("not-modified")[0]!.head, /\r\nconnection:/i, "sent by the relay");
    await pull(gateway, blobPath("plain"));
    assert.equal(requestsTo("plain").at(-1)!.connection, connection);
  });

  it("hands an answer delimited by the connection's end to Node's client", async () => {
    const res = await pull(gateway, blobPath("close-delimited"));
    assert.equal(res.status, 200);
    assert.equal(res.body.toString(), "until the end");
    assert.equal(requestsTo("close-delimited").length, 1);
  });

  it("hands a head with bare LF line ends to Node's client at once (502), not after the idle timeout", async () => {
    const started = performance.now();
    const res = await pull(gateway, blobPath("lf-head"));
    assert.equal(res.status, 502);
    assert.ok(performance.now() - started < 800, `answered after ${performance.now() - started} ms`);
  });

  it("cuts the client when the backend dies in the middle of the body", async () => {
    const res = await pull(gateway, blobPath("dies"));
    assert.equal(res.status, 200);
    assert.equal(res.complete, false);
    assert.ok(res.body.length < BODY.length);
  });

  it("answers 504 when the backend says nothing for the idle timeout", async () => {
    const started = performance.now();
    const res = await pull(gateway, blobPath("silent"));
    assert.equal(res.status, 504);
    assert.ok(performance.now() - started >= 900);
    await sleep(50);
    assert.ok(backend.closed.includes(requestsTo("silent")[0]!.connection), "the silent connection is closed");
  });

  it("sends a GET once more, on a new connection, when the pooled one turns out closed before any answer", async () => {
    const first = await pull(gateway, blobPath("stale"));
    assert.equal(first.body.toString(), "ok");
    const second = await pull(gateway, blobPath("stale"));
    assert.equal(second.status, 200);
    assert.equal(second.body.toString(), "ok");
    const [a, b, c] = requestsTo("stale");
    assert.equal(a!.connection, b!.connection, "the second GET went out on the pooled connection");
    assert.notEqual(c!.connection, b!.connection, "and once more on a new one");
    assert.equal(requestsTo("stale").length, 3);
  });

  it("drops a pooled connection that sends bytes nobody asked for: they never reach a client", async () => {
    const first = await pull(gateway, blobPath("unasked"));
    assert.equal(first.body.toString(), "ok");
    await sleep(100);
    const connection = requestsTo("unasked")[0]!.connection;
    assert.ok(backend.closed.includes(connection), "the gateway closed it");
    const next = await pull(gateway, blobPath("plain"));
    assert.equal(digest(next.body), digest(BODY));
    assert.notEqual(requestsTo("plain").at(-1)!.connection, connection);
  });

  it("holds back a backend whose client stops reading, and closes it when the client leaves", async () => {
    const before = gateway.logs.length;
    const res = await pull(gateway, blobPath("huge"), {
      onFirstBytes: (req, incoming) => {
        incoming.pause();
        setTimeout(() => req.destroy(), 500);
      },
    });
    assert.equal(res.complete, false);
    // Socket buffers on both sides and the relay's one read buffer: megabytes, not the gigabyte announced.
    assert.ok(hugeWritten < 32 * 1024 * 1024, `the backend wrote ${hugeWritten} bytes`);
    await sleep(200);
    const connection = requestsTo("huge")[0]!.connection;
    assert.ok(backend.closed.includes(connection), "the backend connection is closed");
    const access = gateway.logs.slice(before).find((line) => typeof line.path === "string" && (line.path as string).includes("/relay/huge/"));
    assert.ok(access, "the pull is logged");
  });

  it("counts no backend connection as in use once every exchange above is over, whichever way it ended", async () => {
    await sleep(100);
    assert.equal(gateway.upstreamSocketsInUse(), 0);
  });
});

describe("a group member's answer that is passed over and then fails leaves the next member's answer alone", () => {
  const GROUP = "group.relay.test";
  let gateway: TestGateway;
  /** Member a: a 404 (passed over) whose body breaks off in one way or another. */
  const first = startScriptedBackend({
    "cut-404": async (s) => {
      s.write("HTTP/1.1 404 Not Found\r\nContent-Length: 1000\r\n\r\nabc");
      await sleep(300);
      s.destroy();
    },
    "reset-chunked-404": async (s) => {
      s.write("HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n");
      await sleep(300);
      s.resetAndDestroy();
    },
    "stalled-404": (s) => void s.write("HTTP/1.1 404 Not Found\r\nContent-Length: 1000\r\n\r\nabc"),
  });
  /**
   * Member b: the blob, sent slowly, so that member a's failure comes in the middle of it: ten bytes, the first
   * five at once, then one every `pauseMs` (less than the idle timeout: b itself never looks stalled).
   */
  const slowly = (pauseMs: number): Script => async (s) => {
    s.write("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n01234");
    for (const digit of "56789") {
      await sleep(pauseMs);
      s.write(digit);
    }
  };
  const second = startScriptedBackend({ "cut-404": slowly(150), "reset-chunked-404": slowly(150), "stalled-404": slowly(350) });

  before(async () => {
    const [a, b] = [await first.listen(), await second.listen()];
    gateway = await startTestGateway({
      sites: [{ hosts: [GROUP], group: [{ name: "a", backend: a }, { name: "b", backend: b }] }],
      timeouts: { idle: "1s" },
    });
  });

  after(async () => {
    await gateway?.stop();
    await first.close();
    await second.close();
  });

  for (const [name, how] of [
    ["cut-404", "its connection closes (relay, discarding)"],
    ["reset-chunked-404", "its connection is reset (handed to Node's client)"],
    ["stalled-404", "it stalls past the idle timeout"],
  ] as const) {
    it(`member a's 404 body breaks off — ${how} — while member b's answer is relayed: b's answer arrives whole`, async () => {
      const res = await pull(gateway, blobPath(name), { host: GROUP });
      assert.equal(res.status, 200);
      assert.equal(res.body.toString(), "0123456789");
      assert.equal(res.complete, true);
      assert.equal(first.seen.filter((seen) => seen.head.includes(`/relay/${name}/`)).length, 1);
    });
  }
});
