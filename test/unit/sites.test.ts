import assert from "node:assert/strict";
import { describe, it } from "node:test";
import http from "node:http";
import { buildSiteUpstreams } from "../../src/backends/upstream.js";
import { gatewayConfig, type BackendConfig } from "../../src/config/schema.js";
import { createLogger } from "../../src/observe/log.js";
import { defaultSiteName } from "../../src/config/site-names.js";
import { parseHostHeader, SiteMap } from "../../src/sites.js";

const config = gatewayConfig.parse({
  sites: [
    { hosts: ["hub.registry.test"], backend: "http://127.0.0.1:5001" },
    { name: "team", hosts: ["Team.Registry.Test", "*.apps.test"], backend: "http://127.0.0.1:5002", default: true },
  ],
});

const silent = createLogger({ level: "silent", format: "json" });

describe("host header → site", () => {
  const map = new SiteMap(config);

  it("strips the port and ignores case and a trailing dot", () => {
    const hit = map.lookup("HUB.registry.test.:5443");
    assert.ok(hit.ok);
    assert.equal(hit.site.name, "hub.registry.test");
    assert.equal(hit.host.authority, "hub.registry.test:5443");
    const team = map.lookup("team.registry.test");
    assert.ok(team.ok && team.site.name === "team" && team.host.authority === "team.registry.test");
  });

  it("matches one label under a wildcard, not two", () => {
    assert.ok(map.lookup("x.apps.test").ok);
    const deeper = map.lookup("a.b.apps.test");
    assert.deepEqual(deeper, { ok: false, reason: "unknown", hostname: "a.b.apps.test" });
  });

  it("tells missing, malformed and unknown hosts apart", () => {
    assert.deepEqual(map.lookup(undefined), { ok: false, reason: "missing" });
    assert.deepEqual(map.lookup(""), { ok: false, reason: "missing" });
    assert.deepEqual(map.lookup("bad host"), { ok: false, reason: "malformed" });
    assert.deepEqual(map.lookup("a:b:c"), { ok: false, reason: "malformed" });
    assert.deepEqual(map.lookup("hub.registry.test:99999"), { ok: false, reason: "malformed" });
    assert.deepEqual(map.lookup("other.test"), { ok: false, reason: "unknown", hostname: "other.test" });
  });

  it("picks the site marked default, else the first", () => {
    assert.equal(map.defaultSite.name, "team");
    const plain = new SiteMap(gatewayConfig.parse({ sites: [{ hosts: ["a.test"], backend: "http://127.0.0.1:1" }] }));
    assert.equal(plain.defaultSite.name, "a.test");
  });

  it("names the default site without building a map", () => {
    assert.equal(defaultSiteName(config), "team");
  });

  it("gives a managed backend the URL its registry runs on, and refuses one not started", () => {
    const managed = gatewayConfig.parse({ sites: [{ hosts: ["a.test"], backend: { managed: {} } }, { hosts: ["b.test"], backend: "http://127.0.0.1:5002" }] });
    assert.throws(() => new SiteMap(managed), /a managed backend \(storage default\) has not been started/);
    const running = new URL("http://127.0.0.1:41234");
    const resolve = (backend: BackendConfig) => (backend instanceof URL ? backend : running);
    const map = new SiteMap(managed, [], (name, site) => buildSiteUpstreams(name, site, { resolve, agentFor: () => http.globalAgent, logger: silent }));
    assert.deepEqual(
      map.sites.map((s) => s.upstreams.pools().map((pool) => pool.members[0]!.origin)),
      [["http://127.0.0.1:41234"], ["http://127.0.0.1:5002"]],
    );
  });

  it("parses IPv6 literals", () => {
    assert.deepEqual(parseHostHeader("[::1]:5443"), { hostname: "::1", authority: "[::1]:5443" });
  });
});
