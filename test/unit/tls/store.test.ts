import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { once } from "node:events";
import { access, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import type { AddressInfo, Socket } from "node:net";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import * as tls from "node:tls";
import { promisify } from "node:util";
import { gatewayConfig as gatewayConfigSchema, type GatewayConfig, type SiteConfig } from "../../../src/config/schema.js";
import { issueLeaf, loadOrCreateCa, type LocalCa } from "../../../src/tls/selfsigned.js";
import { CertificateStore, loadSiteCertificates, type SiteCertificate } from "../../../src/tls/store.js";

const run = promisify(execFile);

let tmp: string;
let ca: LocalCa;
let hub: SiteCertificate;
let team: SiteCertificate;

before(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), "rg-store-"));
  ca = await loadOrCreateCa(path.join(tmp, "shared"), 30);
  hub = await siteCertificate("hub", ["hub.registry.test"], ["hub.registry.test", "127.0.0.1", "localhost"]);
  team = await siteCertificate("team", ["team.registry.test", "*.team.test"], ["team.registry.test", "*.team.test"]);
});
after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

async function siteCertificate(site: string, hosts: string[], names: string[]): Promise<SiteCertificate> {
  return { site, hosts, ...(await issueLeaf(ca, names, 10)) };
}

function serialOf(certificate: SiteCertificate): string {
  return new X509Certificate(certificate.certPem).serialNumber;
}

// ---- a TLS server that answers each line with "<servername or -> <line>" -----------------------------

async function startServer(store: CertificateStore): Promise<{ port: number; close: () => Promise<void> }> {
  const server = tls.createServer(store.serverOptions(), (socket) => {
    socket.on("error", () => undefined);
    socket.setEncoding("utf8");
    socket.on("data", (line: string) => {
      // Go clients ping the registry API first: a 404 proves they completed the handshake.
      if (line.startsWith("GET /v2/ ")) socket.end("HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n");
      else socket.write(`${socket.servername || "-"} ${line}`);
    });
  });
  // Tracked from the TCP accept on: a handshake may still be in progress when a test ends.
  const sockets = new Set<Socket>();
  server.on("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });
  store.attach(server);
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return {
    port: (server.address() as AddressInfo).port,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      server.close();
      await once(server, "close");
    },
  };
}

interface Connected {
  socket: tls.TLSSocket;
  serial: string;
  authorized: boolean;
  authorizationError: string | undefined;
}

async function connect(port: number, options: tls.ConnectionOptions = {}): Promise<Connected> {
  const socket = tls.connect({ host: "127.0.0.1", port, ca: ca.certPem, rejectUnauthorized: false, ...options });
  await once(socket, "secureConnect");
  return {
    socket,
    serial: socket.getPeerCertificate().serialNumber,
    authorized: socket.authorized,
    authorizationError: socket.authorizationError ? String(socket.authorizationError) : undefined,
  };
}

async function roundTrip(socket: tls.TLSSocket, line: string): Promise<string> {
  socket.setEncoding("utf8");
  socket.write(line);
  const [reply] = (await once(socket, "data")) as [string];
  return reply;
}

// ---- tests --------------------------------------------------------------------------------------------

describe("CertificateStore.contextFor", () => {
  test("matches exact hosts case-insensitively and ignoring a trailing dot", () => {
    const store = new CertificateStore([hub, team], "hub", "TLSv1.2");
    const teamContext = store.contextFor("team.registry.test");
    assert.notEqual(teamContext, store.contextFor("hub.registry.test"));
    assert.equal(store.contextFor("TEAM.Registry.Test."), teamContext);
  });

  test("matches a wildcard for exactly one label and otherwise falls back to the default site", () => {
    const store = new CertificateStore([hub, team], "hub", "TLSv1.2");
    const hubContext = store.contextFor("hub.registry.test");
    const teamContext = store.contextFor("team.registry.test");
    assert.equal(store.contextFor("eu.team.test"), teamContext);
    assert.equal(store.contextFor("a.b.team.test"), hubContext);
    assert.equal(store.contextFor("team.test"), hubContext);
    assert.equal(store.contextFor("unknown.example"), hubContext);
    assert.equal(store.contextFor(undefined), hubContext);
    assert.equal(store.contextFor(""), hubContext);
  });

  test("rejects a default site without a certificate and a host claimed twice", () => {
    assert.throws(() => new CertificateStore([hub, team], "nope", "TLSv1.2"), /default site "nope" has no certificate/);
    const twin = { ...team, site: "twin", hosts: ["HUB.registry.test"] };
    assert.throws(() => new CertificateStore([hub, twin], "hub", "TLSv1.2"), /"hub.registry.test" is claimed by sites "hub" and "twin"/);
  });

  test("info describes each site's leaf", () => {
    const [hubInfo, teamInfo] = new CertificateStore([hub, team], "hub", "TLSv1.2").info();
    assert.equal(hubInfo?.site, "hub");
    assert.deepEqual(hubInfo?.hosts, ["hub.registry.test"]);
    assert.equal(hubInfo?.serial, serialOf(hub));
    assert.equal(hubInfo?.subject, "CN=hub.registry.test");
    assert.equal(hubInfo?.issuer, new X509Certificate(ca.certPem).subject);
    assert.deepEqual(hubInfo?.sans, ["hub.registry.test", "127.0.0.1", "localhost"]);
    assert.deepEqual(teamInfo?.sans, ["team.registry.test", "*.team.test"]);
    assert.ok(hubInfo!.notBefore < new Date() && hubInfo!.notAfter > new Date());
  });
});

