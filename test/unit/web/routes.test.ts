import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { isBrowserPath } from "../../../src/web/paths.js";
import { routeBrowser, safeNext } from "../../../src/web/routes.js";
import { fromSameOrigin } from "../../../src/web/respond.js";
import type { IncomingMessage } from "node:http";

describe("browser routes", () => {
  it("reads repository and tag from the page paths", () => {
    assert.deepEqual(routeBrowser("GET", "/"), { ok: true, page: { page: "repositories" } });
    assert.deepEqual(routeBrowser("GET", "/repo/team/app"), { ok: true, page: { page: "repository", repository: "team/app" } });
    assert.deepEqual(routeBrowser("GET", "/tag/team/app:v1.2"), { ok: true, page: { page: "tag", repository: "team/app", tag: "v1.2" } });
    assert.deepEqual(routeBrowser("POST", "/login"), { ok: true, page: { page: "signIn" } });
    assert.deepEqual(routeBrowser("POST", "/delete"), { ok: true, page: { page: "delete" } });
    assert.deepEqual(routeBrowser("GET", "/logout"), { ok: false, status: 405, allow: "POST" });
    assert.deepEqual(routeBrowser("DELETE", "/"), { ok: false, status: 405, allow: "GET, HEAD" });
    for (const path of ["/repo/Team", "/tag/team/app", "/tag/:v1", "/tag/team/app:", "/repo/", "/elsewhere"]) assert.deepEqual(routeBrowser("GET", path), { ok: false, status: 404 }, path);
  });

  it("never takes a registry API path", () => {
    for (const path of ["/v2/", "/v2/_catalog", "/token", "/v1/search", "/v1/_ping", "/v2/repo/x/manifests/v1"]) assert.equal(isBrowserPath(path), false, path);
  });

  it("goes back only to a path on this site after signing in", () => {
    assert.equal(safeNext("/repo/team/app?x=1"), "/repo/team/app?x=1");
    for (const next of [undefined, "", "//evil.test/", "/\\evil.test", "https://evil.test/", "javascript:alert(1)", "/a b"]) assert.equal(safeNext(next), "/", String(next));
  });

  it("takes a POST only from this origin when the browser says where it comes from", () => {
    const req = (headers: Record<string, string>) => ({ headers }) as unknown as IncomingMessage;
    const origin = "https://registry.test:8443";
    assert.ok(fromSameOrigin(req({}), origin));
    assert.ok(fromSameOrigin(req({ origin, "sec-fetch-site": "same-origin" }), origin));
    assert.equal(fromSameOrigin(req({ "sec-fetch-site": "same-site" }), origin), false);
    assert.equal(fromSameOrigin(req({ "sec-fetch-site": "cross-site" }), origin), false);
    assert.equal(fromSameOrigin(req({ origin: "https://registry.test" }), origin), false);
    assert.equal(fromSameOrigin(req({ origin: "null" }), origin), false);
  });
});
