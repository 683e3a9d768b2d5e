// The ACME manager's bookkeeping (storage, scheduling, backoff, locking) with a fake orderer; the real
// protocol against pebble is in test/integration/acme.test.ts.
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { AcmeManager, backoffDelay, type AcmeSite } from "../../../src/tls/acme.js";
import { acmeCertificatePaths, certificateDueAt, readStoredCertificate, renewalTime, writeStoredCertificate } from "../../../src/tls/acme-storage.js";
import { loadOrCreateCa, type LocalCa, type LockOptions } from "../../../src/tls/selfsigned.js";
import { FilesTlsStore, type TlsStore } from "../../../src/tls/tls-store.js";
import { waitFor } from "../../helpers/process.js";
import { FakeOrderer, certificateFor } from "../../helpers/certs.js";

const DIRECTORY = "https://acme.example.test/directory";
const HOSTS = ["hub.registry.test", "team.registry.test"];

let tmp: string;
let ca: LocalCa;
before(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), "rg-acme-unit-"));
  ca = await loadOrCreateCa(path.join(tmp, "ca"), 1);
});
after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

function site(overrides: Partial<AcmeSite["tls"]> = {}, hosts = HOSTS): AcmeSite {
  return { name: "hub", hosts, tls: { source: "acme", directory: DIRECTORY, challenge: "http-01", ...overrides } };
}

interface Harness {
  manager: AcmeManager;
  handed: { site: string; serial: string }[];
}

function managerFor(dataDir: string, orderer: FakeOrderer, acmeSite = site(), backoff = { initialMs: 40, maxMs: 160 }, store?: TlsStore): Harness {
  const handed: Harness["handed"] = [];
  const manager = new AcmeManager({
    dataDir,
    sites: [acmeSite],
    orderer,
    onCertificate: (name, certPem) => handed.push({ site: name, serial: new X509Certificate(certPem).serialNumber }),
    backoff,
    lock: { pollMs: 10 },
    ...(store ? { store } : {}),
  });
  return { manager, handed };
}

const dataDir = (label: string) => mkdtemp(path.join(tmp, `${label}-`));

describe("renewal time", () => {
  const notBefore = new Date("2030-01-01T00:00:00Z");
  const notAfter = new Date("2030-04-01T00:00:00Z"); // 90 days

  test("defaults to two thirds of the lifetime", () => {
    assert.equal(renewalTime(notBefore, notAfter).toISOString(), "2030-03-02T00:00:00.000Z");
  });

  test("renewBefore counts back from expiry", () => {
    assert.equal(renewalTime(notBefore, notAfter, 10 * 86_400_000).toISOString(), "2030-03-22T00:00:00.000Z");
  });

  test("a renewBefore as long as the lifetime falls back to two thirds instead of renewing at once", () => {
    assert.equal(renewalTime(notBefore, notAfter, 90 * 86_400_000).toISOString(), "2030-03-02T00:00:00.000Z");
  });

  test("a certificate is never due within a third of its lifetime (at most an hour) of being stored", () => {
    const storedAt = new Date(notBefore.getTime() + 89 * 86_400_000);
    const due = certificateDueAt({ notBefore, notAfter, storedAt }, 89.5 * 86_400_000);
    assert.equal(due.getTime(), storedAt.getTime() + 3_600_000);
    const shortLived = { notBefore, notAfter: new Date(notBefore.getTime() + 9000), storedAt: notBefore };
    assert.equal(certificateDueAt(shortLived, 8000).getTime(), notBefore.getTime() + 3000);
  });

  test("backoff doubles up to the ceiling, jittered between half and all of it", () => {
    const policy = { initialMs: 1000, maxMs: 5000 };
    assert.equal(backoffDelay(1, policy, () => 0), 500);
    assert.equal(backoffDelay(1, policy, () => 1), 1000);
    assert.equal(backoffDelay(3, policy, () => 1), 4000);
    assert.equal(backoffDelay(10, policy, () => 1), 5000);
    assert.equal(backoffDelay(10, policy, () => 0), 2500);
  });
});

