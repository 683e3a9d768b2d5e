// What a request counts as (Docker Hub's model) and whose counter it goes to.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { compileSiteLimits, limitKey, requestClass, ruleFor } from "../../../src/ratelimit/policy.js";
import { rateLimit } from "../../../src/config/schema.js";
import { routeOf } from "../../helpers/routes.js";

const DIGEST = "sha256:" + "a".repeat(64);
const classOf = (method: string, url: string) => {
  const [path, query = ""] = url.split("?");
  return requestClass(method, routeOf(method, query ? `${path}?${query}` : path!));
};

describe("request classes", () => {
  it("counts a manifest GET as a pull, by tag or digest; a HEAD is not a pull", () => {
    assert.equal(classOf("GET", "/v2/library/app/manifests/v1"), "pull");
    assert.equal(classOf("GET", `/v2/library/app/manifests/${DIGEST}`), "pull");
    assert.equal(classOf("HEAD", "/v2/library/app/manifests/v1"), "other");
  });

  it("counts blob GETs as their own class, blob HEADs not", () => {
    assert.equal(classOf("GET", `/v2/library/app/blobs/${DIGEST}`), "blob");
    assert.equal(classOf("HEAD", `/v2/library/app/blobs/${DIGEST}`), "other");
  });

  it("counts a push at upload start, upload finish and manifest PUT", () => {
    assert.equal(classOf("POST", "/v2/library/app/blobs/uploads/"), "push");
    assert.equal(classOf("POST", `/v2/library/app/blobs/uploads/?mount=${DIGEST}&from=other/app`), "push");
    assert.equal(classOf("PUT", `/v2/library/app/blobs/uploads/0b7c-uuid?_state=x&digest=${DIGEST}`), "push");
    assert.equal(classOf("PUT", "/v2/library/app/manifests/v1"), "push");
  });

  it("never counts the PATCH carrying a layer, not even under `any`", () => {
    assert.equal(classOf("PATCH", "/v2/library/app/blobs/uploads/0b7c-uuid?_state=x"), null);
  });

  it("puts everything else in `other`, which only `any` counts", () => {
    for (const [method, url] of [
      ["GET", "/v2/"],
      ["GET", "/v2/_catalog"],
      ["GET", "/v2/library/app/tags/list"],
      ["GET", "/v2/library/app/blobs/uploads/0b7c-uuid"],
      ["DELETE", "/v2/library/app/blobs/uploads/0b7c-uuid"],
      ["DELETE", "/v2/library/app/manifests/v1"],
      ["GET", "/token"],
    ] as const) {
      assert.equal(classOf(method, url), "other", `${method} ${url}`);
    }
  });
});

describe("site limits", () => {
  const limits = [
    rateLimit.parse({ name: "pulls", operations: ["pull"], rate: 5, per: "1m", overrides: { ci: { rate: 100, burst: 20 } } }),
    rateLimit.parse({ name: "everything", operations: ["any"], rate: 1000, per: "1h", burst: 50, key: "ip" }),
  ];
  const compiled = compileSiteLimits("hub", limits)!;

  it("groups limits by class once: `any` covers every class", () => {
    assert.deepEqual(compiled.get("pull")!.map((l) => l.name), ["pulls", "everything"]);
    assert.deepEqual(compiled.get("blob")!.map((l) => l.name), ["everything"]);
    assert.deepEqual(compiled.get("other")!.map((l) => l.name), ["everything"]);
    assert.equal(compileSiteLimits("hub", []), null);
  });

  it("burst defaults to the rate; per is in milliseconds", () => {
    assert.deepEqual(compiled.get("pull")![0]!.rule, { rate: 5, periodMs: 60_000, burst: 5 });
  });

  it("keys by user when there is one, else by IP; `key: ip` always by IP", () => {
    const [pulls, everything] = compiled.get("pull")!;
    assert.equal(limitKey(pulls!, { user: "alice", ip: "10.0.0.1" }), "hub:pulls:u:alice");
    assert.equal(limitKey(pulls!, { ip: "10.0.0.1" }), "hub:pulls:ip:10.0.0.1");
    assert.equal(limitKey(everything!, { user: "alice", ip: "2001:db8::1" }), "hub:everything:ip:2001:db8::1");
    assert.notEqual(limitKey(pulls!, { user: "10.0.0.1", ip: "10.0.0.2" }), limitKey(pulls!, { ip: "10.0.0.1" }));
  });

  it("applies a user's override, same window, only to that user", () => {
    const [pulls, everything] = compiled.get("pull")!;
    assert.deepEqual(ruleFor(pulls!, { user: "ci", ip: "10.0.0.1" }), { rate: 100, periodMs: 60_000, burst: 20 });
    assert.deepEqual(ruleFor(pulls!, { user: "alice", ip: "10.0.0.1" }), pulls!.rule);
    assert.deepEqual(ruleFor(everything!, { user: "ci", ip: "10.0.0.1" }), everything!.rule);
  });
});
