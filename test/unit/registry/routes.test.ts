import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { classify, isValidRepositoryName, type Classification, type RegistryRoute } from "../../../src/registry/routes.js";
import { checkTarget, formValues } from "../../../src/registry/target.js";

const DIGEST = "sha256:" + "a".repeat(64);

/** The pipeline's reading: the target must be canonical, then `from` comes from the query. */
function classifyTarget(method: string, url: string, formFrom: string[] = []): Classification {
  const target = checkTarget(url);
  assert.ok(target.ok, `expected ${url} to be canonical`);
  return classify(method, target.path, [...formFrom, ...(formValues(target.rawQuery, "from") ?? [])]);
}

const route = (method: string, url: string): RegistryRoute => {
  const classified = classifyTarget(method, url);
  assert.ok(classified.ok, `expected ${method} ${url} to classify, got ${JSON.stringify(classified)}`);
  return classified.route;
};

const refusal = (method: string, url: string) => {
  const classified = classifyTarget(method, url);
  assert.ok(!classified.ok, `expected ${method} ${url} to be refused`);
  return classified;
};

describe("registry route classification", () => {
  it("recognises the base and catalog endpoints", () => {
    assert.equal(route("GET", "/v2/").kind, "base");
    assert.deepEqual(route("GET", "/v2/_catalog?n=10").accesses, [{ type: "registry", name: "catalog", action: "*" }]);
  });

  it("matches on the whole path so names may contain manifests, blobs and slashes", () => {
    const r = route("GET", "/v2/team/manifests/blobs/manifests/v1.2");
    assert.equal(r.kind, "manifest");
    assert.equal(r.repository, "team/manifests/blobs");
    assert.equal(r.reference, "v1.2");
    const b = route("HEAD", `/v2/a/blobs/uploads/blobs/${DIGEST}`);
    assert.equal(b.kind, "blob");
    assert.equal(b.repository, "a/blobs/uploads");
    assert.equal(b.reference, DIGEST);
    assert.equal(route("GET", "/v2/a/manifests/tags/list").repository, "a/manifests");
  });

  it("tells manifests by tag and by digest, tags list and referrers", () => {
    assert.equal(route("GET", `/v2/library/alpine/manifests/${DIGEST}`).reference, DIGEST);
    assert.equal(route("GET", "/v2/library/alpine/tags/list?n=5").kind, "tags");
    assert.equal(route("GET", `/v2/library/alpine/referrers/${DIGEST}`).kind, "referrers");
  });

  it("knows docker search's v1 ping and search, which the gateway answers itself", () => {
    assert.equal(route("GET", "/v1/_ping").kind, "ping");
    assert.equal(route("GET", "/v1/search?q=app&n=25").kind, "search");
    assert.deepEqual(route("GET", "/v1/search?q=app").accesses, []);
    assert.equal(refusal("POST", "/v1/search").kind, "methodNotAllowed");
    assert.equal(refusal("GET", "/v1/users/").kind, "notFound");
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
  });

  it("lets the holder of push cancel an upload, and asks a token backend for delete", () => {
    const cancel = route("DELETE", "/v2/a/b/blobs/uploads/u");
    assert.deepEqual(cancel.accesses, [{ type: "repository", name: "a/b", action: "push" }]);
    assert.deepEqual(cancel.backendAccesses, [{ type: "repository", name: "a/b", action: "delete" }]);
  });

  it("requires pull on every source of a cross-repository mount, from the query or the form", () => {
    const r = route("POST", `/v2/dest/app/blobs/uploads/?mount=${DIGEST}&from=src/app`);
    assert.deepEqual(r.mountFrom, ["src/app"]);
    assert.deepEqual(r.accesses, [
      { type: "repository", name: "dest/app", action: "pull" },
      { type: "repository", name: "dest/app", action: "push" },
      { type: "repository", name: "src/app", action: "pull" },
    ]);
    const both = classifyTarget("POST", `/v2/dest/blobs/uploads/?mount=${DIGEST}&from=src/a&fr%6Fm=src%2Fb`, ["secret/c"]);
    assert.ok(both.ok);
    assert.deepEqual(both.route.mountFrom, ["secret/c", "src/a", "src/b"]);
    // A source that is no repository name is not guessed at.
    assert.equal(refusal("POST", "/v2/dest/blobs/uploads/?mount=x&from=Secret").kind, "nameInvalid");
  });

  it("refuses what is not a registry operation", () => {
    assert.equal(refusal("GET", "/v2/UPPER/manifests/latest").kind, "nameInvalid");
    assert.equal(refusal("GET", `/v2/${"a".repeat(256)}/manifests/latest`).kind, "nameInvalid");
    assert.equal(refusal("GET", "/v2/a/unknown/thing").kind, "notFound");
    assert.equal(refusal("GET", "/").kind, "notFound");
    // distribution answers /v2 with an HTML redirect: not something to pass on.
    assert.equal(refusal("GET", "/v2").kind, "notFound");
    assert.equal(refusal("GET", "/v2/a/blobs/uploads").kind, "notFound");
    assert.equal(refusal("GET", `/v2/a/blobs/uploads/${DIGEST}`).kind, "notFound");
  });

  it("refuses methods a route does not take, naming the ones it does", () => {
    const r = refusal("POST", "/v2/a/manifests/latest");
    assert.equal(r.kind, "methodNotAllowed");
    assert.equal(r.allow, "GET, HEAD, PUT, DELETE");
    assert.equal(refusal("PUT", `/v2/a/blobs/${DIGEST}`).kind, "methodNotAllowed");
    assert.equal(refusal("DELETE", "/v2/a/tags/list").kind, "methodNotAllowed");
    assert.equal(refusal("OPTIONS", "/v2/").kind, "methodNotAllowed");
    assert.equal(refusal("DELETE", "/v2/_catalog").kind, "methodNotAllowed");
    assert.equal(refusal("GET", "/v2/a/blobs/uploads/").kind, "methodNotAllowed");
  });

  it("validates repository names by the distribution grammar", () => {
    assert.ok(isValidRepositoryName("library/alpine"));
    assert.ok(isValidRepositoryName("a.b_c__d---e/f"));
    assert.ok(!isValidRepositoryName("a..b"));
    assert.ok(!isValidRepositoryName("-a"));
    assert.ok(!isValidRepositoryName("a/"));
    assert.ok(!isValidRepositoryName("a".repeat(256)));
  });
});

