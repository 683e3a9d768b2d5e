// The rate-limit part of the configuration and the shipped example.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { ConfigError, parseConfig } from "../../../src/config/load.js";

const ROOT = path.resolve(import.meta.dirname, "../../..");
const EXAMPLE = path.join(ROOT, "config/examples/rate-limited.yaml");

function messages(text: string): string[] {
  try {
    parseConfig(text, "test.yaml", {});
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    return error.issues.map((i) => `${i.line} ${i.key}: ${i.message}`);
  }
  assert.fail("expected a ConfigError");
}

const site = (...limitLines: string[]) => ["sites:", "  - hosts: [a.test]", "    backend: http://127.0.0.1:5000", ...limitLines].join("\n") + "\n";

describe("rate-limit configuration", () => {
  it("config/examples/rate-limited.yaml: Redis at 127.0.0.1:6390, 5 pulls a minute per user on hub, burst 5", () => {
    const config = parseConfig(readFileSync(EXAMPLE, "utf8"), EXAMPLE, {});
    assert.equal(config.redis?.url, "redis://127.0.0.1:6390/0");
    assert.equal(config.redis?.failure, "failOpen");
    assert.equal(config.redis?.keyPrefix, "rgw:");
    assert.equal(config.redis?.commandTimeout, 250);
    const [hub, team] = config.sites;
    assert.deepEqual(hub!.hosts, ["hub.registry.test"]);
    assert.deepEqual(hub!.limits, [{ name: "pulls", operations: ["pull"], rate: 5, per: 60_000, burst: 5, key: "user", overrides: {} }]);
    assert.equal(hub!.auth.type, "htpasswd", "per user: the htpasswd users of config/examples/htpasswd");
    assert.deepEqual(team!.limits, []);
  });

  it("defaults: no Redis, no trusted proxies, no limits; a limit keys by user with burst = rate", () => {
    const config = parseConfig(site("    limits: [{ name: p, operations: [pull], rate: 3, per: 6h }]"), "test.yaml", {});
    assert.equal(config.redis, undefined);
    assert.deepEqual(config.trustedProxies, []);
    assert.deepEqual(config.sites[0]!.limits[0], { name: "p", operations: ["pull"], rate: 3, per: 21_600_000, key: "user", overrides: {} });
  });

  it("reads sentinels and cluster nodes as host:port", () => {
    const sentinel = parseConfig(`redis: { sentinels: ["10.0.0.1:26379", "[fd00::1]:26379"], name: mymaster }\n${site()}`, "test.yaml", {});
    assert.deepEqual(sentinel.redis?.sentinels, [{ host: "10.0.0.1", port: 26379 }, { host: "fd00::1", port: 26379 }]);
    const cluster = parseConfig(`redis: { cluster: ["r1:7000", "r2:7000"], failure: failClosed }\n${site()}`, "test.yaml", {});
    assert.deepEqual(cluster.redis?.cluster, [{ host: "r1", port: 7000 }, { host: "r2", port: 7000 }]);
  });

  it("refuses Redis given two ways or none, sentinels without a name, a non-redis URL", () => {
    assert.match(messages(`redis: { url: "redis://a:1", cluster: ["b:2"] }\n${site()}`).join("\n"), /exactly one of url, sentinels \(with name\) or cluster, got url and cluster/);
    assert.match(messages(`redis: { keyPrefix: x }\n${site()}`).join("\n"), /got none/);
    assert.match(messages(`redis: { sentinels: ["a:1"] }\n${site()}`).join("\n"), /redis\.name: sentinels need the master group name/);
    assert.match(messages(`redis: { url: "http://a:1" }\n${site()}`).join("\n"), /redis\.url: expected a redis:\/\/ or rediss:\/\/ URL/);
  });

  it("refuses a window that is not whole seconds, an unknown operation, a repeated limit name, naming the key", () => {
    assert.match(messages(site("    limits: [{ name: p, operations: [pull], rate: 3, per: 1500ms }]")).join("\n"), /4 sites\[0\]\.limits\[0\]\.per: expected a whole number of seconds/);
    assert.match(messages(site("    limits: [{ name: p, operations: [pulls], rate: 3, per: 1m }]")).join("\n"), /sites\[0\]\.limits\[0\]\.operations\[0\]/);
    const twice = messages(site("    limits:", "      - { name: p, operations: [pull], rate: 3, per: 1m }", "      - { name: p, operations: [blob], rate: 3, per: 1m }"));
    assert.match(twice.join("\n"), /6 sites\[0\]\.limits\[1\]\.name: limit name "p" is used twice/);
  });

  it("refuses a trusted proxy that is not an address or CIDR block", () => {
    assert.match(messages(`trustedProxies: [10.0.0.0/8, lb.example]\n${site()}`).join("\n"), /trustedProxies\[1\]: expected an IP address or CIDR block/);
  });
});
