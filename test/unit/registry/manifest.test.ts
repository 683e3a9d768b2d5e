// What a manifest PUT must be (src/registry/manifest.ts): JSON of a known media type, from the body's
// mediaType or the Content-Type, schemaVersion 2, a subject that is a descriptor.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST, readManifest } from "../../../src/registry/manifest.js";

const json = (value: unknown) => Buffer.from(JSON.stringify(value));
const SUBJECT = { mediaType: OCI_MANIFEST, digest: `sha256:${"a".repeat(64)}`, size: 3 };

describe("manifest PUT bodies", () => {
  it("accepts the four media types, from the body or from the Content-Type", () => {
    for (const mediaType of [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST]) {
      const fromBody = readManifest(json({ schemaVersion: 2, mediaType }), undefined);
      assert.ok(fromBody.ok && fromBody.manifest.mediaType === mediaType, mediaType);
      const fromHeader = readManifest(json({ schemaVersion: 2 }), `${mediaType}; charset=utf-8`);
      assert.ok(fromHeader.ok && fromHeader.manifest.mediaType === mediaType, mediaType);
    }
  });

  it("reads an artifact's artifactType and subject", () => {
    const reading = readManifest(json({ schemaVersion: 2, mediaType: OCI_MANIFEST, artifactType: "x/sig", subject: SUBJECT }), OCI_MANIFEST);
    assert.ok(reading.ok);
    assert.deepEqual([reading.manifest.artifactType, reading.manifest.subject], ["x/sig", SUBJECT]);
  });

  it("refuses what is not a manifest it knows", () => {
    const refused = (body: Buffer, contentType?: string) => {
      const reading = readManifest(body, contentType);
      assert.equal(reading.ok, false, body.toString());
    };
    refused(Buffer.from("not json"), OCI_MANIFEST);
    refused(json([1, 2]), OCI_MANIFEST);
    refused(json({ schemaVersion: 2 }), "application/octet-stream");
    refused(json({ schemaVersion: 2, mediaType: "application/x-unknown" }), OCI_MANIFEST);
    refused(json({ schemaVersion: 2, mediaType: OCI_MANIFEST }), DOCKER_MANIFEST);
    refused(json({ schemaVersion: 1, mediaType: OCI_MANIFEST }), OCI_MANIFEST);
    refused(json({ schemaVersion: 2, mediaType: OCI_MANIFEST, subject: { digest: "sha256:short" } }), OCI_MANIFEST);
    // A subject digest is held to the same grammar as every other digest: sha256 is 64 lower-case hex digits.
    refused(json({ schemaVersion: 2, mediaType: OCI_MANIFEST, subject: { ...SUBJECT, digest: `sha256:${"A".repeat(64)}` } }), OCI_MANIFEST);
    refused(json({ schemaVersion: 2, mediaType: OCI_MANIFEST, subject: { ...SUBJECT, digest: `sha256:${"a".repeat(40)}` } }), OCI_MANIFEST);
  });
});