describe("request target canonical form", () => {
  const refused = (url: string) => assert.equal(checkTarget(url).ok, false, `expected ${JSON.stringify(url)} refused`);

  it("accepts registry targets as they are, query included", () => {
    assert.deepEqual(checkTarget(`/v2/a/b/blobs/uploads/3f2-c?_state=ab%3D%3D&digest=${DIGEST.replace(":", "%3A")}`), {
      ok: true,
      path: "/v2/a/b/blobs/uploads/3f2-c",
      rawQuery: `_state=ab%3D%3D&digest=sha256%3A${"a".repeat(64)}`,
    });
    assert.ok(checkTarget("/v2/").ok);
    assert.ok(checkTarget("/v2/a/manifests/V1.0_rc-1").ok);
  });

  it("refuses every spelling the backend could read differently", () => {
    refused("/v2/secr%65t/app/manifests/latest");
    refused("/v2/secret%2Fapp/manifests/latest");
    refused(`/v2/a/blobs/sha256%3A${"a".repeat(64)}`);
    refused("/v2/a/tags/lis%74");
    refused("/v2/%5Fcatalog");
    refused("/v2/a/manifests/latest#x");
    refused("/v2/public/app/blobs/uploads/..\\..\\secret\\app\\manifests\\latest");
    refused("/v2/public/../secret/app/manifests/latest");
    refused("/v2/./a/manifests/latest");
    refused("/v2/a//manifests/latest");
    refused("/v2/a/manifests/latest;x=y");
    refused("/v2/\u00e9/manifests/latest");
    refused("http://evil/v2/");
    refused("*");
    refused("/v2/a/manifests/latest?x=%zz");
    refused("/v2/a/manifests/latest?x=a#b");
  });
});

describe("form values the way Go reads them", () => {
  it("unescapes keys and values, and splits on & and ;", () => {
    assert.deepEqual(formValues("from=a%2Fb&fr%6Fm=c+d&x=1;from=e", "from"), ["a/b", "c d", "e"]);
    assert.deepEqual(formValues("", "from"), []);
    assert.deepEqual(formValues("from", "from"), [""]);
    assert.equal(formValues("from=%zz", "from"), null);
    assert.equal(formValues("a=%C0", "from"), null);
  });
});
