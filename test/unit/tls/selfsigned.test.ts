import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { X509Certificate, createPrivateKey } from "node:crypto";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, mock, test } from "node:test";
import { promisify } from "node:util";
import { caPaths, issueLeaf, loadOrCreateCa, loadOrIssueLeaf, readCaPem, type LocalCa } from "../../../src/tls/selfsigned.js";

const run = promisify(execFile);
const SERVER_AUTH_OID = "1.3.6.1.5.5.7.3.1";

let tmp: string;
before(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), "rg-selfsigned-"));
});
after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

async function freshDataDir(label: string): Promise<string> {
  return mkdtemp(path.join(tmp, `${label}-`));
}

function mode(stats: { mode: number }): number {
  return stats.mode & 0o777;
}

async function writePem(dir: string, name: string, pem: string): Promise<string> {
  const file = path.join(dir, name);
  await writeFile(file, pem);
  return file;
}

describe("local CA", () => {
  test("is created once, then reused from disk with private permissions", async () => {
    const dataDir = await freshDataDir("ca");
    assert.equal(await readCaPem(dataDir), null);

    const first = await loadOrCreateCa(dataDir, 30);
    const second = await loadOrCreateCa(dataDir, 30);

    assert.equal(first.created, true);
    assert.equal(second.created, false);
    assert.equal(new X509Certificate(second.certPem).serialNumber, new X509Certificate(first.certPem).serialNumber);
    assert.equal(second.keyPem, first.keyPem);
    assert.deepEqual({ certPath: first.certPath, keyPath: first.keyPath }, caPaths(dataDir));
    assert.equal(first.certPath, path.join(dataDir, "ca", "ca.crt"));
    assert.equal(mode(await stat(first.keyPath)), 0o600);
    assert.equal(mode(await stat(first.certPath)), 0o644);
    assert.equal(mode(await stat(path.dirname(first.keyPath))), 0o700);
    assert.equal(await readCaPem(dataDir), first.certPem);
  });

  test("is a CA certificate with a per-install subject", async () => {
    const one = await loadOrCreateCa(await freshDataDir("ca-a"), 30);
    const other = await loadOrCreateCa(await freshDataDir("ca-b"), 30);
    const cert = new X509Certificate(one.certPem);

    assert.equal(cert.ca, true);
    assert.match(cert.subject, /^CN=registry-gateway local CA [0-9a-f]{8}$/m);
    assert.equal(cert.subject, cert.issuer);
    assert.notEqual(cert.subject, new X509Certificate(other.certPem).subject);
    const text = (await run("openssl", ["x509", "-noout", "-text", "-in", one.certPath])).stdout;
    assert.match(text, /Basic Constraints: critical\s+CA:TRUE/);
    assert.match(text, /Key Usage: critical\s+Certificate Sign, CRL Sign/);
    assert.match(text, /Subject Key Identifier/);
  });

  test("refuses to replace a CA certificate whose key went missing", async () => {
    const dataDir = await freshDataDir("ca-nokey");
    const ca = await loadOrCreateCa(dataDir, 30);
    await rm(ca.keyPath);
    await assert.rejects(loadOrCreateCa(dataDir, 30), /exists but its key .*ca\.key is missing/);
  });

  test("concurrent creation in one data directory yields one CA", async () => {
    const dataDir = await freshDataDir("ca-race");
    const results = await Promise.all([1, 2, 3, 4].map(() => loadOrCreateCa(dataDir, 30)));
    assert.equal(results.filter((r) => r.created).length, 1);
    assert.equal(new Set(results.map((r) => r.certPem)).size, 1);
  });
});

