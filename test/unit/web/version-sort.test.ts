import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { compareVersionsNewestFirst } from "../../../src/web/version-sort.js";

const sorted = (tags: string[]) => [...tags].sort(compareVersionsNewestFirst);

describe("tags sorted like versions, newest first", () => {
  it("puts latest first, then versions newest first, then other tags by name", () => {
    assert.deepEqual(sorted(["main", "v1.9", "latest", "v1.10", "edge", "v2.0.0"]), ["latest", "v2.0.0", "v1.10", "v1.9", "edge", "main"]);
  });

  it("compares numeric parts as numbers, not text", () => {
    assert.deepEqual(sorted(["1.2.3", "1.10.0", "1.9.12", "10.0", "9.99"]), ["10.0", "9.99", "1.10.0", "1.9.12", "1.2.3"]);
  });

  it("puts a release before its prereleases, and later prereleases first (rc10 after rc9)", () => {
    assert.deepEqual(sorted(["1.2.3-rc1", "1.2.3", "1.2.3-rc10", "1.2.3-rc9", "1.2.2"]), ["1.2.3", "1.2.3-rc10", "1.2.3-rc9", "1.2.3-rc1", "1.2.2"]);
  });

  it("treats a missing part as zero, and dates written as versions as versions", () => {
    assert.deepEqual(sorted(["1.2", "1.2.1", "1"]), ["1.2.1", "1.2", "1"]);
    assert.deepEqual(sorted(["2024.01.05", "2023.12.31", "2024.1.10"]), ["2024.1.10", "2024.01.05", "2023.12.31"]);
  });

  it("handles numbers beyond double precision", () => {
    assert.deepEqual(sorted(["20260101000000000001", "20260101000000000002"]), ["20260101000000000002", "20260101000000000001"]);
  });

  it("orders non-version tags naturally by name", () => {
    assert.deepEqual(sorted(["sha-b", "build-10", "build-9", "sha-a"]), ["build-9", "build-10", "sha-a", "sha-b"]);
  });

  it("is a total order: equal versions spelt differently still sort the same way every time", () => {
    const tags = ["v1.0", "1.0", "1.0.0", "01.0", "V1.0"];
    const once = sorted(tags);
    assert.deepEqual(sorted([...tags].reverse()), once);
    for (const a of tags) for (const b of tags) {
      assert.equal(Math.sign(compareVersionsNewestFirst(a, b)) + Math.sign(compareVersionsNewestFirst(b, a)), 0, `${a} vs ${b}`);
      assert.equal(compareVersionsNewestFirst(a, b) === 0, a === b, `${a} vs ${b}`);
    }
  });
});
