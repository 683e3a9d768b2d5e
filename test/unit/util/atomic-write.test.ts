// Atomic file replacement: util/atomic-write.ts.
import assert from "node:assert/strict";
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { writeFileAtomically } from "../../../src/util/atomic-write.js";

describe("atomic file writes", async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), "rg-atomic-"));
  after(() => rm(dir, { recursive: true, force: true }));

  it("replaces a file with exactly the mode asked for, whatever the umask, and leaves no temporary file", async () => {
    const file = path.join(dir, "key.pem");
    await writeFile(file, "old", { mode: 0o644 });
    const umask = process.umask(0o077);
    try {
      await writeFileAtomically(file, "new", 0o640);
    } finally {
      process.umask(umask);
    }
    assert.equal(await readFile(file, "utf8"), "new");
    assert.equal((await stat(file)).mode & 0o777, 0o640);
    assert.deepEqual(await readdir(dir), ["key.pem"]);
  });

  it("leaves no temporary file when the rename fails", async () => {
    // A directory that is not empty where the file should be: the rename fails after the temporary file was written.
    const blocked = path.join(dir, "blocked");
    await mkdir(path.join(blocked, "inside"), { recursive: true });
    await assert.rejects(writeFileAtomically(blocked, "new", 0o600));
    assert.deepEqual((await readdir(dir)).sort(), ["blocked", "key.pem"]);
  });
});
