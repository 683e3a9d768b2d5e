// Two token sites sharing a service would take each other's tokens, since every site signs with one key:
// a user with rights on one site only read and deleted on the other, and the configuration loaded silently.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ConfigError, formatIssue, parseConfig } from "../../../src/config/load.js";

const HTPASSWD = "/dev/null";

/** A site as YAML lines; `auth` and `backendAuth` are flow mappings. */
function site(host: string, port: number, auth?: string, backendAuth?: string): string[] {
  return [
    `  - hosts: [${host}]`,
    `    backend: http://127.0.0.1:${port}`,
    ...(auth ? [`    auth: ${auth}`] : []),
    ...(backendAuth ? [`    backendAuth: ${backendAuth}`] : []),
  ];
}

const token = (service?: string) => `{ type: token, htpasswd: ${HTPASSWD}${service ? `, service: ${service}` : ""} }`;

/** The formatted lines of the ConfigError the text makes, or [] when it loads. */
function problems(...sites: string[][]): string[] {
  try {
    parseConfig(["sites:", ...sites.flat()].join("\n") + "\n", "gw.yaml", {});
    return [];
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    return error.issues.map(formatIssue);
  }
}

describe("token services: one per token site", () => {
  it("refuses two token sites with the same auth.service, naming both keys and why", () => {
    const found = problems(site("a.test", 5001, token("registry")), site("b.test", 5002, token("registry")));
    assert.equal(found.length, 1, found.join("\n"));
    assert.match(found[0]!, /^gw\.yaml:7:\d+ sites\[1\]\.auth\.service: service "registry" is also sites\[0\]\.auth\.service: /);
    assert.match(found[0]!, /every site signs tokens with the same key, so a token issued for one would be accepted by the other/);
  });

  it("refuses a service that equals another site's default (its name)", () => {
    const found = problems(site("a.test", 5001, token()), site("b.test", 5002, token("a.test")));
    assert.deepEqual(found.map((line) => /(sites\[\d\]\.\S+) .*is also (sites\[\d\]\.\S+)/.exec(line)?.slice(1)), [["sites[1].auth.service:", "sites[0].auth.service"]]);
    assert.match(found[0]!, /\(by default the site name\)/);
  });

  it("refuses a site whose auth.service is another site's backendAuth.service, either way round", () => {
    const backend = `{ type: token, service: vault }`;
    const vaultFirst = problems(site("v.test", 5001, `{ type: htpasswd, htpasswd: ${HTPASSWD} }`, backend), site("a.test", 5002, token("vault")));
    assert.equal(vaultFirst.length, 1, vaultFirst.join("\n"));
    assert.match(vaultFirst[0]!, /sites\[1\]\.auth\.service: service "vault" is also sites\[0\]\.backendAuth\.service: /);
    const vaultLast = problems(site("a.test", 5002, token("vault")), site("v.test", 5001, `{ type: htpasswd, htpasswd: ${HTPASSWD} }`, backend));
    assert.equal(vaultLast.length, 1, vaultLast.join("\n"));
    assert.match(vaultLast[0]!, /sites\[1\]\.backendAuth\.service: service "vault" is also sites\[0\]\.auth\.service: /);
  });

  it("accepts distinct services, a site's own auth and backend services being one, and backends sharing a service", () => {
    assert.deepEqual(problems(site("a.test", 5001, token("a")), site("b.test", 5002, token("b"))), []);
    assert.deepEqual(problems(site("a.test", 5001, token()), site("b.test", 5002, token())), [], "defaults: the site names differ");
    assert.deepEqual(problems(site("a.test", 5001, token("a"), "{ type: token, service: a }")), []);
    const backend = "{ type: token, service: shared }";
    assert.deepEqual(problems(site("a.test", 5001, undefined, backend), site("b.test", 5002, undefined, backend)), []);
  });
});
