// The PROXY protocol behind a real L4 balancer (Debian HAProxy, `mode tcp` with send-proxy-v2 and send-proxy):
// clients on different loopback addresses get their own failed-login budgets and their own addresses in the
// access log, though every connection the gateway accepts comes from HAProxy. A trusted peer without a
// header is cut; an untrusted peer's forged header names nobody.
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import tls from "node:tls";
import { after, before, describe, it } from "node:test";
import { gatewayRequest, startTestGateway, type GatewayResponse, type TestGateway } from "../helpers/gateway.js";
import { startHaproxy, type Haproxy } from "../helpers/haproxy.js";
import { htpasswdLine } from "../helpers/htpasswd.js";
import { waitFor } from "../helpers/process.js";
import { rawExchange } from "../helpers/raw-http.js";
import { startRegistry, type Registry } from "../helpers/registry.js";

const HUB = "hub.registry.test";
const MAX_FAILURES = 2;
const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;

describe("PROXY protocol behind HAProxy", () => {
  let workDir: string;
  let registry: Registry;
  let gateway: TestGateway;
  let haproxy: Haproxy;
  /** HAProxy's frontend ports: one sending v2 headers, one v1. */
  const frontends: Record<"v1" | "v2", number> = { v1: 0, v2: 0 };

  before(async () => {
    workDir = await mkdtemp(join(tmpdir(), "rg-proxy-protocol-"));
    const htpasswd = join(workDir, "htpasswd");
    await writeFile(htpasswd, `${await htpasswdLine("v1user", "Right123")}\n${await htpasswdLine("v2user", "Right123")}\n`);
    registry = await startRegistry();
    gateway = await startTestGateway({
      // HAProxy connects from 127.0.0.1; the clients below come from other loopback addresses.
      proxyProtocol: { trustedFrom: ["127.0.0.1/32"] },
      http: { listen: "127.0.0.1:0" },
      logins: { maxFailures: MAX_FAILURES },
      sites: [
        {
          name: "hub",
          hosts: [HUB],
          backend: registry.url,
          default: true,
          auth: { type: "htpasswd", htpasswd, rules: [{ who: ["v1user", "v2user"], repositories: ["**"], actions: ["pull"] }] },
        },
      ],
    });
    haproxy = await startHaproxy([
      { servers: [gateway.port], sendProxy: "v2" },
      { servers: [gateway.port], sendProxy: "v1" },
    ]);
    [frontends.v2, frontends.v1] = haproxy.ports as [number, number];
  });

  after(async () => {
    await haproxy?.stop();
    await gateway?.stop();
    await registry?.stop();
    await rm(workDir, { recursive: true, force: true });
  });

  const wrongLogin = (port: number, user: string, localAddress: string): Promise<GatewayResponse> =>
    gatewayRequest(port, gateway.caPem, HUB, { path: "/v2/", headers: { authorization: basic(user, "Wrong123") }, localAddress });
  const accessLogSince = (from: number) => gateway.logs.slice(from).filter((entry) => "requestId" in entry && "clientIp" in entry);
  /** The access log's client addresses since `from`, once `count` lines are there (a line follows its response). */
  const loggedClients = async (from: number, count: number) => {
    await waitFor(() => accessLogSince(from).length >= count, { timeoutMs: 2000, what: `${count} access log lines` });
    return accessLogSince(from).map((entry) => entry.clientIp);
  };
  /** A request through HAProxy that ends up in the access log: whatever was logged before it, is. */
  const marker = async (from: number) => {
    assert.equal((await wrongLogin(frontends.v2, "marker", "127.0.0.9")).status, 401);
    return loggedClients(from, 1);
  };

  for (const version of ["v2", "v1"] as const) {
    it(`send-proxy${version === "v2" ? "-v2" : ""}: each client address has its own failed-login budget and is logged as itself`, async () => {
      const port = frontends[version];
      const user = `${version}user`;
      const logged = gateway.logs.length;
      for (let i = 0; i < MAX_FAILURES; i++) assert.equal((await wrongLogin(port, user, "127.0.0.2")).status, 401);
      assert.equal((await wrongLogin(port, user, "127.0.0.2")).status, 429, "127.0.0.2 used its budget up");
      // Through the same balancer, another client is not throttled by the first one's failures.
      assert.equal((await wrongLogin(port, user, "127.0.0.3")).status, 401, "127.0.0.3 has a budget of its own");
      assert.deepEqual(await loggedClients(logged, 4), ["127.0.0.2", "127.0.0.2", "127.0.0.2", "127.0.0.3"]);
    });
  }

  it("a connection from a trusted address without a PROXY header is closed before TLS", async () => {
    const logged = gateway.logs.length;
    const started = performance.now();
    await assert.rejects(gateway.request(HUB, { path: "/v2/" }), /ECONNRESET|socket disconnected|socket hang up|EPIPE/);
    // At its first bytes, not at the handshake timeout (10 s): they are not a PROXY header.
    assert.ok(performance.now() - started < 2000, `closed after ${Math.round(performance.now() - started)} ms`);
    assert.deepEqual(await marker(logged), ["127.0.0.9"], "nothing was served before the marker");
    // Said at warn level, so a balancer that sends no header is found in the log, not only as closed connections.
    const warnings = gateway.logs.slice(logged).filter((entry) => entry.level === "warn" && /PROXY protocol header/.test(String(entry.msg)));
    assert.equal(warnings.length, 1, JSON.stringify(gateway.logs.slice(logged)));
  });

  it("an untrusted peer's forged header is not read: it breaks its own TLS, and the peer is served as itself", async () => {
    const logged = gateway.logs.length;
    const forged = await new Promise<string>((resolve) => {
      const tcp = net.connect({ host: "127.0.0.1", port: gateway.port, localAddress: "127.0.0.4" }, () => {
        tcp.write("PROXY TCP4 198.51.100.7 127.0.0.1 40000 443\r\n");
        const secured = tls.connect({ socket: tcp, servername: HUB, ca: gateway.caPem }, () => resolve("TLS up"));
        secured.once("error", (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
      });
    });
    assert.notEqual(forged, "TLS up");
    const direct = await wrongLogin(gateway.port, "v1user", "127.0.0.4");
    assert.equal(direct.status, 401);
    assert.deepEqual(await loggedClients(logged, 1), ["127.0.0.4"]);
  });

  it("the plain-HTTP listener takes the header off too: redirects behind it, refuses a trusted peer without it", async () => {
    const target = { port: gateway.http!.port };
    const request = `GET /v2/ HTTP/1.1\r\nHost: ${HUB}\r\nConnection: close\r\n\r\n`;
    const proxied = await rawExchange(target, `PROXY TCP4 192.0.2.7 127.0.0.1 40000 80\r\n${request}`, { expectResponses: 1 });
    assert.equal(proxied.responses[0]?.status, 301, proxied.raw.toString());
    const bare = await rawExchange(target, request, { idleMs: 2000 });
    assert.deepEqual([bare.responses.length, bare.closed], [0, true], bare.raw.toString());
  });
});
