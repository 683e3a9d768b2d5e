// `cert rotate --site` accepts a site name or any of its hosts.
import assert from "node:assert/strict";
import { test } from "node:test";
import { gatewayConfig } from "../../../src/config/schema.js";
import { siteName } from "../../../src/config/site-names.js";
import { selectSites } from "../../../src/tls/rotation.js";

const config = gatewayConfig.parse({
  sites: [
    { name: "hub", hosts: ["hub.registry.test", "docker.registry.test"], backend: "http://127.0.0.1:5001" },
    { hosts: ["team.registry.test"], backend: "http://127.0.0.1:5002" },
  ],
});
const names = (selector?: string) => selectSites(config, selector).map(siteName);

test("selects by site name or host, any case; every site without a selector", () => {
  assert.deepEqual(names(), ["hub", "team.registry.test"]);
  assert.deepEqual(names("HUB"), ["hub"]);
  assert.deepEqual(names("docker.registry.test"), ["hub"]);
  assert.deepEqual(names("team.registry.test"), ["team.registry.test"]);
});

test("an unknown selector lists the sites", () => {
  assert.throws(() => names("nope"), /no site is named or serves "nope"; sites: hub \(hub\.registry\.test, docker\.registry\.test\); team\.registry\.test/);
});