describe("leaf certificates", () => {
  let dataDir: string;
  let ca: LocalCa;
  before(async () => {
    dataDir = await freshDataDir("leaf");
    ca = await loadOrCreateCa(dataDir, 30);
  });

  test("carry DNS and IP SANs, CN = first name, server-auth usage, and chain to the CA", async () => {
    const leaf = await issueLeaf(ca, ["hub.registry.test", "127.0.0.1", "*.team.test", "::1"], 10);
    const cert = new X509Certificate(leaf.certPem);
    const caCert = new X509Certificate(ca.certPem);

    assert.equal(cert.subjectAltName, "DNS:hub.registry.test, IP Address:127.0.0.1, DNS:*.team.test, IP Address:0:0:0:0:0:0:0:1");
    assert.equal(cert.subject, "CN=hub.registry.test");
    assert.match(leaf.certPem, /-----END CERTIFICATE-----\n$/, "ends with a newline so PEM files concatenate");
    assert.equal(cert.issuer, caCert.subject);
    assert.equal(cert.ca, false);
    assert.deepEqual(cert.keyUsage, [SERVER_AUTH_OID]);
    assert.match(cert.serialNumber, /^[4-7][0-9A-F]{31}$/);
    assert.equal(cert.verify(caCert.publicKey), true);
    assert.equal(cert.checkIssued(caCert), true);
    assert.equal(cert.checkPrivateKey(createPrivateKey(leaf.keyPem)), true);

    const backdatedMs = Date.now() - new Date(cert.validFrom).getTime();
    assert.ok(backdatedMs > 59 * 60_000 && backdatedMs < 62 * 60_000, `notBefore ${cert.validFrom} is ~1 h ago`);
    const lifetimeDays = (new Date(cert.validTo).getTime() - Date.now()) / 86_400_000;
    assert.ok(lifetimeDays > 9.9 && lifetimeDays <= 10, `valid ~10 days, got ${lifetimeDays}`);
  });

  test("pass openssl verification as a TLS server certificate for its names", async () => {
    const leaf = await issueLeaf(ca, ["hub.registry.test", "127.0.0.1"], 10);
    const leafFile = await writePem(dataDir, "openssl-leaf.crt", leaf.certPem);
    const verify = (...extra: string[]) =>
      run("openssl", ["verify", "-CAfile", ca.certPath, "-purpose", "sslserver", ...extra, leafFile]);

    assert.equal((await verify()).stdout.trim(), `${leafFile}: OK`);
    assert.equal((await verify("-verify_hostname", "hub.registry.test")).stdout.trim(), `${leafFile}: OK`);
    assert.equal((await verify("-verify_ip", "127.0.0.1")).stdout.trim(), `${leafFile}: OK`);
    await assert.rejects(verify("-verify_hostname", "other.registry.test"), /hostname mismatch/);
  });

  test("name the issuer with the CA subject's exact encoding (Go matches issuer bytes)", async () => {
    const leaf = await issueLeaf(ca, ["hub.registry.test"], 10);
    const leafFile = await writePem(dataDir, "issuer-leaf.crt", leaf.certPem);
    const rawName = async (file: string, which: "-subject" | "-issuer") =>
      (await run("openssl", ["x509", "-noout", which, "-nameopt", "RFC2253,dump_all,dump_der", "-in", file])).stdout.replace(/^\w+=/, "");
    assert.equal(await rawName(leafFile, "-issuer"), await rawName(ca.certPath, "-subject"));
  });

  test("are not issued past the CA's own expiry", async () => {
    const leaf = await issueLeaf(ca, ["hub.registry.test"], 400);
    assert.equal(new X509Certificate(leaf.certPem).validTo, new X509Certificate(ca.certPem).validTo);
  });

  test("are stored per site and reused while the names are the same set", async () => {
    const first = await loadOrIssueLeaf(ca, dataDir, "hub", ["hub.registry.test", "127.0.0.1"], 10);
    const again = await loadOrIssueLeaf(ca, dataDir, "hub", ["127.0.0.1", "HUB.registry.test"], 10);

    assert.equal(first.issued, true);
    assert.equal(again.issued, false);
    assert.equal(again.certPem, first.certPem);
    assert.equal(await readFile(path.join(dataDir, "certs", "hub.crt"), "utf8"), first.certPem);
    assert.equal(mode(await stat(path.join(dataDir, "certs", "hub.key"))), 0o600);
    assert.equal(mode(await stat(path.join(dataDir, "certs", "hub.crt"))), 0o644);
    assert.equal(mode(await stat(path.join(dataDir, "certs"))), 0o700);
  });

  test("are reissued when the names change", async () => {
    const first = await loadOrIssueLeaf(ca, dataDir, "team", ["team.registry.test"], 10);
    const changed = await loadOrIssueLeaf(ca, dataDir, "team", ["team.registry.test", "team2.registry.test"], 10);

    assert.equal(changed.issued, true);
    assert.notEqual(new X509Certificate(changed.certPem).serialNumber, new X509Certificate(first.certPem).serialNumber);
    assert.equal(new X509Certificate(changed.certPem).subjectAltName, "DNS:team.registry.test, DNS:team2.registry.test");
    assert.equal(await readFile(path.join(dataDir, "certs", "team.crt"), "utf8"), changed.certPem);
  });

  test("are reissued when signed by another CA or when the stored files are damaged", async () => {
    const otherCa = await loadOrCreateCa(await freshDataDir("other-ca"), 30);
    const foreign = await loadOrIssueLeaf(otherCa, dataDir, "moved", ["moved.registry.test"], 10);
    const mine = await loadOrIssueLeaf(ca, dataDir, "moved", ["moved.registry.test"], 10);
    assert.equal(mine.issued, true);
    assert.equal(new X509Certificate(mine.certPem).verify(new X509Certificate(ca.certPem).publicKey), true);
    assert.notEqual(mine.certPem, foreign.certPem);

    await writeFile(path.join(dataDir, "certs", "moved.crt"), "-----BEGIN CERTIFICATE-----\ngarbage\n");
    assert.equal((await loadOrIssueLeaf(ca, dataDir, "moved", ["moved.registry.test"], 10)).issued, true);
  });

  test("are reissued once less than a third of their lifetime is left", async (t) => {
    const first = await loadOrIssueLeaf(ca, dataDir, "aging", ["aging.registry.test"], 9);
    const cert = new X509Certificate(first.certPem);
    const notBefore = new Date(cert.validFrom).getTime();
    const lifetime = new Date(cert.validTo).getTime() - notBefore;

    t.after(() => mock.timers.reset());
    mock.timers.enable({ apis: ["Date"], now: notBefore + lifetime * 0.6 });
    assert.equal((await loadOrIssueLeaf(ca, dataDir, "aging", ["aging.registry.test"], 9)).issued, false);
    mock.timers.setTime(notBefore + lifetime * 0.7);
    assert.equal((await loadOrIssueLeaf(ca, dataDir, "aging", ["aging.registry.test"], 9)).issued, true);
  });

  test("force: a new leaf even while the stored one is good (`cert rotate`)", async () => {
    const first = await loadOrIssueLeaf(ca, dataDir, "rotated", ["rotated.registry.test"], 10);
    const forced = await loadOrIssueLeaf(ca, dataDir, "rotated", ["rotated.registry.test"], 10, { force: true });
    assert.equal(forced.issued, true);
    assert.notEqual(new X509Certificate(forced.certPem).serialNumber, new X509Certificate(first.certPem).serialNumber);
    const again = await loadOrIssueLeaf(ca, dataDir, "rotated", ["rotated.registry.test"], 10);
    assert.equal(again.issued, false);
    assert.equal(again.certPem, forced.certPem, "the forced leaf is the one stored");
  });
});
