// The gateway itself gets its certificates from a real pebble, which validates against the
// gateway's own listeners: HTTP-01 on the plain-HTTP listener, TLS-ALPN-01 on the HTTPS listener.
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { after, before, describe, it } from "node:test";
import * as tls from "node:tls";
import { loadConfig } from "../../src/config/load.js";
import { startGateway, type RunningGateway } from "../../src/gateway.js";
import { createLogger } from "../../src/observe/log.js";
import { acmeCertificatePaths } from "../../src/tls/acme-storage.js";
import { issueLeaf, loadOrCreateCa } from "../../src/tls/selfsigned.js";
import { cli } from "../helpers/cli.js";
import { gatewayRequest } from "../helpers/gateway.js";
import { startPebble, type Pebble } from "../helpers/pebble.js";
import { freePort } from "../helpers/ports.js";
import { formatRun, waitFor } from "../helpers/process.js";
import { startRegistry, type Registry } from "../helpers/registry.js";

const HTTP01_HOSTS = ["hub.registry.test", "team.registry.test"];
const ALPN_HOSTS = ["alpn.registry.test", "alpn2.registry.test"];
const LOCAL_HOST = "local.registry.test";
const FILES_HOST = "files.registry.test";
// Test speed only: re-check a pending challenge every 100 ms instead of every second.
const FAST_POLLING = { minMs: 100, maxMs: 500, attempts: 40 };

interface Started {
  gateway: RunningGateway;
  logs: Record<string, unknown>[];
}

/** The certificate a new connection gets for `servername`, verified against `ca` only. */
function servedCertificate(port: number, servername: string, ca: string): Promise<X509Certificate> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: "127.0.0.1", port, servername, ca }, () => {
      resolve(new X509Certificate(socket.getPeerCertificate().raw));
      socket.end();
    });
    socket.on("error", reject);
  });
}

