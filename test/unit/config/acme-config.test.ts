// The `tls.source: acme` keys and the plain-HTTP listener.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { parseConfig } from "../../../src/config/load.js";
import { configIssues } from "../../helpers/config-issues.js";

function lines(...text: string[]): string {
  return `${text.join("\n")}\n`;
}

function acmeConfig(tlsLines: string[], { http = "127.0.0.1:5080", hosts = "[hub.registry.test, team.registry.test]" } = {}): string {
  return lines(
    ...(http ? ["http:", `  listen: ${http}`] : []),
    "sites:",
    `  - hosts: ${hosts}`,
    "    backend: http://127.0.0.1:5001",
    "    tls:",
    "      source: acme",
    ...tlsLines.map((line) => `      ${line}`),
  );
}

describe("tls.source acme", () => {
  test("presets name Let's Encrypt; challenge defaults to http-01; the rest is optional", () => {
    const config = parseConfig(acmeConfig(["directory: letsencrypt-staging"]), "test.yaml", {});
    assert.deepEqual(config.sites[0]!.tls, {
      source: "acme",
      directory: "https://acme-staging-v02.api.letsencrypt.org/directory",
      challenge: "http-01",
    });
    assert.deepEqual(config.http.listen, { host: "127.0.0.1", port: 5080 });
    const production = parseConfig(acmeConfig(["directory: letsencrypt"]), "test.yaml", {});
    assert.equal(production.sites[0]!.tls.source === "acme" && production.sites[0]!.tls.directory, "https://acme-v02.api.letsencrypt.org/directory");
  });

  test("every key, with a private CA", () => {
    const config = parseConfig(
      acmeConfig([
        "directory: https://127.0.0.1:14000/dir",
        "email: ops@example.com",
        "eab: { kid: kid-1, hmacKey: zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W }",
        "caFile: /etc/pebble/ca.pem",
        "challenge: tls-alpn-01",
        "renewBefore: 720h",
      ], { http: "" }),
      "test.yaml",
      {},
    );
    assert.deepEqual(config.sites[0]!.tls, {
      source: "acme",
      directory: "https://127.0.0.1:14000/dir",
      email: "ops@example.com",
      eab: { kid: "kid-1", hmacKey: "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W" },
      caFile: "/etc/pebble/ca.pem",
      challenge: "tls-alpn-01",
      renewBefore: 720 * 3_600_000,
    });
    assert.equal(config.http.listen, null, "no plain-HTTP listener unless asked for");
  });

  test("http-01 needs the plain-HTTP listener", () => {
    const [issue, ...rest] = configIssues(acmeConfig(["directory: letsencrypt"], { http: "" }));
    assert.equal(rest.length, 0);
    assert.equal(issue!.key, "sites[0].tls.challenge");
    assert.match(issue!.message, /set http\.listen/);
  });

  test("wildcards and IP addresses cannot be ordered", () => {
    const issues = configIssues(acmeConfig(["directory: letsencrypt"], { hosts: "[hub.registry.test, '*.team.test', 10.0.0.1]" }));
    assert.deepEqual(issues.map((i) => i.key), ["sites[0].hosts[1]", "sites[0].hosts[2]"]);
    assert.match(issues[0]!.message, /cannot be one/);
  });

  test("the directory must be a preset or an https URL; the challenge one of two", () => {
    const [directory] = configIssues(acmeConfig(["directory: http://127.0.0.1:14000/dir"]));
    assert.equal(directory!.key, "sites[0].tls.directory");
    assert.equal(directory!.line, 8);
    assert.match(directory!.message, /letsencrypt, letsencrypt-staging or an https:\/\//);
    const [challenge] = configIssues(acmeConfig(["directory: letsencrypt", "challenge: dns-01"]));
    assert.equal(challenge!.key, "sites[0].tls.challenge");
    const [missing] = configIssues(acmeConfig([]));
    assert.equal(missing!.key, "sites[0].tls.directory");
  });
});
