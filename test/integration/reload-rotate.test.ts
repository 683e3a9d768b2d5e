// Zero-downtime certificate rotation and configuration reload, on the gateway as users run it
// (a child process driven by signals and by the `cert rotate` / `reload` commands).
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import https from "node:https";
import type { IncomingMessage } from "node:http";
import type { Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import * as tls from "node:tls";
import { cli, startGatewayProcess, type GatewayProcess } from "../helpers/cli.js";
import { gatewayRequest } from "../helpers/gateway.js";
import { scrape, valueOf } from "../helpers/metrics.js";
import { freePort } from "../helpers/ports.js";
import { formatRun, waitFor, type RunResult } from "../helpers/process.js";
import { startRegistry, type Registry } from "../helpers/registry.js";
import { finishUpload, patchChunked, startUpload } from "../helpers/upload.js";

const HUB = "hub.registry.test";
const TEAM = "team.registry.test";

/** The serial of the certificate a new TLS connection is given for `servername`. */
function servedSerial(port: number, servername: string, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: "127.0.0.1", port, servername, ca }, () => {
      resolve(socket.getPeerCertificate().serialNumber);
      socket.end();
    });
    socket.on("error", reject);
  });
}

interface Traffic {
  ok: number;
  failures: string[];
  /** Keep-alive sockets: when each first and last carried a request. */
  sockets: Map<Socket, { first: number; last: number }>;
  stop(): Promise<void>;
}

/** Requests back to back until stopped: one loop over keep-alive connections, one opening a new connection each time. */
function startTraffic(port: number, ca: string, host: string): Traffic {
  const keepAlive = new https.Agent({ keepAlive: true, maxSockets: 2, ca });
  const traffic: Traffic = { ok: 0, failures: [], sockets: new Map(), stop: async () => {} };
  let running = true;
  const get = (agent: https.Agent | false) =>
    new Promise<void>((resolve) => {
      const req = https.get(
        { host: "127.0.0.1", port, path: "/v2/", servername: host, ca, agent, headers: { host: `${host}:${port}` } },
        (res: IncomingMessage) => {
          res.resume();
          res.on("end", () => {
            if (res.statusCode === 200) traffic.ok++;
            else traffic.failures.push(`status ${res.statusCode}`);
            if (agent) {
              const seen = traffic.sockets.get(res.socket) ?? { first: Date.now(), last: 0 };
              seen.last = Date.now();
              traffic.sockets.set(res.socket, seen);
            }
            resolve();
          });
        },
      );
      req.on("error", (err) => {
        traffic.failures.push(`${agent ? "keep-alive" : "new connection"}: ${err.message}`);
        resolve();
      });
    });
  const loop = async (agent: https.Agent | false) => {
    while (running) await get(agent);
  };
  const loops = [loop(keepAlive), loop(keepAlive), loop(false)];
  traffic.stop = async () => {
    running = false;
    await Promise.all(loops);
    keepAlive.destroy();
  };
  return traffic;
}

function assertRan(args: readonly string[], result: RunResult, code = 0): void {
  assert.equal(result.code, code, formatRun("registry-gateway", args, result));
}

