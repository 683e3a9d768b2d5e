import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { writeReport } from "../../../soak/report.js";
import { syntheticResult } from "./synthetic-result.js";
import { assertWellFormedXml } from "./well-formed.js";
import type { SoakResult } from "../../../soak/result.js";

async function report(result: SoakResult): Promise<{ markdown: string; dir: string; svgDir: string }> {
  const dir = await mkdtemp(path.join(tmpdir(), "soak-report-"));
  const svgDir = path.join(dir, "docs", "reliability");
  const markdownPath = path.join(dir, "docs", "reliability.md");
  await writeReport(result, { markdownPath, svgDir });
  return { markdown: await readFile(markdownPath, "utf8"), dir, svgDir };
}

test("the report states the run, the verdict, invariants, blobs, outcomes and the fault schedule", async (t) => {
  const { markdown, dir } = await report(syntheticResult());
  t.after(() => rm(dir, { recursive: true, force: true }));
  assert.match(markdown, /\*\*Verdict: passed\*\* — all 3 invariants held\./);
  assert.match(markdown, /- Command: `npm run soak -- --minutes 20`/);
  assert.match(markdown, /- Commit: `abc1234 \(clean\)`/);
  assert.match(markdown, /- Machine: 2 cores, 7\.7 GiB, Node v22\.12\.0/);
  assert.match(markdown, /- Length: 20\.1 min measured \(20 min planned\)/);
  assert.match(markdown, /\| no blob lost or corrupt \| held \| 0 lost, 0 corrupt of 412 blobs \|/);
  assert.match(markdown, /\| lost \| 0 \|\n\| corrupt \| 0 \|\n\nNo blob was lost or corrupted\./);
  assert.match(markdown, /\| podman pull \| 340 \| 5 \| 0 \|/);
  assert.match(markdown, /\| \*\*all\*\* \| 90460 \| 49 \| 0 \|/);
  assert.match(markdown, /\| 1 \| redis-killed \| 2:00 \| 2:30 \| SIGKILL redis \(pid 4242\), restarted after 20 s \|/);
  // A `|` in a detail would split the row; `<` would be taken for HTML.
  assert.match(markdown, /\| 4 \| cert-rotate \| 10:00 \| 10:05 \| cert rotate &lt;all> \\\| fleet-wide & quick \|/);
});

test("a broken invariant, a lost blob and an unexplained failure are reported as such", async (t) => {
  const base = syntheticResult();
  const { markdown, dir } = await report({
    ...base,
    blobs: { pushed: 10, verified: 8, lost: 1, corrupt: 1 },
    outcomes: [{ operation: "skopeo push", ok: 9, failedInFaultWindow: 0, unexplained: 1 }],
    invariants: [...base.invariants, { name: "no blob lost or corrupt", ok: false, detail: "1 lost, 1 corrupt of 10 blobs" }],
  });
  t.after(() => rm(dir, { recursive: true, force: true }));
  assert.match(markdown, /\*\*Verdict: FAILED\*\* — 1 of 4 invariants broken\./);
  assert.match(markdown, /\| no blob lost or corrupt \| \*\*BROKEN\*\* \| 1 lost, 1 corrupt of 10 blobs \|/);
  assert.match(markdown, /\*\*1 blob\(s\) lost and 1 corrupted\*\*/);
  assert.match(markdown, /\| skopeo push \| 9 \| 0 \| 1 \|/);
});

test("every plot is written, well-formed, shaded once per fault window and linked relative to the report", async (t) => {
  const result = syntheticResult();
  const { markdown, dir, svgDir } = await report(result);
  t.after(() => rm(dir, { recursive: true, force: true }));
  const files = (await readdir(svgDir)).sort();
  assert.deepEqual(files, ["connections.svg", "fds.svg", "p99.svg", "request-rate.svg", "rss.svg"]);
  for (const file of files) {
    assert.ok(markdown.includes(`](reliability/${file})`), `${file} is linked`);
    const svg = await readFile(path.join(svgDir, file), "utf8");
    assertWellFormedXml(svg);
    assert.equal([...svg.matchAll(/class="fault-window"/g)].length, result.faults.length, file);
  }
  const connections = await readFile(path.join(svgDir, "connections.svg"), "utf8");
  assert.match(connections, />to backend registries</);
  assert.match(connections, />to Redis</);
  // The synthetic run has no p99 while Redis is down: the line breaks there.
  const p99 = await readFile(path.join(svgDir, "p99.svg"), "utf8");
  assert.equal([...p99.matchAll(/<path class="series"/g)].length, 2);
});

test("a run with no samples and no faults still gives a complete report", async (t) => {
  const { markdown, dir, svgDir } = await report(syntheticResult({ samples: [], faults: [], durationSeconds: 0 }));
  t.after(() => rm(dir, { recursive: true, force: true }));
  assert.match(markdown, /No faults were injected\./);
  for (const file of await readdir(svgDir)) {
    const svg = await readFile(path.join(svgDir, file), "utf8");
    assertWellFormedXml(svg);
    assert.match(svg, />no samples</);
  }
});
