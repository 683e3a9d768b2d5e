// Content-Range parsing and the offset rules: what a chunk must start at, and what the backend's Range says.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { checkChunk, offsetFromRange, parseContentRange, rangeHeader } from "../../../src/uploads/offsets.js";

describe("parseContentRange", () => {
  it("reads the spec's <start>-<end>; none is a streamed PATCH", () => {
    assert.deepEqual(parseContentRange("0-1023"), { ok: true, range: { start: 0, end: 1023 } });
    assert.deepEqual(parseContentRange(" 10-19 "), { ok: true, range: { start: 10, end: 19 } });
    assert.deepEqual(parseContentRange(undefined), { ok: true, range: null });
  });

  it("refuses anything else: units, open ends, signs, lists, numbers past 2^53, two headers", () => {
    for (const bad of ["bytes 0-9/10", "bytes=0-9", "0-", "-9", "+0-9", "0-9,10-19", "a-b", "", "0 - 9", "1234567890123456-1234567890123457"]) {
      assert.equal(parseContentRange(bad).ok, false, bad);
    }
    assert.equal(parseContentRange(["0-9", "0-9"]).ok, false);
  });
});

describe("checkChunk", () => {
  it("lets through a chunk starting at the offset, and any chunk without a Content-Range", () => {
    assert.deepEqual(checkChunk(10, "10-19", "10"), { ok: true });
    assert.deepEqual(checkChunk(10, "10-19", undefined), { ok: true });
    assert.deepEqual(checkChunk(10, undefined, "5"), { ok: true });
    assert.deepEqual(checkChunk(0, "0-0", "1"), { ok: true });
  });

  it("refuses a chunk that does not start where the upload stands (out of order, repeated) with 416", () => {
    const ahead = checkChunk(10, "20-29", "10");
    assert.equal(ahead.ok, false);
    assert.equal(!ahead.ok && ahead.kind, "rangeNotSatisfiable");
    const repeated = checkChunk(10, "0-9", "10");
    assert.equal(!repeated.ok && repeated.kind, "rangeNotSatisfiable");
  });

  it("does not check the start of an upload whose offset is unknown, but still refuses what is malformed", () => {
    assert.deepEqual(checkChunk(null, "20-29", "10"), { ok: true });
    const malformed = checkChunk(null, "bytes 0-9/10", "10");
    assert.equal(!malformed.ok && malformed.kind, "uploadInvalid");
    const backwards = checkChunk(null, "9-0", "10");
    assert.equal(!backwards.ok && backwards.kind, "rangeNotSatisfiable");
  });

  it("refuses a Content-Length other than the range's length", () => {
    const verdict = checkChunk(0, "0-9", "11");
    assert.equal(!verdict.ok && verdict.kind, "sizeInvalid");
  });
});

describe("offsetFromRange", () => {
  it("reads 0-N as N+1 bytes held", () => {
    assert.equal(offsetFromRange("0-9", "chunk"), 10);
    assert.equal(offsetFromRange("0-1", "start"), 2);
  });

  it("reads 0-0 as empty after an upload start only: after a chunk it may be one byte", () => {
    assert.equal(offsetFromRange("0-0", "start"), 0);
    assert.equal(offsetFromRange("0-0", "chunk"), null);
    assert.equal(offsetFromRange("0-0", "status"), null);
  });

  it("knows nothing from a missing or foreign Range", () => {
    assert.equal(offsetFromRange(undefined, "chunk"), null);
    assert.equal(offsetFromRange("bytes=0-9", "chunk"), null);
    assert.equal(offsetFromRange("5-9", "chunk"), null);
  });
});

describe("rangeHeader", () => {
  it("answers 0-<last byte>, and 0-0 for an empty upload as distribution does", () => {
    assert.equal(rangeHeader(10), "0-9");
    assert.equal(rangeHeader(1), "0-0");
    assert.equal(rangeHeader(0), "0-0");
  });
});
