// `backend.managed.proxy`, a managed registry that is a pull-through cache (distribution's
// `proxy:` section), as the configuration reads it and as the managed backend keys it.
import assert from "node:assert/strict";
import path from "node:path";
import { describe, it } from "node:test";
import { managedSpec } from "../../../src/backends/managed.js";
import { ConfigError, parseConfig } from "../../../src/config/load.js";

function site(...managedLines: string[]): string {
  return ["sites:", "  - hosts: [a.test]", "    backend:", "      managed:", ...managedLines.map((line) => `        ${line}`), ""].join("\n");
}

function messages(text: string): string[] {
  try {
    parseConfig(text, "test.yaml", {});
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    return error.issues.map((issue) => `${issue.line} ${issue.key}: ${issue.message}`);
  }
  assert.fail("expected a ConfigError");
}

describe("backend.managed.proxy", () => {
  it("reads remoteurl (to its origin) and optional credentials; the spec the registry runs with carries them", () => {
    const config = parseConfig(
      site("storage: /srv/cache", "proxy:", "  remoteurl: https://registry-1.docker.io/", "  username: bot", "  password: s3cret"),
      "test.yaml",
      {},
    );
    const backend = config.sites[0]!.backend!;
    assert.ok(!(backend instanceof URL));
    assert.deepEqual(backend.managed.proxy, { remoteurl: "https://registry-1.docker.io", username: "bot", password: "s3cret" });
    assert.deepEqual(managedSpec(backend, "/data"), {
      binary: "docker-registry",
      storage: path.resolve("/srv/cache"),
      port: undefined,
      trustDir: path.resolve("/data", "managed-registries"),
      proxy: { remoteurl: "https://registry-1.docker.io", username: "bot", password: "s3cret" },
    });
    const anonymous = parseConfig(site("proxy: { remoteurl: http://127.0.0.1:5000 }"), "test.yaml", {}).sites[0]!.backend!;
    assert.ok(!(anonymous instanceof URL));
    assert.deepEqual(anonymous.managed.proxy, { remoteurl: "http://127.0.0.1:5000" });
  });

  it("refuses a remoteurl that is not a bare http(s) URL, credentials given by halves, and keys distribution 2.8 lacks", () => {
    assert.match(messages(site("proxy: { remoteurl: ftp://example.com }")).join("\n"), /sites\[0\]\.backend\.managed\.proxy\.remoteurl: expected an http:\/\/ or https:\/\/ URL/);
    assert.match(messages(site("proxy: { remoteurl: https://example.com/v2/ }")).join("\n"), /proxy\.remoteurl: expected a URL with no path/);
    assert.match(messages(site("proxy: { remoteurl: https://u:p@example.com }")).join("\n"), /proxy\.remoteurl: expected a URL with no path, query or credentials/);
    assert.match(messages(site("proxy: { remoteurl: https://example.com, username: bot }")).join("\n"), /proxy: set username and password together, or neither/);
    assert.match(messages(site("proxy: { remoteurl: https://example.com, ttl: 72h }")).join("\n"), /proxy\.ttl: unknown key "ttl"/);
    assert.match(messages(site("proxy: { username: bot, password: x }")).join("\n"), /proxy\.remoteurl: required key is missing/);
  });

  it("two sites naming one storage must agree on the proxy too", () => {
    const text = [
      "sites:",
      "  - hosts: [a.test]",
      "    backend: { managed: { storage: /srv/cache, proxy: { remoteurl: https://registry-1.docker.io } } }",
      "  - hosts: [b.test]",
      "    backend: { managed: { storage: /srv/cache, proxy: { remoteurl: https://quay.io } } }",
      "",
    ].join("\n");
    assert.match(messages(text).join("\n"), /storage \/srv\/cache is already run by a managed backend .*sites\[0\].* with other settings/);
    const same = text.replace("https://quay.io", "https://registry-1.docker.io");
    assert.equal(parseConfig(same, "test.yaml", {}).sites.length, 2);
  });
});

// A managed registry takes tokens for its own service only: no site may issue or send tokens for it.
describe("the managed registries' token service is reserved", () => {
  it("is refused as a site's auth.service and as backendAuth.service, naming the key", () => {
    const reserved = '"registry-gateway managed registry"';
    const auth = ["sites:", "  - hosts: [a.test]", "    backend: http://127.0.0.1:5000", "    auth:", "      type: token", "      htpasswd: /dev/null", `      service: ${reserved}`, ""];
    assert.deepEqual(
      messages(auth.join("\n")).map((m) => m.replace(/^\d+ /, "")),
      [`sites[0].auth.service: ${reserved} is reserved for the registries the gateway runs (managed backends)`],
    );
    const backendAuth = ["sites:", "  - hosts: [a.test]", "    backend: http://127.0.0.1:5000", `    backendAuth: { type: token, service: ${reserved} }`, ""];
    assert.deepEqual(
      messages(backendAuth.join("\n")).map((m) => m.replace(/^\d+ /, "")),
      [`sites[0].backendAuth.service: ${reserved} is reserved for the registries the gateway runs (managed backends)`],
    );
  });
});
