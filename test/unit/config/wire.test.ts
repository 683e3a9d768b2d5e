// A cluster worker is handed the configuration the primary validated (encodeConfig → decodeConfig) instead
// of parsing the YAML itself: what it gets must be the same configuration, URL objects and all.
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { describe, it } from "node:test";
import { isDeepStrictEqual } from "node:util";
import { decodeConfig, encodeConfig } from "../../../src/config/helpers.js";
import { parseConfig } from "../../../src/config/load.js";
import type { GatewayConfig } from "../../../src/config/schema.js";

const ROOT = new URL("../../../", import.meta.url);
const EXAMPLES = [
  "config/gateway.yaml",
  ...readdirSync(new URL("config/examples/", ROOT))
    .filter((file) => file.endsWith(".yaml"))
    .map((file) => `config/examples/${file}`),
];
const ENV = { DOCKERHUB_USER: "user", DOCKERHUB_TOKEN: "token", ACME_CA_FILE: "/etc/hosts", DATA_DIR: "/var/lib/rg" };

/** Every URL in `value`, by where it is. */
function urls(value: unknown, at = "", found: Record<string, string> = {}): Record<string, string> {
  if (value instanceof URL) found[at] = value.href;
  else if (typeof value === "object" && value !== null) for (const [key, child] of Object.entries(value)) urls(child, `${at}/${key}`, found);
  return found;
}

/** `value` with URLs as their text, for comparing the rest. */
function plain(value: unknown): unknown {
  if (value instanceof URL) return `URL ${value.href}`;
  if (Array.isArray(value)) return value.map(plain);
  if (typeof value === "object" && value !== null) return Object.fromEntries(Object.entries(value).map(([key, child]) => [key, plain(child)]));
  return value;
}

describe("a validated configuration handed to a worker", () => {
  for (const file of EXAMPLES) {
    it(`comes back the same: ${file}`, () => {
      const config = parseConfig(readFileSync(new URL(file, ROOT), "utf8"), file, ENV);
      const decoded = decodeConfig(encodeConfig(config));
      assert.ok(isDeepStrictEqual(plain(decoded), plain(config)));
      assert.deepEqual(urls(decoded), urls(config));
      for (const [at] of Object.entries(urls(decoded))) {
        const url = at.split("/").slice(1).reduce<unknown>((node, key) => (node as Record<string, unknown>)[key], decoded);
        assert.ok(url instanceof URL, `${at} is a URL object`);
      }
      assert.ok(Object.isFrozen(decoded) && Object.isFrozen(decoded.sites[0]), "frozen like loadConfig's");
    });
  }

  it("keeps replicas, groups and routes as URL objects", () => {
    const text = `
sites:
  - hosts: [a.example]
    backends: [http://10.0.0.1:5000, http://10.0.0.2:5000]
    routes:
      - prefix: team/
        group:
          - { name: hosted, backend: "http://10.0.0.3:5000", repositories: ["team/**"] }
          - { name: hub, backend: "https://mirror.example" }
        pushTo: hosted
`;
    const config: Readonly<GatewayConfig> = parseConfig(text, "test.yaml", {});
    const decoded = decodeConfig(encodeConfig(config));
    assert.deepEqual(urls(decoded), urls(config));
    assert.equal(Object.keys(urls(decoded)).length, 4);
    assert.ok(decoded.sites[0]!.backends![1] instanceof URL);
  });
});
