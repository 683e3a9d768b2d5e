import assert from "node:assert/strict";
import { mkdtemp, readdir, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { gatewayConfig } from "../../../src/config/schema.js";
import { SESSION_KEY_NAME, StoredSessionKeySource } from "../../../src/web/session-key.js";

describe("the session key (a shared secret of the TLS store)", () => {
  const dirs: string[] = [];
  after(() => Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true }))));

  it("with the files store: created once, private, and every source racing to create it gets the same key", async () => {
    const dataDir = await mkdtemp(join(tmpdir(), "rg-session-key-"));
    dirs.push(dataDir);
    const config = gatewayConfig.parse({ dataDir, sites: [{ hosts: ["localhost"], backend: "http://127.0.0.1:1" }] });
    const sources = Array.from({ length: 8 }, () => new StoredSessionKeySource(config));
    const keys = await Promise.all(sources.map((source) => source.key()));
    for (const key of keys) assert.deepEqual(Buffer.from(key), Buffer.from(keys[0]!));
    assert.equal(keys[0]!.length, 32);
    const file = join(dataDir, "secrets", SESSION_KEY_NAME);
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    assert.deepEqual(await readdir(join(dataDir, "secrets")), [SESSION_KEY_NAME], "no temporary file left behind");
    // A process started later reads it; it is never replaced.
    assert.deepEqual(Buffer.from(await new StoredSessionKeySource(config).key()), Buffer.from(keys[0]!));
  });
});
