// The OCI digest grammar the gateway checks digest parameters against (src/registry/digest.ts).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isDigestReference, isValidDigest } from "../../../src/registry/digest.js";

const HEX64 = "0123456789abcdef".repeat(4);

describe("isValidDigest", () => {
  it("accepts sha256 with 64 and sha512 with 128 lower-case hex digits", () => {
    assert.ok(isValidDigest(`sha256:${HEX64}`));
    assert.ok(isValidDigest(`sha512:${HEX64}${HEX64}`));
  });

  it("refuses a registered algorithm with the wrong length or case", () => {
    for (const digest of [`sha256:${HEX64.slice(1)}`, `sha256:${HEX64}0`, `sha256:${HEX64.toUpperCase()}`, `sha512:${HEX64}`, `sha256:${"g".repeat(64)}`]) {
      assert.equal(isValidDigest(digest), false, digest);
    }
  });

  it("follows the grammar for other algorithms: components joined by + . _ -, encoded [a-zA-Z0-9=_-]+", () => {
    assert.ok(isValidDigest("multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8"));
    assert.ok(isValidDigest("blake3:abc=_-XYZ"));
    for (const digest of ["", ":abc", "sha256:", "sha256", "SHA256:abc", "sha256::abc", "sha+:abc", "+sha:abc", "sha256:ab/c", "sha256:ab c", "sha 256:abc"]) {
      assert.equal(isValidDigest(digest), false, JSON.stringify(digest));
    }
  });
});

describe("isDigestReference", () => {
  it("a manifest reference with a colon is a digest, any other a tag", () => {
    assert.ok(isDigestReference(`sha256:${HEX64}`));
    assert.equal(isDigestReference("latest"), false);
    assert.equal(isDigestReference("v1.2_3-x"), false);
  });
});
