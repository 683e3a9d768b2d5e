// The registry browser bench's table in docs/benchmarks.md: run alone, it replaces only its own block in a
// Node major's section, so the proxy comparison measured by a full run stays as it was.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { PageLoad } from "../../bench/page-load.js";
import { spliceWebPageBlock, webPageMarkdown, type WebPageResult } from "../../bench/web-page.js";

const load = (fcp: number, bytes: number): PageLoad => ({
  status: 200,
  transferredBytes: bytes,
  documentTransferBytes: 1024,
  documentBodyBytes: 900,
  resources: 2,
  firstContentfulPaintMs: fcp,
  responseEndMs: fcp / 2,
});

const result = (fcp: number): WebPageResult => ({
  repositories: 5000,
  loads: 3,
  visitors: [{ visitor: "anonymous", cold: [load(fcp, 4096), load(fcp + 20, 4096), load(fcp + 10, 8192)], warm: [load(50, 1024)] }],
  problems: [],
});

const SECTION = ["<!-- node 20: x -->", "## Node 20", "", "### Results", "", "| a |", "", "### Method", "", "- how", "<!-- /node 20 -->"].join("\n");

describe("the web page bench's report block", () => {
  it("shows medians of the loads", () => {
    const block = webPageMarkdown(result(100));
    assert.match(block, /\| anonymous \| cold \| 4\.0 KiB \| 1\.0 KiB \| 2 \| 110 ms \| 55 ms \|/);
    assert.match(block, /\| anonymous \| warm \| 1\.0 KiB \| 1\.0 KiB \| 2 \| 50 ms \| 25 ms \|/);
  });

  it("goes before the section's Method the first time, and replaces itself, and only itself, after", () => {
    const first = spliceWebPageBlock(SECTION, webPageMarkdown(result(100)));
    assert.ok(first.indexOf("110 ms") < first.indexOf("### Method"));
    assert.ok(first.indexOf("### Results") < first.indexOf("110 ms"));
    const second = spliceWebPageBlock(first, webPageMarkdown(result(300)));
    assert.doesNotMatch(second, /110 ms/);
    assert.match(second, /310 ms/);
    assert.equal(second.match(/#### Registry browser/g)?.length, 1);
    assert.equal(second.replace(/<!-- web-page[\s\S]*<!-- \/web-page -->\n\n/, ""), SECTION);
  });
});
