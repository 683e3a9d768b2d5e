// Runs alone: compares the time of logins, which a neighbour's load would skew.
// A login costs the same whichever line of the file it hits. A {SHA} or $apr1$ user in a file with
// bcrypt users is checked against the bcrypt dummy too, so answering fast does not tell "cheap hash" (an old
// account worth attacking) from "bcrypt"; unknown users cost as much as known ones.
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { HashPool } from "../../../src/auth/hash-pool.js";
import { HtpasswdUsers } from "../../../src/auth/htpasswd.js";
import { createLogger } from "../../../src/observe/log.js";
import { run } from "../../helpers/process.js";

const logger = createLogger({ level: "silent", format: "json" });

async function htpasswdLine(flags: string[], user: string, password: string): Promise<string> {
  const result = await run("htpasswd", ["-nb", ...flags, user, password]);
  assert.equal(result.code, 0, result.stderr);
  return result.stdout.trim();
}

/** Median ms of `times` calls (sequential). */
async function medianMs(times: number, call: (i: number) => Promise<unknown>): Promise<number> {
  const samples: number[] = [];
  for (let i = 0; i < times; i++) {
    const started = performance.now();
    await call(i);
    samples.push(performance.now() - started);
  }
  samples.sort((a, b) => a - b);
  return samples[Math.floor(samples.length / 2)]!;
}

describe("flat login timing whatever the file holds", () => {
  let dir: string;
  let pool: HashPool;
  let mixed: HtpasswdUsers;
  let cheapOnly: HtpasswdUsers;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "rg-timing-"));
    const [bcryptLine, shaLine, aprLine] = await Promise.all([
      htpasswdLine(["-B", "-C", "10"], "admin", "Admin123"),
      htpasswdLine(["-s"], "legacy", "Legacy123"),
      htpasswdLine(["-m"], "nginx", "Nginx123"),
    ]);
    await writeFile(join(dir, "mixed"), `${bcryptLine}\n${shaLine}\n${aprLine}\n`);
    await writeFile(join(dir, "cheap"), `${shaLine}\n`);
    pool = new HashPool({ threads: 2, maxQueued: 16 });
    mixed = await HtpasswdUsers.open(join(dir, "mixed"), logger, { hashPool: pool });
    cheapOnly = await HtpasswdUsers.open(join(dir, "cheap"), logger, { hashPool: pool });
  });

  after(async () => {
    mixed?.close();
    cheapOnly?.close();
    await pool?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("a {SHA} or $apr1$ user among bcrypt users takes about as long as the bcrypt user, right or wrong", async () => {
    await mixed.verify("admin", "warm-up");
    const bcryptMs = await medianMs(3, (i) => mixed.verify("admin", `wrong-${i}`));
    assert.ok(bcryptMs > 20, `a cost-10 bcrypt check took only ${bcryptMs.toFixed(1)} ms: nothing to compare with`);
    const timings = {
      "{SHA} wrong": await medianMs(3, (i) => mixed.verify("legacy", `wrong-${i}`)),
      "$apr1$ wrong": await medianMs(3, (i) => mixed.verify("nginx", `wrong-${i}`)),
      unknown: await medianMs(3, (i) => mixed.verify(`nobody-${i}`, "guess")),
    };
    // The first right login of a cheap user is not cached yet: it pays the dummy too.
    const started = performance.now();
    assert.equal(await mixed.verify("legacy", "Legacy123"), true, "the real answer, not the dummy's");
    const shaRight = performance.now() - started;
    for (const [what, ms] of Object.entries({ ...timings, "{SHA} right": shaRight })) {
      assert.ok(ms > bcryptMs * 0.6, `${what} took ${ms.toFixed(1)} ms, bcrypt ${bcryptMs.toFixed(1)} ms`);
    }
    assert.equal(await mixed.verify("nginx", "Nginx123"), true);
    assert.equal(await mixed.verify("legacy", "Nginx123"), false);
  });

  it("a file of cheap hashes only stays cheap (the dummy matches the dearest line, not bcrypt)", async () => {
    const bcryptMs = await medianMs(3, (i) => mixed.verify("admin", `wrong-${i}`));
    const shaMs = await medianMs(3, (i) => cheapOnly.verify("legacy", `wrong-${i}`));
    assert.ok(shaMs < bcryptMs * 0.3, `{SHA}-only file: ${shaMs.toFixed(1)} ms, bcrypt ${bcryptMs.toFixed(1)} ms`);
    assert.equal(await cheapOnly.verify("legacy", "Legacy123"), true);
  });
});
