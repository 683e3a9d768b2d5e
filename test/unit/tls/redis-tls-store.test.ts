import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { Redis } from "ioredis";
import type { RedisConfig } from "../../../src/config/schema.js";
import { issueLeaf, loadOrCreateCa, readIfExists } from "../../../src/tls/selfsigned.js";
import type { FleetNotice, TlsStore } from "../../../src/tls/tls-store.js";
import { openTlsStore, STORE_KEY_ENV } from "../../../src/tls/tls-stores.js";
import type { RedisTlsStore } from "../../../src/tls/redis-tls-store.js";
import { startRedis, type RedisServer } from "../../helpers/redis.js";

const SECRET = "unit test fleet secret 0123456789";
let server: RedisServer;
let raw: Redis;
let tmp: string;
const opened: TlsStore[] = [];
const dataDirs = new Map<TlsStore, string>();

before(async () => {
  server = await startRedis();
  raw = new Redis(server.url);
  tmp = await mkdtemp(path.join(os.tmpdir(), "rg-redis-tls-store-"));
});
after(async () => {
  await Promise.all(opened.map((store) => store.close()));
  raw.disconnect();
  await server.stop();
  await rm(tmp, { recursive: true, force: true });
});

let prefixes = 0;
/** Two or more stores sharing one prefix stand for gateways of one fleet. */
async function fleetOf(count: number, secret = SECRET, keyPrefix = `t${++prefixes}:`): Promise<RedisTlsStore[]> {
  const redis = { url: server.url, keyPrefix, commandTimeout: 250, failure: "failOpen" } as RedisConfig;
  const stores: RedisTlsStore[] = [];
  for (let i = 0; i < count; i++) {
    const dataDir = await mkdtemp(path.join(tmp, "gw-"));
    const store = (await openTlsStore({ kind: "redis", dataDir, redis }, { [STORE_KEY_ENV]: secret }, `gateway-${i}`)) as RedisTlsStore;
    opened.push(store);
    dataDirs.set(store, dataDir);
    stores.push(store);
  }
  return stores;
}

async function allValues(prefix: string): Promise<string[]> {
  const keys = await raw.keys(`${prefix}*`);
  const values: string[] = [];
  for (const key of keys) {
    const type = await raw.type(key);
    if (type === "string") values.push((await raw.get(key))!);
    else if (type === "hash") values.push(...Object.values(await raw.hgetall(key)));
    else if (type === "set") values.push(...(await raw.smembers(key)));
  }
  return values;
}