describe("rotation and reload in a running gateway", () => {
  let dir: string;
  let registry: Registry;
  let configPath: string;
  let dataDir: string;
  let httpsPort: number;
  let adminPort: number;
  let gateway: GatewayProcess;
  let caPem: string;

  const configText = (extra: { sites?: string[]; top?: string[] } = {}) =>
    [
      `listen: 127.0.0.1:${httpsPort}`,
      `admin: { listen: "127.0.0.1:${adminPort}" }`,
      `dataDir: ${dataDir}`,
      "timeouts: { drain: 5s }",
      ...(extra.top ?? []),
      "sites:",
      "  - name: hub",
      `    hosts: [${HUB}]`,
      `    backend: ${registry.url}`,
      ...(extra.sites ?? []),
      "",
    ].join("\n");

  const sighupAndWait = async (message: RegExp) => {
    // By time, not position: the process helper keeps only the last lines of output.
    const sentAt = new Date().toISOString();
    process.kill(gateway.process.pid, "SIGHUP");
    return waitFor(() => gateway.logs().find((line) => line.time >= sentAt && message.test(String(line.msg))), {
      timeoutMs: 10_000,
      what: `a log line matching ${message}`,
    });
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "rg-rotate-"));
    dataDir = join(dir, "data");
    configPath = join(dir, "gateway.yaml");
    [registry, httpsPort, adminPort] = await Promise.all([startRegistry(), freePort(), freePort()]);
    await writeFile(configPath, configText());
    gateway = await startGatewayProcess(configPath);
    caPem = await readFile(gateway.caFile!, "utf8");
  });

  after(async () => {
    await gateway?.process.stop();
    await registry?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("cert rotate under continuous traffic and an upload in flight: zero failures, new handshakes get the new serial", async () => {
    const before = await servedSerial(httpsPort, HUB, caPem);
    const target = { port: httpsPort, caPem, host: HUB };
    const location = await startUpload(target, "rotate/app");
    // 24 × 64 KiB, 100 ms apart: the PATCH is in flight for ~2.4 s, across the rotation.
    const upload = patchChunked(target, location, { bytes: 24 * 64 * 1024, chunkSize: 64 * 1024, delayMs: 100 });
    const traffic = startTraffic(httpsPort, caPem, HUB);
    await new Promise((resolve) => setTimeout(resolve, 600));

    const rotationStarted = Date.now();
    const args = ["cert", "rotate", "--config", configPath, "--site", HUB];
    const rotated = await cli(args);
    const rotationDone = Date.now();
    assertRan(args, rotated);
    assert.match(rotated.stdout, /rotated by the running gateway \(admin listener 127\.0\.0\.1:\d+\)/);
    const line = new RegExp(`^hub \\(generated\\): rotated, serial ${before} -> ([0-9A-F]+), expires (\\S+): new certificate issued by the local CA$`, "m");
    const [, newSerial, notAfter] = line.exec(rotated.stdout) ?? assert.fail(rotated.stdout);

    await new Promise((resolve) => setTimeout(resolve, 400));
    const after = await servedSerial(httpsPort, HUB, caPem);
    const patched = await upload;
    await traffic.stop();

    assert.equal(after, newSerial, "a new connection gets the rotated certificate");
    assert.notEqual(after, before);
    assert.deepEqual(traffic.failures, [], "no request failed");
    assert.ok(traffic.ok > 20, `requests kept flowing (${traffic.ok})`);
    const spanning = [...traffic.sockets.values()].filter((s) => s.first < rotationStarted && s.last > rotationDone);
    assert.ok(spanning.length > 0, "a keep-alive connection opened before the rotation carried requests after it");
    assert.equal(patched.status, 202, "the upload in flight completed");
    assert.equal((await finishUpload(target, patched.location!, patched.digest)).status, 201);

    // The not-after metric follows the store, so it shows the replacement at once.
    const samples = await scrape(adminPort);
    const metric = valueOf(samples, "registry_gateway_certificate_not_after_timestamp_seconds", { site: "hub", host: HUB });
    assert.equal(metric, Math.floor(new Date(notAfter!).getTime() / 1000));
  });

  it("SIGHUP with a broken configuration keeps serving the old one and logs every error", async () => {
    await writeFile(configPath, configText({ sites: ["    bakend: http://127.0.0.1:1"] }));
    const failed = await sighupAndWait(/configuration reload failed/);
    assert.match(String(failed.errors), /gateway\.yaml:\d+:\d+ sites\[0\]\.bakend: unknown key "bakend"/);
    assert.equal((await gatewayRequest(httpsPort, caPem, HUB, { path: "/v2/" })).status, 200);
    assert.equal(valueOf(await scrape(adminPort), "registry_gateway_config_reloads_total", { result: "failure" }), 1);
  });

  it("SIGHUP adding a site makes it routable without a restart; an upload in flight finishes on the old state", async () => {
    await writeFile(configPath, configText());
    assert.equal((await gatewayRequest(httpsPort, caPem, TEAM, { path: "/v2/", expectCertFor: HUB })).status, 421);
    const target = { port: httpsPort, caPem, host: HUB };
    const location = await startUpload(target, "reload/app");
    const upload = patchChunked(target, location, { bytes: 12 * 64 * 1024, chunkSize: 64 * 1024, delayMs: 100 });
    await new Promise((resolve) => setTimeout(resolve, 300));

    await writeFile(configPath, configText({ sites: ["  - name: team", `    hosts: [${TEAM}]`, `    backend: ${registry.url}`] }));
    await sighupAndWait(/configuration reloaded/);
    const team = await gatewayRequest(httpsPort, caPem, TEAM, { path: "/v2/" });
    assert.equal(team.status, 200, "the new site answers, with a certificate valid for its name");
    assert.match(team.peerNames, /DNS:team\.registry\.test/);

    const patched = await upload;
    assert.equal(patched.status, 202);
    assert.equal((await finishUpload(target, patched.location!, patched.digest)).status, 201);
    assert.equal(valueOf(await scrape(adminPort), "registry_gateway_config_reloads_total", { result: "success" }), 1);
  });

  it("reload prints the gateway's error lines and exits non-zero; a good file reloads and names restart-only keys", async () => {
    const htpasswd = join(dir, "htpasswd");
    await writeFile(htpasswd, "admin:not-a-hash-the-gateway-knows\n");
    const withAuth = (file: string) => configText({ sites: ["    auth:", "      type: htpasswd", `      htpasswd: ${file}`] });
    await writeFile(configPath, withAuth(htpasswd));
    const args = ["reload", "--config", configPath];
    const failed = await cli(args);
    assertRan(args, failed, 1);
    assert.match(failed.stderr, /^reload failed; the gateway keeps serving its current configuration:$/m);
    assert.match(failed.stderr, new RegExp(`${htpasswd}:1`), "the error names the file and line");
    assert.equal((await gatewayRequest(httpsPort, caPem, TEAM, { path: "/v2/" })).status, 200, "the last good configuration serves");

    await writeFile(configPath, configText({ top: ["tls: { minVersion: TLSv1.3 }"] }));
    const reloaded = await cli(args);
    assertRan(args, reloaded);
    assert.equal(reloaded.stdout, "reloaded: sites hub\n");
    assert.equal(reloaded.stderr, "warning: tls.minVersion changed, but only a restart applies it\n");
    assert.equal((await gatewayRequest(httpsPort, caPem, TEAM, { path: "/v2/", expectCertFor: HUB })).status, 421, "team is gone again");
  });

  it("without a running gateway, cert rotate rotates on disk for the next start", async () => {
    await gateway.process.stop();
    const leaf = join(dataDir, "certs", "hub.crt");
    const before = new X509Certificate(await readFile(leaf)).serialNumber;
    const args = ["cert", "rotate", "--config", configPath];
    const rotated = await cli(args);
    assertRan(args, rotated);
    assert.match(rotated.stdout, /^no gateway answers at 127\.0\.0\.1:\d+: rotating in .*; the next start serves the result$/m);
    const after = new X509Certificate(await readFile(leaf)).serialNumber;
    assert.notEqual(after, before);
    assert.match(rotated.stdout, new RegExp(`^hub \\(generated\\): rotated, serial ${before} -> ${after}, `, "m"));
  });
});
