// Every unit test file that does not run alone, imported into one process: the runner then runs them one
// after another there, instead of starting a process (and loading TypeScript and the sources) per file,
// which cost more than most of these files' tests. scripts/run-tests.sh runs this file in place of them.
// The rule for "runs alone" is the script's: `// Runs alone:` in a file's first five lines.
// What one file leaves in the process reaches the files after it: a root-level afterEach hook also runs
// after their tests, and memory-tuning's V8 settings stay. Unit tests must not depend on a fresh process;
// a file that does belongs among those that run alone.
import { readdir, readFile } from "node:fs/promises";
import { test } from "node:test";

const root = new URL("./unit/", import.meta.url);
const files = (await readdir(root, { recursive: true })).filter((file) => file.endsWith(".test.ts")).sort();
for (const file of files) {
  const url = new URL(file, root);
  const head = (await readFile(url, "utf8")).split("\n", 5);
  if (head.some((line) => line.startsWith("// Runs alone:"))) continue;
  try {
    await import(url.href);
  } catch (error) {
    // One file that cannot load fails as a test of its own; the files after it still run.
    test(`test/unit/${file} loads`, () => {
      throw error;
    });
  }
}
