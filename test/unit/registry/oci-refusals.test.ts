// What the authorize stage refuses for the OCI spec before a registry sees it (src/registry/oci-refusals.ts):
// a manifest DELETE by tag, and digest/mount parameters that are not digests, read from the query and the
// mount form with the pipeline's one reading (formValues).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { specRefusal } from "../../../src/registry/oci-refusals.js";
import { classify, type RegistryRoute } from "../../../src/registry/routes.js";

const HEX64 = "ab".repeat(32);
const DIGEST = `sha256:${HEX64}`;

function route(method: string, path: string, mountFrom: string[] = []): RegistryRoute {
  const classified = classify(method, path, mountFrom);
  assert.ok(classified.ok, path);
  return classified.route;
}

const refuse = { tagDelete: "refuse" } as const;

describe("specRefusal: tag delete", () => {
  it("a DELETE by tag is 405 UNSUPPORTED, telling to delete by digest, unless the site passes it", () => {
    const byTag = route("DELETE", "/v2/team/app/manifests/v1");
    const refused = specRefusal(refuse, byTag, "DELETE", "", undefined);
    assert.equal(refused?.kind, "methodNotAllowed");
    assert.match(refused!.message, /DELETE \/v2\/team\/app\/manifests\/<digest>/);
    assert.deepEqual(refused!.headers, { Allow: "GET, HEAD, PUT" });
    assert.equal(specRefusal({}, byTag, "DELETE", "", undefined)?.kind, "methodNotAllowed", "absent is refuse");
    assert.equal(specRefusal({ tagDelete: "pass" }, byTag, "DELETE", "", undefined), null);
  });

  it("a DELETE by digest, and reads or writes by tag, go on", () => {
    assert.equal(specRefusal(refuse, route("DELETE", `/v2/team/app/manifests/${DIGEST}`), "DELETE", "", undefined), null);
    assert.equal(specRefusal(refuse, route("GET", "/v2/team/app/manifests/v1"), "GET", "", undefined), null);
    assert.equal(specRefusal(refuse, route("PUT", "/v2/team/app/manifests/v1"), "PUT", "", undefined), null);
  });
});

describe("specRefusal: digest parameters", () => {
  const finish = route("PUT", "/v2/team/app/blobs/uploads/abc-123");
  const start = route("POST", "/v2/team/app/blobs/uploads/", ["team/other"]);

  it("an upload finish with a malformed digest is 400 DIGEST_INVALID; a valid or absent one goes on", () => {
    for (const query of ["digest=sha256:abc", `digest=sha256:${HEX64.toUpperCase()}`, `_state=x&digest=${DIGEST}0&digest=${DIGEST}`, `digest=${DIGEST}&digest=nope`]) {
      assert.equal(specRefusal(refuse, finish, "PUT", query, undefined)?.kind, "digestInvalid", query);
    }
    for (const query of [`digest=${DIGEST}`, `_state=abc&digest=${encodeURIComponent(DIGEST)}`, "", "digest="]) {
      assert.equal(specRefusal(refuse, finish, "PUT", query, undefined), null, query);
    }
  });

  it("a mount with a malformed digest, in the query or the form, is 400 DIGEST_INVALID", () => {
    assert.equal(specRefusal(refuse, start, "POST", "mount=sha256:abc&from=team/other", undefined)?.kind, "digestInvalid");
    assert.equal(specRefusal(refuse, start, "POST", "", Buffer.from("mount=sha256%3Aabc&from=team%2Fother"))?.kind, "digestInvalid");
    assert.equal(specRefusal(refuse, start, "POST", `mount=${DIGEST}&from=team/other`, undefined), null);
    assert.equal(specRefusal(refuse, start, "POST", "", Buffer.from(`mount=${encodeURIComponent(DIGEST)}&from=team%2Fother`)), null);
    assert.equal(specRefusal(refuse, start, "POST", "", undefined), null);
  });

  it("an invalid percent-escape is a bad request; digest elsewhere (a chunk, a status) is not checked", () => {
    assert.equal(specRefusal(refuse, finish, "PUT", "digest=%zz", undefined)?.kind, "badRequest");
    const chunk = route("PATCH", "/v2/team/app/blobs/uploads/abc-123");
    assert.equal(specRefusal(refuse, chunk, "PATCH", "digest=nope", undefined), null);
  });
});
