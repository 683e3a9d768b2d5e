// The referrers index as the spec has it (src/referrers/index-document.ts): what a referrer's descriptor
// says, adding (once, a push again replacing its entry), removing, filtering by artifactType, and the
// fallback tag's name.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  emptyIndex,
  fallbackTag,
  filterByArtifactType,
  parseIndex,
  referrerDescriptor,
  serializeIndex,
  withReferrer,
  withoutReferrer,
} from "../../../src/referrers/index-document.js";
import { OCI_INDEX, OCI_MANIFEST } from "../../../src/registry/manifest.js";

const digest = (c: string) => `sha256:${c.repeat(64)}`;
const SIG = { mediaType: OCI_MANIFEST, digest: digest("a"), size: 10, artifactType: "application/vnd.example.sig" };
const SBOM = { mediaType: OCI_MANIFEST, digest: digest("b"), size: 20, artifactType: "application/vnd.example.sbom", annotations: { k: "v" } };

describe("referrers index", () => {
  it("adds referrers in push order, each once: a push again replaces its entry in place", () => {
    const two = withReferrer(withReferrer(emptyIndex(), SIG), SBOM);
    assert.deepEqual(two, { schemaVersion: 2, mediaType: OCI_INDEX, manifests: [SIG, SBOM] });
    const again = withReferrer(two, { ...SIG, annotations: { new: "yes" } });
    assert.deepEqual(again.manifests, [{ ...SIG, annotations: { new: "yes" } }, SBOM]);
    assert.deepEqual(withReferrer(two, SIG), two);
  });

  it("removes a referrer by digest, and removing one not listed changes nothing", () => {
    const two = withReferrer(withReferrer(emptyIndex(), SIG), SBOM);
    assert.deepEqual(withoutReferrer(two, SIG.digest).manifests, [SBOM]);
    assert.deepEqual(withoutReferrer(two, digest("c")), two);
  });

  it("filters by artifactType: any of the types given, everything when none is", () => {
    const two = withReferrer(withReferrer(emptyIndex(), SIG), SBOM);
    assert.deepEqual(filterByArtifactType(two, [SBOM.artifactType]).manifests, [SBOM]);
    assert.deepEqual(filterByArtifactType(two, [SBOM.artifactType, SIG.artifactType]).manifests, [SIG, SBOM]);
    assert.deepEqual(filterByArtifactType(two, ["application/other"]).manifests, []);
    assert.equal(filterByArtifactType(two, []), two);
  });

  it("describes a referrer by its artifactType, else its config's media type unless that is the empty one", () => {
    const annotations = { "org.opencontainers.image.created": "2026-01-01T00:00:00Z" };
    assert.deepEqual(referrerDescriptor({ mediaType: OCI_MANIFEST, artifactType: "x/sig", annotations }, digest("c"), 5), {
      mediaType: OCI_MANIFEST,
      digest: digest("c"),
      size: 5,
      artifactType: "x/sig",
      annotations,
    });
    assert.equal(referrerDescriptor({ mediaType: OCI_MANIFEST, config: { mediaType: "x/config" } }, digest("c"), 5).artifactType, "x/config");
    assert.equal(referrerDescriptor({ mediaType: OCI_MANIFEST, config: { mediaType: "application/vnd.oci.empty.v1+json" } }, digest("c"), 5).artifactType, undefined);
    assert.equal("annotations" in referrerDescriptor({ mediaType: OCI_MANIFEST, annotations: {} }, digest("c"), 5), false);
  });

  it("names the fallback tag <alg>-<ref>, the reference cut to 64 characters", () => {
    assert.equal(fallbackTag(digest("a")), `sha256-${"a".repeat(64)}`);
    assert.equal(fallbackTag(`sha512:${"b".repeat(128)}`), `sha512-${"b".repeat(64)}`);
  });

  it("reads back what it writes, and a tag holding something else as no index", () => {
    const two = withReferrer(withReferrer(emptyIndex(), SIG), SBOM);
    assert.deepEqual(parseIndex(serializeIndex(two)), two);
    assert.equal(parseIndex(Buffer.from("not json")), null);
    assert.equal(parseIndex(Buffer.from(JSON.stringify({ schemaVersion: 2, layers: [] }))), null);
  });
});
