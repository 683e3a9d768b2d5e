// Which TLS store a configuration gets, and what is refused before anything is stored.
import assert from "node:assert/strict";
import { mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { ConfigError, parseConfig } from "../../../src/config/load.js";
import { FilesTlsStore } from "../../../src/tls/tls-store.js";
import { openTlsStore, STORE_KEY_ENV, tlsStoreKind, tlsStoreSettings } from "../../../src/tls/tls-stores.js";
import { loadSigningKey } from "../../../src/auth/signing-key.js";
import { StoredSessionKeySource } from "../../../src/web/session-key.js";
import { startRedis } from "../../helpers/redis.js";

const SITE = "sites:\n  - hosts: [a.test]\n    backend: http://127.0.0.1:5000\n";
const REDIS = 'redis: { url: "redis://127.0.0.1:1/0" }\n';
const dirs: string[] = [];
after(async () => Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true }))));

describe("tls.store", () => {
  it("redis without a redis block is a configuration error naming the key", () => {
    assert.throws(
      () => parseConfig(`tls: { store: redis }\n${SITE}`, "test.yaml", {}),
      (error: unknown) => error instanceof ConfigError && error.issues.some((i) => i.key === "tls.store" && /configure redis/.test(i.message)),
    );
  });

  it("defaults to redis when redis is configured and a store key is given, else files", () => {
    const withRedis = parseConfig(`${REDIS}${SITE}`, "test.yaml", {});
    assert.equal(tlsStoreKind(withRedis, { [STORE_KEY_ENV]: "x".repeat(20) }), "redis");
    assert.equal(tlsStoreKind(withRedis, {}), "files");
    assert.equal(tlsStoreKind(parseConfig(SITE, "test.yaml", {}), { [STORE_KEY_ENV]: "x".repeat(20) }), "files");
    assert.equal(tlsStoreKind(parseConfig(`${REDIS}tls: { store: files }\n${SITE}`, "test.yaml", {}), { [STORE_KEY_ENV]: "x".repeat(20) }), "files");
  });

  it("GATEWAY_TLS_STORE_KEY is a secret read where it is used, not a configuration override", () => {
    const config = parseConfig(`${REDIS}${SITE}`, "test.yaml", { [STORE_KEY_ENV]: "a secret of some length" });
    assert.equal(JSON.stringify(config).includes("a secret of some length"), false);
  });

  it("the redis store without a key refuses to open, naming both ways to give it", async () => {
    const config = parseConfig(`${REDIS}tls: { store: redis }\n${SITE}`, "test.yaml", {});
    await assert.rejects(openTlsStore(tlsStoreSettings(config, {}), {}), /GATEWAY_TLS_STORE_KEY or by tls\.storeKeyFile/);
    const missingFile = parseConfig(`${REDIS}tls: { store: redis, storeKeyFile: /nonexistent/key }\n${SITE}`, "test.yaml", {});
    await assert.rejects(openTlsStore(tlsStoreSettings(missingFile, {}), {}), /tls\.storeKeyFile \/nonexistent\/key: cannot read/);
  });

  it("the files store keeps a shared secret private in the data directory, created once", async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), "rg-tls-stores-"));
    dirs.push(dataDir);
    let created = 0;
    const make = () => `secret-${++created}`;
    const store = new FilesTlsStore(dataDir);
    const [a, b] = await Promise.all([store.loadOrCreateSharedSecret("web-sessions", make), new FilesTlsStore(dataDir).loadOrCreateSharedSecret("web-sessions", make)]);
    assert.equal(a, b);
    assert.equal(created, 1);
    assert.equal((await stat(path.join(dataDir, "secrets", "web-sessions"))).mode & 0o777, 0o600);
  });

  it("with the redis store, gateways with their own data directories sign tokens and browser sessions with one key", async () => {
    const redis = await startRedis();
    try {
      const dir = await mkdtemp(path.join(os.tmpdir(), "rg-tls-stores-"));
      dirs.push(dir);
      const keyFile = path.join(dir, "store.key");
      await writeFile(keyFile, "a store key shared by the fleet\n", { mode: 0o600 });
      const gateway = (name: string) =>
        parseConfig(`redis: { url: "${redis.url}" }\ntls: { store: redis, storeKeyFile: ${keyFile} }\ndataDir: ${path.join(dir, name)}\n${SITE}`, "test.yaml", {});
      const [one, two] = await Promise.all([loadSigningKey(gateway("one")), loadSigningKey(gateway("two"))]);
      assert.equal(one.keyId, two.keyId);
      assert.equal(one.certPem, two.certPem);
      assert.equal([one, two].filter((key) => key.created).length, 1);
      // The registry browser's session key too: a session signed by one gateway is valid on the others.
      const [a, b] = await Promise.all([new StoredSessionKeySource(gateway("one")).key(), new StoredSessionKeySource(gateway("two")).key()]);
      assert.deepEqual(Buffer.from(a), Buffer.from(b));
      assert.equal(a.length, 32);
      // The same key from the environment, ending in a newline as a Kubernetes Secret's often does, opens
      // what the file's key sealed (both are trimmed).
      const fromEnv = parseConfig(`redis: { url: "${redis.url}" }\ntls: { store: redis }\ndataDir: ${path.join(dir, "three")}\n${SITE}`, "test.yaml", {});
      const previous = process.env[STORE_KEY_ENV];
      process.env[STORE_KEY_ENV] = "a store key shared by the fleet\n";
      try {
        assert.equal((await loadSigningKey(fromEnv)).keyId, one.keyId);
      } finally {
        if (previous === undefined) delete process.env[STORE_KEY_ENV];
        else process.env[STORE_KEY_ENV] = previous;
      }
    } finally {
      await redis.stop();
    }
  });
});