describe("CertificateStore over real TLS handshakes", () => {
  test("presents each site's certificate by SNI and the default one for unknown or absent SNI", async (t) => {
    const store = new CertificateStore([hub, team], "hub", "TLSv1.2");
    const server = await startServer(store);
    t.after(server.close);

    const cases = [
      { servername: "hub.registry.test", serial: serialOf(hub), authorized: true },
      { servername: "team.registry.test", serial: serialOf(team), authorized: true },
      { servername: "eu.team.test", serial: serialOf(team), authorized: true },
      { servername: "unknown.example", serial: serialOf(hub), authorized: false },
      { servername: undefined, serial: serialOf(hub), authorized: true }, // no SNI: verified against 127.0.0.1
    ];
    for (const expected of cases) {
      const connected = await connect(server.port, expected.servername ? { servername: expected.servername } : {});
      t.after(() => connected.socket.destroy());
      assert.equal(connected.serial, expected.serial, `certificate for ${expected.servername ?? "no SNI"}`);
      assert.equal(connected.authorized, expected.authorized, `verification for ${expected.servername ?? "no SNI"}`);
      if (!expected.authorized) assert.equal(connected.authorizationError, "ERR_TLS_CERT_ALTNAME_INVALID");
      assert.equal(await roundTrip(connected.socket, "ping"), `${expected.servername ?? "-"} ping`);
    }
  });

  test("rejectUnauthorized clients verify against the local CA", async (t) => {
    const store = new CertificateStore([hub, team], "hub", "TLSv1.2");
    const server = await startServer(store);
    t.after(server.close);

    const ok = await connect(server.port, { servername: "team.registry.test", rejectUnauthorized: true });
    ok.socket.destroy();
    await assert.rejects(connect(server.port, { servername: "team.registry.test", rejectUnauthorized: true, ca: [] }), {
      code: "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
    });
  });

  test("replace serves new handshakes while an open connection keeps working", async (t) => {
    const store = new CertificateStore([hub, team], "hub", "TLSv1.2");
    const server = await startServer(store);
    t.after(server.close);

    const before = await connect(server.port, { servername: "team.registry.test" });
    t.after(() => before.socket.destroy());
    assert.equal(before.serial, serialOf(team));

    const renewedTeam = await siteCertificate("team", team.hosts, ["team.registry.test", "*.team.test"]);
    store.replace([hub, renewedTeam], "team");

    const afterReplace = await connect(server.port, { servername: "team.registry.test", rejectUnauthorized: true });
    t.after(() => afterReplace.socket.destroy());
    assert.equal(afterReplace.serial, serialOf(renewedTeam));
    assert.notEqual(afterReplace.serial, serialOf(team));
    const noSni = await connect(server.port);
    t.after(() => noSni.socket.destroy());
    assert.equal(noSni.serial, serialOf(renewedTeam), "the new default site answers clients without SNI");

    assert.equal(await roundTrip(before.socket, "still here"), "team.registry.test still here");
    assert.equal(before.socket.getPeerCertificate().serialNumber, serialOf(team));
  });

  test("replace with a mismatched key throws and keeps the old certificates in service", async (t) => {
    const store = new CertificateStore([hub, team], "hub", "TLSv1.2");
    const server = await startServer(store);
    t.after(server.close);
    const teamContext = store.contextFor("team.registry.test");

    const broken = { ...team, keyPem: hub.keyPem };
    const renewedHub = await siteCertificate("hub", hub.hosts, ["hub.registry.test"]);
    assert.throws(() => store.replace([renewedHub, broken], "hub"), /site "team": the private key does not match the certificate/);

    assert.equal(store.contextFor("team.registry.test"), teamContext);
    assert.deepEqual(store.info().map((i) => i.serial), [serialOf(hub), serialOf(team)]);
    const hubAfter = await connect(server.port, { servername: "hub.registry.test" });
    t.after(() => hubAfter.socket.destroy());
    assert.equal(hubAfter.serial, serialOf(hub));
  });

  test("minVersion TLSv1.3 refuses a client limited to TLSv1.2", async (t) => {
    const store = new CertificateStore([hub, team], "hub", "TLSv1.3");
    const server = await startServer(store);
    t.after(server.close);

    await assert.rejects(connect(server.port, { servername: "hub.registry.test", maxVersion: "TLSv1.2" }), {
      code: "ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION",
    });
    await assert.rejects(connect(server.port, { maxVersion: "TLSv1.2" }), { code: "ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION" });
    const modern = await connect(server.port, { servername: "hub.registry.test" });
    t.after(() => modern.socket.destroy());
    assert.equal(modern.socket.getProtocol(), "TLSv1.3");
  });
});

