// The scope grammar of the Docker token spec, both ways.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { formatScope, parseScope, parseScopes } from "../../../src/auth/scope.js";
import { routeOf } from "../../helpers/routes.js";

describe("scope parsing", () => {
  it("reads type, name and actions, in any order and without duplicates", () => {
    assert.deepEqual(parseScope("repository:team/app:push,pull,push"), { type: "repository", name: "team/app", actions: ["push", "pull"] });
    assert.deepEqual(parseScope("registry:catalog:*"), { type: "registry", name: "catalog", actions: ["*"] });
  });

  it("keeps a host:port inside the name and reads a resource class", () => {
    assert.deepEqual(parseScope("repository:localhost:5000/team/app:pull"), { type: "repository", name: "localhost:5000/team/app", actions: ["pull"] });
    assert.deepEqual(parseScope("repository(plugin):team/app:pull"), { type: "repository", class: "plugin", name: "team/app", actions: ["pull"] });
  });

  it("splits several scopes in one value and across repeated values", () => {
    const scopes = parseScopes(["repository:a:pull repository:b:pull,push", "registry:catalog:*"]);
    assert.deepEqual(scopes.map((s) => `${s.type}:${s.name}:${s.actions.join(",")}`), ["repository:a:pull", "repository:b:pull,push", "registry:catalog:*"]);
  });

  it("skips what is not a scope instead of failing the request", () => {
    assert.deepEqual(parseScopes(["", "repository", "repository:a", ":a:pull", "repository::pull", "repository:a:", "Repo$:a:pull", "repository:a:pull"]).length, 1);
    assert.equal(parseScope("repository:a:PULL"), null);
  });
});

describe("scope in challenges", () => {
  it("names one resource per entry with the route's actions", () => {
    assert.equal(formatScope(routeOf("POST", "/v2/team/app/blobs/uploads/").accesses), "repository:team/app:pull,push");
    assert.equal(formatScope(routeOf("GET", "/v2/_catalog").accesses), "registry:catalog:*");
    assert.equal(formatScope(routeOf("GET", "/v2/").accesses), "");
  });

  it("adds pull on the source of a cross-repository mount, space separated", () => {
    const route = routeOf("POST", "/v2/team/app/blobs/uploads/?mount=sha256:abc&from=base/alpine");
    assert.equal(formatScope(route.accesses), "repository:team/app:pull,push repository:base/alpine:pull");
  });
});
