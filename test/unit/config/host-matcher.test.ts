import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { HostMatcher } from "../../../src/config/host-matcher.js";
import { gatewayConfig } from "../../../src/config/schema.js";
import { defaultSite, defaultSiteName, siteName } from "../../../src/config/site-names.js";

describe("host matcher (Host header → site, SNI → certificate)", () => {
  const matcher = new HostMatcher(
    [
      { hosts: ["Hub.Registry.Test."], owner: "hub" },
      { hosts: ["*.apps.test", "apps.test"], owner: "apps" },
    ],
    (owner) => owner,
  );

  it("matches exact names whatever their case, spacing or trailing dot", () => {
    assert.equal(matcher.match("hub.registry.test"), "hub");
    assert.equal(matcher.match(" HUB.registry.test. "), "hub");
    assert.equal(matcher.match("registry.test"), undefined);
  });

  it("lets a wildcard cover exactly one label", () => {
    assert.equal(matcher.match("x.apps.test"), "apps");
    assert.equal(matcher.match("apps.test"), "apps");
    assert.equal(matcher.match("a.b.apps.test"), undefined);
    assert.equal(matcher.match(".apps.test"), undefined);
  });

  it("refuses two owners for one host", () => {
    assert.throws(
      () => new HostMatcher([{ hosts: ["*.a.test"], owner: "one" }, { hosts: ["*.A.test"], owner: "two" }], (o) => o),
      /host "\*\.a\.test" is claimed by sites "one" and "two"/,
    );
  });
});

describe("site names from configuration", () => {
  const backend = "http://127.0.0.1:5001";
  it("names a site by its name, else its first host", () => {
    const config = gatewayConfig.parse({ sites: [{ hosts: ["a.test", "b.test"], backend }, { name: "c", hosts: ["c.test"], backend }] });
    assert.deepEqual(config.sites.map(siteName), ["a.test", "c"]);
  });

  it("takes the site marked default, else the first", () => {
    const marked = gatewayConfig.parse({ sites: [{ hosts: ["a.test"], backend }, { name: "c", hosts: ["c.test"], backend, default: true }] });
    assert.equal(defaultSite(marked), marked.sites[1]);
    assert.equal(defaultSiteName(marked), "c");
    const unmarked = gatewayConfig.parse({ sites: [{ hosts: ["a.test"], backend }, { name: "c", hosts: ["c.test"], backend }] });
    assert.equal(defaultSiteName(unmarked), "a.test");
  });
});
