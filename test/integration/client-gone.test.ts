// A client that leaves while the gateway is still deciding (a password check, a rate limit)
// must not have its request run by the backend afterwards, unseen by the access log.
import assert from "node:assert/strict";
import { once } from "node:events";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import tls from "node:tls";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import { startTestGateway, type TestGateway } from "../helpers/gateway.js";
import { htpasswdLine } from "../helpers/htpasswd.js";
import { waitFor } from "../helpers/process.js";

const HOST = "hub.registry.test";
const DIGEST = `sha256:${"e".repeat(64)}`;

describe("a client gone before forwarding", () => {
  let workDir: string;
  let backend: http.Server;
  const received: string[] = [];
  let gateway: TestGateway;

  before(async () => {
    workDir = await mkdtemp(join(tmpdir(), "rg-client-gone-"));
    backend = http.createServer((req, res) => {
      received.push(`${req.method} ${req.url}`);
      req.resume();
      req.on("end", () => res.writeHead(202).end());
    });
    backend.listen(0, "127.0.0.1");
    await once(backend, "listening");
    const htpasswd = join(workDir, "htpasswd");
    // Cost 12: the password check takes long enough for the client to be gone before it ends.
    await writeFile(htpasswd, `${await htpasswdLine("admin", "Admin123", 12)}\n`);
    gateway = await startTestGateway({
      sites: [
        {
          hosts: [HOST],
          backend: `http://127.0.0.1:${(backend.address() as AddressInfo).port}`,
          auth: { type: "htpasswd", htpasswd, rules: [{ who: ["admin"], repositories: ["**"], actions: ["pull", "push", "delete"] }] },
        },
      ],
    });
  });

  after(async () => {
    await gateway?.stop();
    backend?.closeAllConnections();
    backend?.close();
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  it("sends nothing to the backend, and the request is still observed", async () => {
    const socket = tls.connect({ host: "127.0.0.1", port: gateway.port, servername: HOST, ca: gateway.caPem });
    await once(socket, "secureConnect");
    const authorization = `Basic ${Buffer.from("admin:Admin123").toString("base64")}`;
    socket.write(`DELETE /v2/team/app/manifests/${DIGEST} HTTP/1.1\r\nHost: ${HOST}:${gateway.port}\r\nAuthorization: ${authorization}\r\n\r\n`);
    await sleep(30); // the request is in the password check
    socket.destroy();
    // The access-log line is written once the request is settled: after the check, and after the
    // backend's answer had it been forwarded. However long a loaded machine takes over bcrypt cost 12.
    await waitFor(() => gateway.logs.find((l) => l.msg === "request" && l.method === "DELETE"), {
      timeoutMs: 20_000,
      intervalMs: 50,
      what: "the abandoned request's access-log line",
    });
    assert.deepEqual(received, [], "the backend ran a request whose client had gone");
    assert.equal(gateway.inFlight(), 0);
  });
});
