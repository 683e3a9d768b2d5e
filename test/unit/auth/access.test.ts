// Access rules — globs, first match decides, default nothing — and token grants.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { AccessPolicy } from "../../../src/auth/access.js";
import { compileRepositoryPattern } from "../../../src/auth/glob.js";
import { parseScopes } from "../../../src/auth/scope.js";
import { gatewayConfig, type AccessRuleConfig } from "../../../src/config/schema.js";
import { isValidRepositoryName } from "../../../src/registry/routes.js";
import { routeOf } from "../../helpers/routes.js";

const glob = (pattern: string) => ({ test: compileRepositoryPattern(pattern) });
const route = (method: string, path: string, query = "") => routeOf(method, query ? `${path}?${query}` : path).accesses;

const RULES: AccessRuleConfig[] = [
  { who: ["admin"], repositories: ["**"], actions: ["pull", "push", "delete", "catalog"] },
  { who: ["ci"], repositories: ["team/secret"], actions: [] },
  { who: ["ci"], repositories: ["team/*"], actions: ["pull", "push"] },
  { who: ["reader", "ci"], repositories: ["**"], actions: ["pull"] },
  { who: "*", repositories: ["public/**"], actions: ["pull"] },
];
const policy = new AccessPolicy(RULES);

describe("repository globs", () => {
  it("* stays within one path component, ** crosses them, ? is one character", () => {
    assert.ok(glob("team/*").test("team/app"));
    assert.ok(!glob("team/*").test("team/app/sub"));
    assert.ok(!glob("team/*").test("team"));
    assert.ok(glob("team/**").test("team/app/sub"));
    assert.ok(glob("**").test("a/b/c"));
    assert.ok(glob("a/**/z").test("a/z") && glob("a/**/z").test("a/b/c/z"));
    assert.ok(glob("app-?").test("app-1") && !glob("app-?").test("app-10"));
  });

  it("takes dots and dashes literally", () => {
    assert.ok(glob("my.app").test("my.app"));
    assert.ok(!glob("my.app").test("myxapp"));
  });

  it("only lower-case repository characters and wildcards pass the schema", () => {
    const parse = (repositories: string[]) =>
      gatewayConfig.safeParse({
        sites: [{ hosts: ["a.test"], backend: "http://127.0.0.1:1", auth: { type: "htpasswd", htpasswd: "f", rules: [{ who: "*", repositories, actions: ["pull"] }] } }],
      }).success;
    assert.equal(parse(["team/*", "**", "a.b-c_d"]), true);
    assert.equal(parse(["Team/*"]), false);
    assert.equal(parse(["(a|b)"]), false);
  });
});

describe("access rules", () => {
  it("allows nothing by default", () => {
    assert.equal(new AccessPolicy([]).permits("admin", route("GET", "/v2/a/manifests/v1")), false);
    assert.equal(policy.permits("stranger", route("GET", "/v2/a/manifests/v1")), false);
  });

  it("follows distribution's rule per route: read → pull, write → pull+push, DELETE → delete", () => {
    assert.equal(policy.permits("reader", route("GET", "/v2/a/b/manifests/v1")), true);
    assert.equal(policy.permits("reader", route("HEAD", "/v2/a/b/blobs/sha256:" + "a".repeat(64))), true);
    assert.equal(policy.permits("reader", route("PUT", "/v2/a/b/manifests/v1")), false);
    assert.equal(policy.permits("reader", route("PATCH", "/v2/a/b/blobs/uploads/u1")), false);
    assert.equal(policy.permits("admin", route("DELETE", "/v2/a/b/manifests/sha256:" + "a".repeat(64))), true);
    assert.equal(policy.permits("ci", route("DELETE", "/v2/team/app/manifests/v1")), false);
  });

  it("lets the first matching rule decide, so an empty rule denies what a later one allows", () => {
    assert.equal(policy.permits("ci", route("PUT", "/v2/team/app/manifests/v1")), true);
    assert.equal(policy.permits("ci", route("GET", "/v2/team/secret/manifests/v1")), false);
    assert.equal(policy.permits("ci", route("GET", "/v2/other/app/manifests/v1")), true);
  });

  it('"*" is everyone, anonymous included; named users never match anonymous', () => {
    assert.equal(policy.permits(null, route("GET", "/v2/public/x/manifests/v1")), true);
    assert.equal(policy.permits("reader", route("GET", "/v2/public/x/manifests/v1")), true);
    assert.equal(policy.permits(null, route("GET", "/v2/team/app/manifests/v1")), false);
    assert.equal(policy.permits(null, route("POST", "/v2/public/x/blobs/uploads/")), false);
  });

  it("needs pull on the source of a cross-repository mount", () => {
    const mount = (from: string) => route("POST", "/v2/team/app/blobs/uploads/", `mount=sha256:${"b".repeat(64)}&from=${from}`);
    assert.equal(policy.permits("ci", mount("team/base")), true);
    assert.equal(policy.permits("ci", mount("team/secret")), false);
    assert.deepEqual(policy.firstRefused("ci", mount("team/secret")), { type: "repository", name: "team/secret", action: "pull" });
  });

  it("grants the catalog only to users with a rule listing it; /v2/ needs nothing", () => {
    assert.equal(policy.permits("admin", route("GET", "/v2/_catalog")), true);
    assert.equal(policy.permits("reader", route("GET", "/v2/_catalog")), false);
    assert.equal(policy.permits("reader", route("GET", "/v2/")), true);
  });
});

describe("token grants", () => {
  const grant = (user: string | null, ...scopes: string[]) => policy.grant(user, parseScopes(scopes), isValidRepositoryName);

  it("is the intersection of what was asked and what is allowed", () => {
    assert.deepEqual(grant("reader", "repository:team/app:pull,push"), [{ type: "repository", name: "team/app", actions: ["pull"] }]);
    assert.deepEqual(grant("ci", "repository:team/app:push,pull"), [{ type: "repository", name: "team/app", actions: ["pull", "push"] }]);
    assert.deepEqual(grant("admin", "repository:team/app:*"), [{ type: "repository", name: "team/app", actions: ["pull", "push", "delete"] }]);
  });

  it("leaves out what is not allowed at all, and asks for nothing → grants nothing", () => {
    assert.deepEqual(grant("ci", "repository:team/secret:pull"), []);
    assert.deepEqual(grant("admin"), []);
    assert.deepEqual(grant(null, "repository:public/x:pull,push", "repository:team/app:pull"), [{ type: "repository", name: "public/x", actions: ["pull"] }]);
  });

  it("grants the catalog as registry:catalog:*", () => {
    assert.deepEqual(grant("admin", "registry:catalog:*"), [{ type: "registry", name: "catalog", actions: ["*"] }]);
    assert.deepEqual(grant("reader", "registry:catalog:*"), []);
  });

  it("ignores invalid repository names and unknown resource types", () => {
    assert.deepEqual(grant("admin", "repository:Upper/Case:pull", "repository:a//b:pull", "plugin:x:pull"), []);
  });

  it("merges repeated scopes for one repository", () => {
    assert.deepEqual(grant("admin", "repository:a:pull", "repository:a:push"), [{ type: "repository", name: "a", actions: ["pull", "push"] }]);
  });
});