describe("ACME in the gateway, against pebble", () => {
  let dir: string;
  let configPath: string;
  let registry: Registry;
  let pebble: Pebble;
  let root: string;
  let ports: { https: number; http: number; admin: number };
  let running: Started | undefined;

  async function start(): Promise<Started> {
    const logs: Record<string, unknown>[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        for (const line of chunk.toString().split("\n")) if (line.trim()) logs.push(JSON.parse(line));
        done();
      },
    });
    const config = await loadConfig(configPath);
    const gateway = await startGateway(config, createLogger(config.log, sink), { acme: { statusPolling: FAST_POLLING } });
    return { gateway, logs };
  }

  /** Every ACME site has a certificate from pebble in service (or an order failed: then say why). */
  async function acmeCertificatesInService(gateway: RunningGateway): Promise<void> {
    await waitFor(
      () => {
        const status = gateway.acme()!.status();
        const failed = status.find((site) => site.lastError);
        if (failed) throw new Error(`${failed.site}: ${failed.lastError}`);
        return status.every((site) => site.certificate !== null);
      },
      { timeoutMs: 30_000, intervalMs: 50, what: "certificates from pebble for every ACME site" },
    );
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "rg-acme-gateway-"));
    const [httpsPort, httpPort, adminPort] = await Promise.all([freePort(), freePort(), freePort()]);
    ports = { https: httpsPort, http: httpPort, admin: adminPort };
    // pebble validates where the gateway listens: httpPort for HTTP-01, tlsPort for TLS-ALPN-01.
    [registry, pebble] = await Promise.all([startRegistry(), startPebble({ httpPort, tlsPort: httpsPort })]);
    root = await pebble.issuingRoot();
    const acme = (challenge: string) =>
      `{ source: acme, directory: "${pebble.directoryUrl}", caFile: "${pebble.caFile}", challenge: ${challenge} }`;
    configPath = join(dir, "gateway.yaml");
    // A certificate of our own that expires in 10 days: under the 30-day warning threshold of `files`.
    const ownCa = await loadOrCreateCa(join(dir, "own-ca"), 30);
    const expiring = await issueLeaf(ownCa, [FILES_HOST], 10);
    await Promise.all([writeFile(join(dir, "files.crt"), expiring.certPem), writeFile(join(dir, "files.key"), expiring.keyPem)]);
    await writeFile(
      configPath,
      [
        `listen: 127.0.0.1:${httpsPort}`,
        `http: { listen: "127.0.0.1:${httpPort}" }`,
        `admin: { listen: "127.0.0.1:${adminPort}" }`,
        `dataDir: ${join(dir, "data")}`,
        "log: { level: debug }",
        "sites:",
        "  - name: http01",
        `    hosts: [${HTTP01_HOSTS.join(", ")}]`,
        `    backend: ${registry.url}`,
        `    tls: ${acme("http-01")}`,
        "  - name: alpn",
        `    hosts: [${ALPN_HOSTS.join(", ")}]`,
        `    backend: ${registry.url}`,
        `    tls: ${acme("tls-alpn-01")}`,
        "  - name: local",
        `    hosts: [${LOCAL_HOST}]`,
        `    backend: ${registry.url}`,
        "  - name: files",
        `    hosts: [${FILES_HOST}]`,
        `    backend: ${registry.url}`,
        `    tls: { source: files, cert: "${join(dir, "files.crt")}", key: "${join(dir, "files.key")}" }`,
        "",
      ].join("\n"),
    );
  });

  after(async () => {
    await running?.gateway.shutdown(1000);
    await Promise.all([pebble?.stop(), registry?.stop()]);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("issues for two hosts over HTTP-01 and two over TLS-ALPN-01, served and chaining to pebble's root", async () => {
    const ordersBefore = pebble.orders();
    running = await start();
    const { gateway } = running;
    // Served from the start, with the generated fallback, until pebble's certificates arrive.
    const early = await servedCertificate(ports.https, HTTP01_HOSTS[0]!, await localCa(gateway));
    assert.match(early.issuer, /registry-gateway local CA/);

    await acmeCertificatesInService(gateway);
    assert.equal(pebble.orders() - ordersBefore, 2, "one order per ACME site");
    for (const host of [...HTTP01_HOSTS, ...ALPN_HOSTS]) {
      const res = await gatewayRequest(ports.https, root, host, { path: "/v2/" });
      assert.equal(res.status, 200, `${host} verifies against pebble's root alone and is routed`);
    }
    const hub = await servedCertificate(ports.https, HTTP01_HOSTS[0]!, root);
    assert.equal(hub.subjectAltName, "DNS:hub.registry.test, DNS:team.registry.test");
    assert.equal((await servedCertificate(ports.https, ALPN_HOSTS[1]!, root)).subjectAltName, "DNS:alpn.registry.test, DNS:alpn2.registry.test");
    // The generated site keeps its local certificate.
    assert.equal((await gatewayRequest(ports.https, await localCa(gateway), LOCAL_HOST, { path: "/v2/" })).status, 200);
    // The plain-HTTP listener redirects everything but challenges.
    const redirect = await plainGet(ports.http, HTTP01_HOSTS[0]!, "/v2/");
    assert.equal(redirect.status, 301);
    assert.equal(redirect.location, `https://hub.registry.test:${ports.https}/v2/`);
    // Expiry is checked at start: only the files certificate is under its threshold.
    const warnings = running.logs.filter((line) => line.level === "warn" && /due for renewal/.test(String(line.msg)));
    assert.deepEqual(warnings.map((w) => [w.site, w.source, w.daysLeft]), [["files", "files", 9]]);
  });

  it("cert status lists source, serial and days left for the generated and the ACME sites", async () => {
    const args = ["cert", "status", "--config", configPath];
    const table = await cli(args);
    assert.equal(table.code, 0, formatRun("registry-gateway", args, table));
    const served = await servedCertificate(ports.https, ALPN_HOSTS[0]!, root);
    const row = table.stdout.split("\n").find((line) => line.startsWith("alpn ") && line.includes(ALPN_HOSTS[0]!));
    assert.match(row ?? "", new RegExp(`^alpn\\s+alpn\\.registry\\.test\\s+acme\\s+Pebble Intermediate CA \\w+\\s+${served.serialNumber}\\s+.*\\s+(\\d+)\\s+alpn\\.registry\\.test, alpn2\\.registry\\.test$`));
    assert.match(table.stdout, /^local\s+local\.registry\.test\s+generated\s+registry-gateway local CA \w+\s+[0-9A-F]+\s/m);

    const json = await cli([...args, "--json"]);
    const rows = JSON.parse(json.stdout) as { site: string; host: string; source: string; certificate: { serial: string; daysLeft: number } }[];
    assert.deepEqual(
      rows.map((r) => [r.site, r.host, r.source]),
      [
        ...HTTP01_HOSTS.map((h) => ["http01", h, "acme"]),
        ...ALPN_HOSTS.map((h) => ["alpn", h, "acme"]),
        ["local", LOCAL_HOST, "generated"],
        ["files", FILES_HOST, "files"],
      ],
    );
    assert.equal(rows.pop()?.certificate.daysLeft, 9);
    // pebble issues for five years, the local CA for one.
    for (const r of rows) assert.ok(Number.isInteger(r.certificate.daysLeft) && r.certificate.daysLeft >= 364, `${r.host}: ${r.certificate.daysLeft}`);
    assert.equal(rows.find((r) => r.host === ALPN_HOSTS[0])?.certificate.serial, served.serialNumber);
  });

  it("config/examples/acme-pebble.yaml passes config check with ACME_CA_FILE set", async () => {
    const args = ["config", "check", "config/examples/acme-pebble.yaml"];
    const checked = await cli(args, { env: { ACME_CA_FILE: pebble.caFile } });
    assert.equal(checked.code, 0, formatRun("registry-gateway", args, checked));
  });

  it("cert rotate re-issues an ACME site in the running gateway; new handshakes get the new certificate", async () => {
    const { gateway } = running!;
    const before = await servedCertificate(ports.https, ALPN_HOSTS[0]!, root);
    const outcome = await gateway.rotateCertificates(ALPN_HOSTS[0]);
    assert.equal(outcome.ok, true, JSON.stringify(outcome));
    const [result] = outcome.certificates;
    assert.equal(result?.outcome, "rotated");
    assert.equal(result?.previousSerial, before.serialNumber);
    const after = await servedCertificate(ports.https, ALPN_HOSTS[0]!, root);
    assert.equal(after.serialNumber, result?.serial);
    assert.notEqual(after.serialNumber, before.serialNumber);
  });

  it("a restart reuses the stored certificates: no new order", async () => {
    const served = await servedCertificate(ports.https, HTTP01_HOSTS[1]!, root);
    await running!.gateway.shutdown(1000);
    const ordersBefore = pebble.orders();
    running = await start();
    assert.equal((await servedCertificate(ports.https, HTTP01_HOSTS[1]!, root)).serialNumber, served.serialNumber, "served from the first handshake");
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(pebble.orders(), ordersBefore);
    assert.deepEqual(running.gateway.acme()!.status().map((site) => site.orders), [0, 0]);
  });

  it("cert rotate with no gateway running orders on temporary listeners; the next start serves the result", async () => {
    const before = await servedCertificate(ports.https, ALPN_HOSTS[0]!, root);
    await running!.gateway.shutdown(1000);
    running = undefined;
    const args = ["cert", "rotate", "--config", configPath, "--site", "alpn"];
    const rotated = await cli(args);
    assert.equal(rotated.code, 0, formatRun("registry-gateway", args, rotated));
    assert.match(rotated.stdout, /^no gateway answers at 127\.0\.0\.1:\d+: rotating in /m);
    const stored = new X509Certificate(await readFile(acmeCertificatePaths(join(dir, "data"), "alpn").certPath));
    assert.notEqual(stored.serialNumber, before.serialNumber);
    assert.match(rotated.stdout, new RegExp(`^alpn \\(acme\\): rotated, serial ${before.serialNumber} -> ${stored.serialNumber}, `, "m"));

    running = await start();
    assert.equal((await servedCertificate(ports.https, ALPN_HOSTS[0]!, root)).serialNumber, stored.serialNumber);
  });
});

function localCa(gateway: RunningGateway): Promise<string> {
  return readFile(gateway.caFile!, "utf8");
}

function plainGet(port: number, host: string, path: string): Promise<{ status: number; location: string | undefined }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: "127.0.0.1", port, path, headers: { host }, agent: false }, (res) => {
        res.resume();
        resolve({ status: res.statusCode ?? 0, location: res.headers.location });
      })
      .on("error", reject);
  });
}