describe("AcmeManager", () => {
  test("orders when nothing is stored, stores key, chain and issuer, and hands the certificate over", async () => {
    const dir = await dataDir("first");
    const orderer = new FakeOrderer(ca, 3_600_000);
    const { manager, handed } = managerFor(dir, orderer);
    await manager.start();
    await waitFor(() => handed.length === 1, { what: "the first certificate" });
    await manager.stop();

    const paths = acmeCertificatePaths(dir, "hub");
    const stored = await readStoredCertificate(dir, "hub");
    assert.equal(stored?.serial, handed[0]!.serial);
    assert.deepEqual(stored?.names, HOSTS);
    assert.equal(stored?.directory, DIRECTORY);
    assert.equal((await stat(paths.keyPath)).mode & 0o777, 0o600);
    await assert.rejects(stat(paths.lockDir), { code: "ENOENT" }, "the lock is released");
    const [status] = manager.status();
    assert.equal(status?.orders, 1);
    assert.equal(status?.failures, 0);
    assert.equal(status?.certificate?.serial, stored?.serial);
    assert.equal(status?.nextAttemptAt, null, "stopped: nothing scheduled");
  });

  test("an order whose lock is lost meanwhile stops and stores nothing: the lock's new holder orders", async () => {
    const dir = await dataDir("lost-lock");
    /** A store whose order lock is taken by another gateway while the order runs. */
    class LosingStore extends FilesTlsStore {
      override withOrderLock<T>(name: string, lock: LockOptions, work: (signal: AbortSignal) => Promise<T>) {
        return super.withOrderLock(name, lock, () => work(AbortSignal.timeout(50)));
      }
    }
    const orderer = new FakeOrderer(ca, 3_600_000, 200);
    const { manager, handed } = managerFor(dir, orderer, site(), { initialMs: 60_000, maxMs: 60_000 }, new LosingStore(dir));
    await manager.start();
    await waitFor(() => manager.status()[0]!.failures === 1, { what: "the order given up" });
    await new Promise((resolve) => setTimeout(resolve, 250)); // the orderer's certificate has arrived meanwhile
    await manager.stop();
    assert.equal(orderer.orders, 1);
    assert.deepEqual(handed, []);
    assert.equal(await readStoredCertificate(dir, "hub"), null);
  });

  test("a restart with a valid stored certificate orders nothing and hands over the stored one", async () => {
    const dir = await dataDir("restart");
    const stored = await certificateFor(ca, HOSTS, 3_600_000);
    await writeStoredCertificate(dir, "hub", stored, DIRECTORY, new Date());
    const orderer = new FakeOrderer(ca, 3_600_000);
    const { manager, handed } = managerFor(dir, orderer);
    await manager.start();
    assert.deepEqual(handed, [{ site: "hub", serial: new X509Certificate(stored.certPem).serialNumber }], "handed over during start()");
    await new Promise((resolve) => setTimeout(resolve, 50));
    await manager.stop();
    assert.equal(orderer.orders, 0);
    assert.ok(manager.status()[0]!.renewAt! > new Date());
  });

  test("a certificate from another directory or for other hosts is served until the right one arrives", async () => {
    for (const [label, stored] of [
      ["directory", { hosts: HOSTS, directory: "https://acme-staging.example.test/directory" }],
      ["hosts", { hosts: ["hub.registry.test"], directory: DIRECTORY }],
    ] as const) {
      const dir = await dataDir(label);
      const old = await certificateFor(ca, [...stored.hosts], 3_600_000);
      await writeStoredCertificate(dir, "hub", old, stored.directory, new Date());
      const orderer = new FakeOrderer(ca, 3_600_000);
      const { manager, handed } = managerFor(dir, orderer);
      await manager.start();
      await waitFor(() => handed.length === 2, { what: `the re-ordered certificate (${label})` });
      await manager.stop();
      assert.equal(handed[0]!.serial, new X509Certificate(old.certPem).serialNumber, label);
      assert.equal(orderer.orders, 1, label);
    }
  });

  test("renews by itself when due; a failed renewal keeps the old certificate and retries with backoff", async () => {
    const dir = await dataDir("renew");
    const orderer = new FakeOrderer(ca, 2000); // due after two thirds of 2 s
    const { manager, handed } = managerFor(dir, orderer, site(), { initialMs: 200, maxMs: 400 });
    await manager.start();
    await waitFor(() => handed.length === 1, { what: "the first certificate" });
    orderer.failuresToCome = 2;
    await waitFor(() => manager.status()[0]!.failures === 2, { what: "two failed renewals", intervalMs: 5 });
    const failing = manager.status()[0]!;
    assert.equal(handed.length, 1, "nothing handed over while failing");
    assert.equal(failing.certificate?.serial, handed[0]!.serial, "the old certificate stays in service");
    assert.match(failing.lastError ?? "", /could not connect/);
    assert.ok(failing.nextAttemptAt! > new Date(), "a retry is scheduled");
    await waitFor(() => handed.length === 2, { what: "the renewed certificate", intervalMs: 10 });
    assert.equal(orderer.orders, 4, "one first order, two failures, one success");
    assert.equal(manager.status()[0]!.failures, 0);
    await manager.stop();
    assert.notEqual(handed[1]!.serial, handed[0]!.serial);
  });

  test("two managers sharing a data directory order once; the second adopts what the first stored", async () => {
    const dir = await dataDir("shared");
    const orderer = new FakeOrderer(ca, 3_600_000, 200);
    const first = managerFor(dir, orderer);
    const second = managerFor(dir, orderer);
    await Promise.all([first.manager.start(), second.manager.start()]);
    await waitFor(() => first.handed.length === 1 && second.handed.length === 1, { what: "both managers' certificates" });
    await Promise.all([first.manager.stop(), second.manager.stop()]);
    assert.equal(orderer.orders, 1);
    assert.equal(first.handed[0]!.serial, second.handed[0]!.serial);
    assert.equal(first.manager.status()[0]!.orders + second.manager.status()[0]!.orders, 1);
  });

  test("renewNow re-issues a fresh certificate at once, and rejects with the reason when it cannot", async () => {
    const dir = await dataDir("rotate");
    const orderer = new FakeOrderer(ca, 3_600_000);
    const { manager, handed } = managerFor(dir, orderer);
    await manager.start();
    await waitFor(() => handed.length === 1, { what: "the first certificate" });
    const [status] = await manager.renewNow("hub");
    assert.equal(handed.length, 2);
    assert.equal(status?.certificate?.serial, handed[1]!.serial);
    orderer.failuresToCome = 1;
    await assert.rejects(manager.renewNow(), /certificate rotation failed for hub: .*could not connect/);
    assert.equal(manager.status()[0]!.certificate?.serial, handed[1]!.serial);
    await assert.rejects(manager.renewNow("nope"), /no ACME site "nope"/);
    await manager.stop();
  });

  test("refreshFromDisk adopts a newer certificate another process stored", async () => {
    const dir = await dataDir("refresh");
    const orderer = new FakeOrderer(ca, 3_600_000);
    const { manager, handed } = managerFor(dir, orderer);
    await manager.start();
    await waitFor(() => handed.length === 1, { what: "the first certificate" });
    const newer = await certificateFor(ca, HOSTS, 3_600_000, new Date(Date.now() + 1000));
    await writeStoredCertificate(dir, "hub", newer, DIRECTORY, new Date());
    await manager.refreshFromDisk();
    await manager.stop();
    assert.equal(handed[1]?.serial, new X509Certificate(newer.certPem).serialNumber);
  });

  test("the account key is created once per directory and kept", async () => {
    const { loadOrCreateAccountKey, accountKeyPath } = await import("../../../src/tls/acme-storage.js");
    const dir = await dataDir("account");
    const [a, b] = await Promise.all([loadOrCreateAccountKey(dir, "https://127.0.0.1:14000/dir"), loadOrCreateAccountKey(dir, "https://127.0.0.1:14000/dir")]);
    assert.equal(a.keyPem, b.keyPem);
    const file = accountKeyPath(dir, "https://127.0.0.1:14000/dir");
    assert.equal(file, path.join(dir, "acme", "127.0.0.1_14000", "account.key"));
    assert.equal(await readFile(file, "utf8"), a.keyPem);
    assert.equal((await loadOrCreateAccountKey(dir, "https://127.0.0.1:14000/dir")).created, false);
  });
});
