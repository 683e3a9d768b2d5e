// Every unit test file that does not run alone, imported into one process: the runner then runs them one
// after another there, instead of starting a process (and loading TypeScript and the sources) per file,
// which cost more than most of these files' tests. scripts/run-tests.sh runs this file in place of them.
// The rule for "runs alone" is the script's: `// Runs alone:` in a file's first five lines.
import { readdir, readFile } from "node:fs/promises";

const root = new URL("./unit/", import.meta.url);
const files = (await readdir(root, { recursive: true })).filter((file) => file.endsWith(".test.ts")).sort();
for (const file of files) {
  const url = new URL(file, root);
  const head = (await readFile(url, "utf8")).split("\n", 5);
  if (head.some((line) => line.startsWith("// Runs alone:"))) continue;
  await import(url.href);
}
