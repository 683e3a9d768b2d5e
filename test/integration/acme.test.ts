// ACME against a real pebble that really validates (the manager on its own). The
// challenges are served by small servers built from the same handler and hooks the gateway will use.
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { once } from "node:events";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import * as tls from "node:tls";
import { AcmeManager, type AcmeManagerOptions, type AcmeSite } from "../../src/tls/acme.js";
import { AcmeChallengeResponder, createPlainHttpHandler, tlsChallengeHooks } from "../../src/tls/acme-challenges.js";
import { accountKeyPath, acmeCertificatePaths } from "../../src/tls/acme-storage.js";
import { issueLeaf, loadOrCreateCa } from "../../src/tls/selfsigned.js";
import { startPebble, type Pebble } from "../helpers/pebble.js";
import { waitFor } from "../helpers/process.js";

const HOSTS = ["hub.registry.test", "team.registry.test"];
// Test speed only: re-check a pending challenge every 100 ms instead of every second.
const FAST_POLLING = { minMs: 100, maxMs: 500, attempts: 40 };

const responder = new AcmeChallengeResponder();
let tmp: string;
let httpServer: http.Server;
let tlsServer: tls.Server;
let httpChallengeRequests = 0;
let alpnValidations = 0;
let pebble: Pebble;
let shortLived: Pebble;
let eabPebble: Pebble;
const EAB = { kid: "registry-gateway-test", hmacKey: "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W" };

before(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), "rg-acme-"));
  httpServer = http.createServer((req, res) => {
    if (req.url?.startsWith("/.well-known/acme-challenge/")) httpChallengeRequests++;
    createPlainHttpHandler({ responder, httpsPort: 5443 })(req, res);
  });
  const fallback = await issueLeaf(await loadOrCreateCa(path.join(tmp, "local-ca"), 1), HOSTS, 1);
  const fallbackContext = tls.createSecureContext({ cert: fallback.certPem, key: fallback.keyPem });
  tlsServer = tls.createServer({ cert: fallback.certPem, key: fallback.keyPem, ...tlsChallengeHooks(responder, () => fallbackContext) }, (socket) => {
    if (socket.alpnProtocol === "acme-tls/1") alpnValidations++;
    socket.end();
  });
  httpServer.listen(0, "127.0.0.1");
  tlsServer.listen(0, "127.0.0.1");
  await Promise.all([once(httpServer, "listening"), once(tlsServer, "listening")]);
  const ports = { httpPort: (httpServer.address() as AddressInfo).port, tlsPort: (tlsServer.address() as AddressInfo).port };
  [pebble, shortLived, eabPebble] = await Promise.all([
    startPebble(ports),
    startPebble({ ...ports, certificateValiditySeconds: 10 }),
    startPebble({ ...ports, eabKeys: { [EAB.kid]: EAB.hmacKey } }),
  ]);
});

after(async () => {
  await Promise.all([pebble?.stop(), shortLived?.stop(), eabPebble?.stop()]);
  httpServer?.close();
  tlsServer?.close();
  await rm(tmp, { recursive: true, force: true });
});

function acmeSite(from: Pebble, tlsConfig: Partial<AcmeSite["tls"]> = {}): AcmeSite {
  return { name: "hub", hosts: HOSTS, tls: { source: "acme", directory: from.directoryUrl, caFile: from.caFile, challenge: "http-01", ...tlsConfig } };
}

interface Handed {
  serial: string;
  certPem: string;
}

function manager(dataDir: string, site: AcmeSite, extra: Partial<AcmeManagerOptions> = {}) {
  const handed: Handed[] = [];
  const instance = new AcmeManager({
    dataDir,
    sites: [site],
    responder,
    statusPolling: FAST_POLLING,
    lock: { pollMs: 50 },
    onCertificate: (_site, certPem) => handed.push({ serial: new X509Certificate(certPem).serialNumber, certPem }),
    ...extra,
  });
  return { manager: instance, handed };
}