describe("loadSiteCertificates", () => {
  function gatewayConfig(dataDir: string, listenHost: string, sites: SiteConfig[]): GatewayConfig {
    return {
      listen: { host: listenHost, port: 5443 },
      admin: { listen: { host: "127.0.0.1", port: 9091 }, allowNonLoopback: false, hosts: [] },
      http: { listen: null },
      workers: 1,
      dataDir,
      tls: { minVersion: "TLSv1.2", strictSni: true, generated: { caValidityDays: 30, leafValidityDays: 10 } },
      timeouts: { header: 30_000, handshake: 10_000, idle: 300_000, send: 60_000, keepAlive: 65_000, drain: 30_000, uploadIdle: 3_600_000 },
      limits: { maxHeaderBytes: 16_384, maxConnections: 4096, maxConnectionsPerIp: 256, downloadsPerClient: 32, downloadsPerUser: 256, uploadsPerUser: 64 },
      // Not what these tests are about: the schema's defaults.
      logins: gatewayConfigSchema.shape.logins.parse(undefined),
      log: { level: "silent", format: "json", access: false },
      metrics: { enabled: false },
      lists: { cacheFor: 5000 },
      trustedProxies: [],
      tokens: { issuer: "registry-gateway", algorithm: "ES256", lifetime: 3_600_000, refreshLifetime: 2_592_000_000 },
      sites,
    };
  }

  const HEALTH = { interval: 5000, timeout: 2000, unhealthyThreshold: 2, healthyThreshold: 1 };

  function generatedSite(hosts: string[], name?: string): SiteConfig {
    return { name, hosts, backend: new URL("http://127.0.0.1:5001"), default: false, tls: { source: "generated" }, limits: [], auth: { type: "none" }, backendAuth: { type: "none" }, routes: [], health: HEALTH, uploadRanges: "check", referrers: "auto" };
  }

  function filesSite(hosts: string[], cert: string, key: string): SiteConfig {
    return { hosts, backend: new URL("http://127.0.0.1:5002"), default: false, tls: { source: "files", cert, key }, limits: [], auth: { type: "none" }, backendAuth: { type: "none" }, routes: [], health: HEALTH, uploadRanges: "check", referrers: "auto" };
  }

  test("adoptOnly: serves a stored leaf that fits, and issues nothing for one made for other names", async () => {
    const dataDir = await mkdtemp(path.join(tmp, "adopt-"));
    // Another gateway of the fleet stored a leaf for its hosts; this one's hosts differ (a rolling change).
    const stored = await loadSiteCertificates(gatewayConfig(dataDir, "127.0.0.1", [generatedSite(["hub.registry.test"], "hub")]));
    const storedSerial = new X509Certificate(stored.certificates[0]!.certPem).serialNumber;
    const differing = gatewayConfig(dataDir, "127.0.0.1", [generatedSite(["hub.registry.test", "new.registry.test"], "hub")]);
    const adopted = await loadSiteCertificates(differing, { adoptOnly: true });
    assert.deepEqual(adopted.certificates, [], "no certificate to serve without issuing one");
    assert.deepEqual(adopted.issued, []);
    const onDisk = new X509Certificate(await readFile(path.join(dataDir, "certs", "hub.crt"), "utf8"));
    assert.equal(onDisk.serialNumber, storedSerial, "the stored leaf was not replaced");
    // The same hosts: the stored leaf is served as it is.
    const same = await loadSiteCertificates(gatewayConfig(dataDir, "127.0.0.1", [generatedSite(["hub.registry.test"], "hub")]), { adoptOnly: true });
    assert.deepEqual(same.certificates.map((c) => new X509Certificate(c.certPem).serialNumber), [storedSerial]);
  });

  test("generated: issues leaves from the local CA, adding local names when listening on loopback or everywhere", async () => {
    const dataDir = await mkdtemp(path.join(tmp, "generated-"));
    const sites = [generatedSite(["hub.registry.test"]), generatedSite(["team.registry.test"], "team")];

    const loaded = await loadSiteCertificates(gatewayConfig(dataDir, "0.0.0.0", sites));
    assert.equal(loaded.ca?.created, true);
    assert.deepEqual(loaded.issued, ["hub.registry.test", "team"]);
    assert.deepEqual(loaded.certificates.map((c) => [c.site, c.hosts]), [
      ["hub.registry.test", ["hub.registry.test"]],
      ["team", ["team.registry.test"]],
    ]);
    const hubLeaf = new X509Certificate(loaded.certificates[0]!.certPem);
    assert.equal(hubLeaf.subjectAltName, "DNS:hub.registry.test, DNS:localhost, IP Address:127.0.0.1");
    assert.equal(hubLeaf.verify(new X509Certificate(loaded.ca!.certPem).publicKey), true);
    await access(path.join(dataDir, "certs", "team.crt"));

    const reloaded = await loadSiteCertificates(gatewayConfig(dataDir, "127.0.0.1", sites));
    assert.equal(reloaded.ca?.created, false);
    assert.deepEqual(reloaded.issued, []);

    const public_ = await loadSiteCertificates(gatewayConfig(dataDir, "192.0.2.10", sites));
    assert.deepEqual(public_.issued, ["hub.registry.test", "team"]);
    assert.equal(new X509Certificate(public_.certificates[0]!.certPem).subjectAltName, "DNS:hub.registry.test");
  });

  test("files: loads PEM files as given and creates no CA", async () => {
    const dataDir = await mkdtemp(path.join(tmp, "files-"));
    const certFile = path.join(dataDir, "hub.pem");
    const keyFile = path.join(dataDir, "hub-key.pem");
    await writeFile(certFile, hub.certPem + ca.certPem); // a chain, leaf first
    await writeFile(keyFile, hub.keyPem);

    const loaded = await loadSiteCertificates(gatewayConfig(dataDir, "127.0.0.1", [filesSite(["hub.registry.test"], certFile, keyFile)]));
    assert.equal(loaded.ca, null);
    assert.deepEqual(loaded.issued, []);
    assert.equal(loaded.certificates[0]?.certPem, hub.certPem + ca.certPem);
    await assert.rejects(access(path.join(dataDir, "ca")), { code: "ENOENT" });
    assert.equal(new CertificateStore(loaded.certificates, "hub.registry.test", "TLSv1.2").info()[0]?.serial, serialOf(hub));
  });

  test("files: a key that does not match its certificate names the site and both files", async () => {
    const dataDir = await mkdtemp(path.join(tmp, "mismatch-"));
    const certFile = path.join(dataDir, "team.crt");
    const keyFile = path.join(dataDir, "wrong.key");
    await writeFile(certFile, team.certPem);
    await writeFile(keyFile, hub.keyPem);
    const config = gatewayConfig(dataDir, "127.0.0.1", [filesSite(["team.registry.test"], certFile, keyFile)]);

    await assert.rejects(loadSiteCertificates(config), (error: Error) => {
      assert.equal(
        error.message,
        `site "team.registry.test": certificate ${certFile} and key ${keyFile}: the private key does not match the certificate`,
      );
      return true;
    });
  });

  test("files: a missing file names the site, the setting and the path", async () => {
    const dataDir = await mkdtemp(path.join(tmp, "missing-"));
    const missing = path.join(dataDir, "absent.crt");
    const config = gatewayConfig(dataDir, "127.0.0.1", [filesSite(["team.registry.test"], missing, missing)]);
    await assert.rejects(loadSiteCertificates(config), new RegExp(`site "team.registry.test": cannot read tls.cert file ${missing}: ENOENT`));
  });
});

describe("Go clients (crypto/x509 via skopeo)", () => {
  test("accept a generated certificate through --cert-dir", async (t) => {
    const store = new CertificateStore([hub, team], "hub", "TLSv1.2");
    const server = await startServer(store);
    t.after(server.close);
    const certDir = await mkdtemp(path.join(tmp, "certs.d-"));
    await writeFile(path.join(certDir, "ca.crt"), ca.certPem);

    // Our server is no registry, so skopeo fails either way; the error says whether TLS verification passed.
    const inspect = (extra: string[]) =>
      run("skopeo", ["inspect", "--retry-times", "0", ...extra, `docker://127.0.0.1:${server.port}/library/x:1`], { timeout: 20_000 }).then(
        () => "",
        (error: { stderr?: string }) => error.stderr ?? "",
      );
    assert.match(await inspect(["--cert-dir", certDir]), /pinging container registry 127\.0\.0\.1:\d+: invalid status code from registry 404/);
    assert.match(await inspect([]), /x509: certificate signed by unknown authority/);
  });
});
