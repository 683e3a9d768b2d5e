import assert from "node:assert/strict";
import { mkdtemp, readdir, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { FileSessionKeySource } from "../../../src/web/session-key.js";

describe("the session key file", () => {
  const dirs: string[] = [];
  after(() => Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true }))));

  it("is created once, private, and every source racing to create it gets the same key", async () => {
    const dataDir = await mkdtemp(join(tmpdir(), "rg-session-key-"));
    dirs.push(dataDir);
    const sources = Array.from({ length: 8 }, () => new FileSessionKeySource(dataDir));
    const keys = await Promise.all(sources.map((source) => source.key()));
    for (const key of keys) assert.deepEqual(Buffer.from(key), Buffer.from(keys[0]!));
    assert.equal(keys[0]!.length, 32);
    assert.equal((await stat(sources[0]!.file)).mode & 0o777, 0o600);
    assert.deepEqual(await readdir(join(dataDir, "web")), ["session.key"], "no temporary file left behind");
    // A process started later reads it; it is never replaced.
    assert.deepEqual(Buffer.from(await new FileSessionKeySource(dataDir).key()), Buffer.from(keys[0]!));
  });
});