describe("the Redis TLS store", () => {
  test("a Redis that comes back empty gets the fleet's CA and secrets back from a gateway's memory, not new ones", async () => {
    const prefix = `t${++prefixes}:`;
    const [a] = await fleetOf(1, SECRET, prefix);
    const ca = await a!.loadOrCreateCa(10);
    const secret = await a!.loadOrCreateSharedSecret("web-sessions", () => "first value");
    // Redis restarted without persistence: every key of the fleet is gone.
    const keys = await raw.keys(`${prefix}*`);
    if (keys.length > 0) await raw.del(...keys);
    const again = await a!.loadOrCreateCa(10);
    assert.equal(again.certPem, ca.certPem, "the same CA, which every client trusts");
    assert.equal(again.created, false);
    assert.equal(await a!.loadOrCreateSharedSecret("web-sessions", () => "a new value"), secret);
    // Written back: a gateway that never saw them (another machine, restarted meanwhile) gets them too.
    const [b] = await fleetOf(1, SECRET, prefix);
    assert.equal((await b!.loadOrCreateCa(10)).certPem, ca.certPem);
    assert.equal(await b!.loadOrCreateSharedSecret("web-sessions", () => "yet another"), secret);
  });

  test("gateways creating the CA and a leaf at once end up with one of each, keys sealed", async () => {
    const [a, b] = await fleetOf(2);
    const [caA, caB] = await Promise.all([a!.loadOrCreateCa(10), b!.loadOrCreateCa(10)]);
    assert.equal(caA.certPem, caB.certPem);
    assert.equal([caA, caB].filter((ca) => ca.created).length, 1);
    const [leafA, leafB] = await Promise.all([a!.loadOrIssueLeaf(caA, "site", ["a.test"], 5), b!.loadOrIssueLeaf(caB, "site", ["a.test"], 5)]);
    assert.equal(leafA.certPem, leafB.certPem);
    const values = await allValues(`t${prefixes}:`);
    assert.ok(values.length >= 2);
    for (const value of values) assert.doesNotMatch(value, /PRIVATE KEY/);
  });

  test("an empty store adopts a CA the gateway already had, not the certificate it only mirrored", async () => {
    const [a] = await fleetOf(1);
    const before = await loadOrCreateCa(dataDirs.get(a!)!, 10);
    const adopted = await a!.loadOrCreateCa(10);
    assert.equal(adopted.certPem, before.certPem);
    assert.equal(adopted.created, false);
    // The store emptied (a Redis without persistence restarted) and the gateway restarted too: nothing holds
    // the CA key any more, only the mirrored certificate is on disk, and that is not a CA to adopt.
    const [b] = await fleetOf(1);
    const mirrored = await b!.loadOrCreateCa(10);
    await raw.del(`t${prefixes}:tls:ca`);
    const redis = { url: server.url, keyPrefix: `t${prefixes}:`, commandTimeout: 250, failure: "failOpen" } as RedisConfig;
    const restarted = (await openTlsStore({ kind: "redis", dataDir: dataDirs.get(b!)!, redis }, { [STORE_KEY_ENV]: SECRET }, "gateway-restarted")) as RedisTlsStore;
    opened.push(restarted);
    const fresh = await restarted.loadOrCreateCa(10);
    assert.equal(fresh.created, true);
    assert.notEqual(fresh.certPem, mirrored.certPem);
  });

  test("a forced leaf is new for every gateway and announced to the others", async () => {
    const [a, b] = await fleetOf(2);
    const notices: FleetNotice[] = [];
    await b!.subscribe((notice) => notices.push(notice), () => {});
    const ca = await a!.loadOrCreateCa(10);
    const first = await a!.loadOrIssueLeaf(ca, "site", ["a.test"], 5);
    const forced = await a!.loadOrIssueLeaf(ca, "site", ["a.test"], 5, { force: true });
    assert.equal(forced.issued, true);
    assert.notEqual(serial(forced.certPem), serial(first.certPem));
    const seen = await b!.loadOrIssueLeaf(await b!.loadOrCreateCa(10), "site", ["a.test"], 5);
    assert.equal(serial(seen.certPem), serial(forced.certPem));
    await until(() => notices.some((n) => n.kind === "certificate" && n.site === "site"));
  });

  test("a store sealed with another key is refused clearly", async () => {
    const [a] = await fleetOf(1, SECRET, "wrongkey:");
    await a!.loadOrCreateCa(10);
    const [b] = await fleetOf(1, "a different secret for this fleet", "wrongkey:");
    await assert.rejects(b!.loadOrCreateCa(10), /the store was sealed with another key/);
  });

  test("ACME certificates round-trip; the order lock is one at a time and taken over when its holder's lease runs out", async () => {
    const [a, b] = await fleetOf(2);
    const ca = await loadOrCreateCa(await mkdtemp(path.join(tmp, "ca-")), 1);
    const pair = await issueLeaf(ca, ["acme.test"], 1);
    await a!.writeAcmeCertificate("site", pair, "https://ca.test/dir", new Date());
    const read = await b!.readAcmeCertificate("site");
    assert.equal(read?.serial, serial(pair.certPem));
    assert.equal(read?.keyPem, pair.keyPem);
    assert.equal(read?.directory, "https://ca.test/dir");

    // A holder that died mid-order: its lock stays until the lease runs out, then another gateway takes over.
    await raw.set(`t${prefixes}:tls:acme:lock:site`, "dead holder", "PX", 400);
    const started = Date.now();
    const order: string[] = [];
    const lock = { staleMs: 1000, waitMs: 5000, pollMs: 20 };
    let waiting: Promise<void> | undefined;
    await b!.withOrderLock("site", lock, async () => {
      order.push("b");
      // Held while b works: a's attempt waits for it.
      waiting = a!.withOrderLock("site", lock, async () => void order.push("a"));
      await new Promise((resolve) => setTimeout(resolve, 1500));
      order.push("b done");
    });
    await waiting;
    assert.ok(Date.now() - started >= 380, "waited for the dead holder's lease");
    assert.deepEqual(order, ["b", "b done", "a"]);
  });

  test("a CA certificate swapped in Redis is refused and never mirrored for clients to install", async () => {
    const [a] = await fleetOf(1);
    await a!.loadOrCreateCa(10);
    const other = await loadOrCreateCa(await mkdtemp(path.join(tmp, "ca-")), 1);
    const record = JSON.parse((await raw.get(`t${prefixes}:tls:ca`))!) as { certPem: string; key: string };
    await raw.set(`t${prefixes}:tls:ca`, JSON.stringify({ ...record, certPem: other.certPem }));
    const [b] = await fleetOf(1, SECRET, `t${prefixes}:`);
    await assert.rejects(b!.loadOrCreateCa(10), /altered or damaged|unusable/);
    assert.equal(await readIfExists(path.join(dataDirs.get(b!)!, "ca", "ca.crt")), null);
  });

  test("an ACME certificate's key opens only beside the certificate, directory and time it was stored with", async () => {
    const [a] = await fleetOf(1);
    const ca = await loadOrCreateCa(await mkdtemp(path.join(tmp, "ca-")), 1);
    const pair = await issueLeaf(ca, ["acme.test"], 1);
    await a!.writeAcmeCertificate("site", pair, "https://ca.test/dir", new Date());
    const key = `t${prefixes}:tls:acme:cert:site`;
    const record = JSON.parse((await raw.get(key))!) as Record<string, string>;
    const other = await issueLeaf(ca, ["acme.test"], 1);
    for (const change of [{ certPem: other.certPem }, { directory: "https://other.test/dir" }, { storedAt: new Date(0).toISOString() }]) {
      await raw.set(key, JSON.stringify({ ...record, ...change }));
      await assert.rejects(a!.readAcmeCertificate("site"), /altered or damaged/, Object.keys(change)[0]);
    }
  });

  test("a lost order lease aborts the work: a renewal that finds another holder fires its signal", async () => {
    const [a] = await fleetOf(1);
    const reason = await a!.withOrderLock("site", { staleMs: 300, waitMs: 1000, pollMs: 20 }, async (lost) => {
      await raw.set(`t${prefixes}:tls:acme:lock:site`, "another holder", "PX", 5000);
      await until(() => lost.aborted, 2000);
      return String(lost.reason);
    });
    assert.match(reason, /lock .*acme:lock:site was lost/);
    assert.equal(await raw.get(`t${prefixes}:tls:acme:lock:site`), "another holder", "the successor's lock is left alone");
  });

  test("a shared secret is created once for the fleet, sealed", async () => {
    const [a, b] = await fleetOf(2);
    let created = 0;
    const make = async () => `value-${++created}`;
    const [x, y] = await Promise.all([a!.loadOrCreateSharedSecret("web-sessions", make), b!.loadOrCreateSharedSecret("web-sessions", make)]);
    assert.equal(x, y);
    assert.equal(created, 1);
    assert.equal(await raw.get(`t${prefixes}:tls:secret:web-sessions`).then((v) => v?.includes(x)), false);
    await assert.rejects(a!.loadOrCreateSharedSecret("../escape", make), /use letters/);
  });

  test("a challenge published by one gateway is answered by the others before the publisher goes on", async () => {
    const [a, b, c] = await fleetOf(3);
    const applied: string[] = [];
    for (const [name, store] of [["b", b!], ["c", c!]] as const) {
      await store.subscribe((notice) => {
        if (notice.kind !== "challenge" || notice.change.kind !== "alpn" || notice.change.certPem === null) return;
        // Applying takes a while: the publisher must wait for it.
        setTimeout(() => {
          applied.push(name);
          void store.acknowledge(notice.ackId);
        }, 100);
      }, () => {});
    }
    const ca = await loadOrCreateCa(await mkdtemp(path.join(tmp, "ca-")), 1);
    const alpn = await issueLeaf(ca, ["acme.test"], 1);
    await a!.publishChallenge({ kind: "alpn", host: "acme.test", certPem: alpn.certPem, keyPem: alpn.keyPem });
    assert.deepEqual(applied.sort(), ["b", "c"]);
    const pending = await c!.pendingChallenges();
    assert.equal(pending.length, 1);
    assert.equal(pending[0]!.kind === "alpn" && pending[0]!.keyPem, alpn.keyPem);
    for (const value of await allValues(`t${prefixes}:`)) assert.doesNotMatch(value, /PRIVATE KEY/);
    await a!.publishChallenge({ kind: "alpn", host: "acme.test", certPem: null, keyPem: null });
    assert.equal((await c!.pendingChallenges()).length, 0);
  });

  test("challenge records and notices not sealed by the fleet's key are refused, not answered, and logged", async () => {
    const [a, b] = await fleetOf(2);
    const notices: FleetNotice[] = [];
    await b!.subscribe((notice) => {
      notices.push(notice);
      if (notice.kind === "challenge") void b!.acknowledge(notice.ackId);
    }, () => {});
    const warnings = watchWarnings();
    const forged = { kind: "http", token: "forged", keyAuthorization: "forged.attacker-account-thumbprint" };
    await raw.hset(`t${prefixes}:tls:challenges`, "http:forged", JSON.stringify({ change: forged, expiresAt: Date.now() + 60_000 }));
    await raw.publish(`t${prefixes}:tls:notices`, JSON.stringify({ kind: "challenge", change: forged, ackId: "x", from: "attacker" }));
    // A genuine record copied to another token's field does not answer that token either.
    await a!.publishChallenge({ kind: "http", token: "genuine", keyAuthorization: "genuine.thumbprint" });
    await raw.hset(`t${prefixes}:tls:challenges`, "http:copied", (await raw.hget(`t${prefixes}:tls:challenges`, "http:genuine"))!);
    await until(() => notices.length > 0);
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.deepEqual(notices.map((n) => n.kind === "challenge" && n.change), [{ kind: "http", token: "genuine", keyAuthorization: "genuine.thumbprint" }]);
    assert.deepEqual(await b!.pendingChallenges(), [{ kind: "http", token: "genuine", keyAuthorization: "genuine.thumbprint" }]);
    assert.ok((await warnings.stop()).some((w) => /challenge (record|notice) .* refused/.test(w)));
    for (const value of await allValues(`t${prefixes}:`)) assert.doesNotMatch(value, /genuine\.thumbprint/);
  });

  test("a damaged challenge record costs only itself; pending challenges are capped", async () => {
    const [a, b] = await fleetOf(2);
    const warnings = watchWarnings();
    for (let i = 0; i < 105; i++) await a!.publishChallenge({ kind: "http", token: `t${i}`, keyAuthorization: `t${i}.thumbprint` });
    await raw.hset(`t${prefixes}:tls:challenges`, "http:t0", "{not json");
    const pending = await b!.pendingChallenges();
    assert.equal(pending.length, 100);
    assert.ok(!pending.some((change) => change.kind === "http" && change.token === "t0"));
    assert.ok((await warnings.stop()).some((w) => /only the first 100 are answered/.test(w)));
  });
});

/** Process warnings (where the store reports refused records) until stop(). */
function watchWarnings(): { stop(): Promise<string[]> } {
  const seen: string[] = [];
  const listener = (warning: Error) => void seen.push(warning.message);
  process.on("warning", listener);
  return {
    async stop() {
      // Warnings are emitted on a later tick than the call that raised them.
      await new Promise((resolve) => setImmediate(resolve));
      process.off("warning", listener);
      return seen;
    },
  };
}

function serial(certPem: string): string {
  return new X509Certificate(certPem).serialNumber;
}

async function until(check: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