async function firstCertificate(m: ReturnType<typeof manager>, what = "the first certificate"): Promise<Handed> {
  await m.manager.start();
  await waitFor(() => m.handed[0] ?? (m.manager.status()[0]!.lastError ? Promise.reject(new Error(m.manager.status()[0]!.lastError!)) : undefined), {
    timeoutMs: 20_000,
    intervalMs: 25,
    what,
  });
  return m.handed[0]!;
}

/** Serves the chain and lets Node verify it for `host` against pebble's issuing root only. */
async function verifiesAgainst(root: string, chain: Handed, keyPem: string, host: string): Promise<void> {
  const server = tls.createServer({ cert: chain.certPem, key: keyPem }, (socket) => socket.end());
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  try {
    await new Promise<void>((resolve, reject) => {
      const socket = tls.connect({ host: "127.0.0.1", port: (server.address() as AddressInfo).port, servername: host, ca: root }, () => {
        socket.end();
        resolve();
      });
      socket.on("error", reject);
    });
  } finally {
    server.close();
  }
}

describe("ACME against pebble", () => {
  const dataDir = () => mkdtemp(path.join(tmp, "data-"));
  let http01Dir: string;
  let http01: Handed;

  test("HTTP-01: one certificate for two hosts, chaining to pebble's root", async () => {
    http01Dir = await dataDir();
    const before = { http: httpChallengeRequests, orders: pebble.orders() };
    const m = manager(http01Dir, acmeSite(pebble));
    http01 = await firstCertificate(m);
    await m.manager.stop();

    assert.ok(httpChallengeRequests - before.http >= HOSTS.length, "pebble fetched a challenge for each host");
    assert.equal(pebble.orders() - before.orders, 1);
    const leaf = new X509Certificate(http01.certPem);
    assert.equal(leaf.subjectAltName, "DNS:hub.registry.test, DNS:team.registry.test");
    const keyPem = await readFile(acmeCertificatePaths(http01Dir, "hub").keyPath, "utf8");
    const root = await pebble.issuingRoot();
    for (const host of HOSTS) await verifiesAgainst(root, http01, keyPem, host);
    await assert.rejects(verifiesAgainst(pebble.caPem, http01, keyPem, HOSTS[0]!), /unable to (get|verify)/, "and only to that root");
    await stat(accountKeyPath(http01Dir, pebble.directoryUrl));
    const [status] = m.manager.status();
    assert.equal(status?.orders, 1);
    assert.equal(status?.certificate?.serial, http01.serial);
    assert.equal(responder.pendingCount(), 0, "challenges withdrawn");
  });

  test("a restart reuses the stored certificate and account: no new order", async () => {
    const ordersBefore = pebble.orders();
    const accountKey = await readFile(accountKeyPath(http01Dir, pebble.directoryUrl), "utf8");
    const m = manager(http01Dir, acmeSite(pebble));
    await m.manager.start();
    assert.equal(m.handed[0]?.serial, http01.serial, "handed over during start()");
    await new Promise((resolve) => setTimeout(resolve, 300));
    await m.manager.stop();
    assert.equal(m.handed.length, 1);
    assert.equal(m.manager.status()[0]?.orders, 0);
    assert.equal(pebble.orders(), ordersBefore);
    assert.equal(await readFile(accountKeyPath(http01Dir, pebble.directoryUrl), "utf8"), accountKey);
  });

  test("renewNow re-issues at once and hands the new certificate over", async () => {
    const m = manager(http01Dir, acmeSite(pebble));
    await m.manager.start();
    const [status] = await m.manager.renewNow("hub");
    await m.manager.stop();
    assert.equal(m.handed.length, 2);
    assert.notEqual(m.handed[1]!.serial, http01.serial);
    assert.equal(status?.certificate?.serial, m.handed[1]!.serial);
  });

  test("TLS-ALPN-01: one certificate for two hosts, validated over acme-tls/1 only", async () => {
    const before = { http: httpChallengeRequests, alpn: alpnValidations };
    const m = manager(await dataDir(), acmeSite(pebble, { challenge: "tls-alpn-01" }));
    const issued = await firstCertificate(m);
    await m.manager.stop();
    assert.ok(alpnValidations - before.alpn >= HOSTS.length, "pebble completed an acme-tls/1 handshake for each host");
    assert.equal(httpChallengeRequests, before.http, "no HTTP-01 request");
    assert.equal(new X509Certificate(issued.certPem).subjectAltName, "DNS:hub.registry.test, DNS:team.registry.test");
    assert.equal(responder.pendingCount(), 0);
  });

  test("two managers sharing a data directory place one order between them", async () => {
    const dir = await dataDir();
    const ordersBefore = pebble.orders();
    const [a, b] = [manager(dir, acmeSite(pebble)), manager(dir, acmeSite(pebble))];
    const [first, second] = await Promise.all([firstCertificate(a), firstCertificate(b)]);
    await Promise.all([a.manager.stop(), b.manager.stop()]);
    assert.equal(first.serial, second.serial);
    assert.equal(pebble.orders() - ordersBefore, 1);
    assert.equal(a.manager.status()[0]!.orders + b.manager.status()[0]!.orders, 1);
  });

  test("a short-lived certificate is renewed by itself, the old one serving until the new one is in hand", async () => {
    // pebble issues 10 s certificates here (9 s after rounding); renewBefore 4s makes them due 5 s after
    // issuance (not sooner than a third of the lifetime after arrival, either).
    const m = manager(await dataDir(), acmeSite(shortLived, { renewBefore: 4000 }));
    const first = await firstCertificate(m);
    const firstLeaf = new X509Certificate(first.certPem);
    assert.equal(m.manager.status()[0]!.renewAt?.getTime(), new Date(firstLeaf.validTo).getTime() - 4000);
    await waitFor(() => m.handed.length >= 2, { timeoutMs: 15_000, intervalMs: 25, what: "the renewed certificate" });
    const renewedAt = Date.now();
    await m.manager.stop();
    const second = new X509Certificate(m.handed[1]!.certPem);
    assert.notEqual(second.serialNumber, firstLeaf.serialNumber);
    assert.ok(new Date(second.validFrom) >= new Date(firstLeaf.validFrom));
    assert.ok(renewedAt < new Date(firstLeaf.validTo).getTime(), "renewed before the old one expired");
    assert.equal(m.manager.status()[0]!.orders, 2);
  });

  test("External Account Binding: refused without, issued with", async () => {
    const without = manager(await dataDir(), acmeSite(eabPebble), { transport: { retryAttempts: 0, retryDelaySeconds: 1, requestTimeoutMs: 10_000 } });
    await without.manager.start();
    await assert.rejects(without.manager.renewNow("hub"), /externalAccountBinding/);
    await without.manager.stop();
    const withEab = manager(await dataDir(), acmeSite(eabPebble, { eab: EAB }));
    await firstCertificate(withEab);
    await withEab.manager.stop();
  });

  test("an ACME server whose CA is not trusted fails with the reason, and a retry is scheduled", async () => {
    // Trust is kept per origin, and 127.0.0.1's is trusted by now: the same pebble as "localhost" is not.
    const untrusted = acmeSite(pebble, { directory: pebble.directoryUrl.replace("127.0.0.1", "localhost") });
    delete untrusted.tls.caFile;
    const m = manager(await dataDir(), untrusted, { transport: { retryAttempts: 0, retryDelaySeconds: 1, requestTimeoutMs: 10_000 } });
    await assert.rejects(m.manager.renewNow(), /cannot reach the ACME server .*(certificate|self.signed).*tls\.caFile/i);
    const [status] = m.manager.status();
    assert.equal(status?.failures, 1);
    assert.ok(status?.nextAttemptAt && status.nextAttemptAt > new Date(), "retried later, with backoff");
    assert.equal(m.handed.length, 0);
    await m.manager.stop();
  });
});
