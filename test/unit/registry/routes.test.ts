import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { classify, hasDotSegments, isValidRepositoryName } from "../../../src/registry/routes.js";

const DIGEST = "sha256:" + "a".repeat(64);
const route = (method: string, url: string) => {
  const [path, query = ""] = url.split("?");
  return classify(method, path!, new URLSearchParams(query));
};

describe("registry route classification", () => {
  it("recognises the base and catalog endpoints", () => {
    assert.equal(route("GET", "/v2/").kind, "base");
    assert.equal(route("GET", "/v2").kind, "base");
    assert.deepEqual(route("GET", "/v2/_catalog?n=10").accesses, [{ type: "registry", name: "catalog", action: "*" }]);
  });

  it("matches on the suffix so names may contain manifests, blobs and slashes", () => {
    const r = route("GET", "/v2/team/manifests/blobs/manifests/v1.2");
    assert.equal(r.kind, "manifest");
    assert.equal(r.repository, "team/manifests/blobs");
    assert.equal(r.reference, "v1.2");
    const b = route("HEAD", `/v2/a/blobs/uploads/blobs/${DIGEST}`);
    assert.equal(b.kind, "blob");
    assert.equal(b.repository, "a/blobs/uploads");
    assert.equal(b.reference, DIGEST);
  });

  it("tells manifests by tag and by digest, tags list and referrers", () => {
    assert.equal(route("GET", `/v2/library/alpine/manifests/${DIGEST}`).reference, DIGEST);
    assert.equal(route("GET", "/v2/library/alpine/tags/list?n=5").kind, "tags");
    assert.equal(route("GET", `/v2/library/alpine/referrers/${DIGEST}`).kind, "referrers");
  });

  it("names each upload phase", () => {
    assert.equal(route("POST", "/v2/app/blobs/uploads/").uploadPhase, "start");
    assert.equal(route("PATCH", "/v2/app/blobs/uploads/0b1c-uuid?_state=abc").uploadPhase, "chunk");
    assert.equal(route("PUT", `/v2/app/blobs/uploads/0b1c-uuid?_state=abc&digest=${DIGEST}`).uploadPhase, "finish");
    assert.equal(route("GET", "/v2/app/blobs/uploads/0b1c-uuid").uploadPhase, "status");
    assert.equal(route("DELETE", "/v2/app/blobs/uploads/0b1c-uuid").uploadPhase, "cancel");
  });

  it("derives accesses by distribution's rule", () => {
    assert.deepEqual(route("GET", "/v2/a/b/manifests/latest").accesses.map((a) => a.action), ["pull"]);
    assert.deepEqual(route("HEAD", `/v2/a/b/blobs/${DIGEST}`).accesses.map((a) => a.action), ["pull"]);
    assert.deepEqual(route("PUT", "/v2/a/b/manifests/latest").accesses.map((a) => a.action), ["pull", "push"]);
    assert.deepEqual(route("PATCH", "/v2/a/b/blobs/uploads/u").accesses.map((a) => a.action), ["pull", "push"]);
    assert.deepEqual(route("DELETE", `/v2/a/b/manifests/${DIGEST}`).accesses.map((a) => a.action), ["delete"]);
    assert.deepEqual(route("DELETE", "/v2/a/b/blobs/uploads/u").accesses.map((a) => a.action), ["delete"]);
  });

  it("requires pull on the source of a cross-repository mount", () => {
    const r = route("POST", `/v2/dest/app/blobs/uploads/?mount=${DIGEST}&from=src/app`);
    assert.equal(r.mountFrom, "src/app");
    assert.deepEqual(r.accesses, [
      { type: "repository", name: "dest/app", action: "pull" },
      { type: "repository", name: "dest/app", action: "push" },
      { type: "repository", name: "src/app", action: "pull" },
    ]);
  });

  it("leaves unknown paths and invalid names as other, with no accesses", () => {
    assert.equal(route("GET", "/v2/UPPER/manifests/latest").kind, "other");
    assert.equal(route("GET", "/v2/a/unknown/thing").kind, "other");
    assert.equal(route("GET", "/").kind, "other");
    assert.equal(route("GET", `/v2/${"a".repeat(256)}/manifests/latest`).kind, "other");
  });

  it("validates repository names by the distribution grammar", () => {
    assert.ok(isValidRepositoryName("library/alpine"));
    assert.ok(isValidRepositoryName("a.b_c__d---e/f"));
    assert.ok(!isValidRepositoryName("a..b"));
    assert.ok(!isValidRepositoryName("-a"));
    assert.ok(!isValidRepositoryName("a/"));
    assert.ok(!isValidRepositoryName("a".repeat(256)));
  });

  it("spots dot segments, plain or percent-encoded", () => {
    assert.ok(hasDotSegments("/v2/../etc/passwd"));
    assert.ok(hasDotSegments("/v2/%2e%2e/x"));
    assert.ok(hasDotSegments("/v2/%2E./x"));
    assert.ok(hasDotSegments("/v2/./x"));
    assert.ok(!hasDotSegments("/v2/a..b/manifests/latest"));
    assert.ok(!hasDotSegments("/v2/a/manifests/v1.0"));
  });
});
