import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { z } from "zod";
import { managedSpec } from "../../../src/backends/managed.js";
import { ConfigError, loadConfig, parseConfig, type ConfigIssue } from "../../../src/config/load.js";
import { gatewayConfig, type BackendConfig } from "../../../src/config/schema.js";

const ROOT = path.resolve(import.meta.dirname, "../../..");
const GATEWAY_YAML = path.join(ROOT, "config/gateway.yaml");
const TWO_REGISTRIES_YAML = path.join(ROOT, "config/examples/two-registries.yaml");

/** Joins lines so that a test's line numbers can be read off the array: element i is line i + 1. */
function lines(...text: string[]): string {
  return text.join("\n") + "\n";
}

const MINIMAL_SITE = ["sites:", "  - hosts: [a.test]", "    backend: http://127.0.0.1:5000"];

function issuesOf(run: () => unknown): ConfigIssue[] {
  try {
    run();
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
    return error.issues;
  }
  assert.fail("expected a ConfigError");
}

async function issuesOfAsync(run: () => Promise<unknown>): Promise<ConfigIssue[]> {
  try {
    await run();
  } catch (error) {
    assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
    return error.issues;
  }
  assert.fail("expected a ConfigError");
}

/** A backend given as a URL (not `managed`). */
function url(backend: BackendConfig | undefined): URL {
  assert.ok(backend instanceof URL, `expected a URL backend, got ${JSON.stringify(backend)}`);
  return backend;
}

/** The one issue a text produces, without its message (checked separately with a regex). */
function onlyIssue(text: string, env: NodeJS.ProcessEnv = {}): ConfigIssue {
  const issues = issuesOf(() => parseConfig(text, "test.yaml", env));
  assert.equal(issues.length, 1, issues.map((i) => `${i.line}:${i.column} ${i.key}: ${i.message}`).join("\n"));
  return issues[0]!;
}

function assertAt(issue: ConfigIssue, where: { file?: string; line: number; column?: number; key: string }, message: RegExp) {
  assert.equal(issue.file, where.file ?? "test.yaml");
  assert.equal(issue.line, where.line);
  if (where.column !== undefined) assert.equal(issue.column, where.column);
  assert.equal(issue.key, where.key);
  assert.match(issue.message, message);
}

/** Every key the schema knows, dotted without indexes (sites.tls.cert): the shipped file must document each. */
function schemaKeys(schema: z.core.$ZodType, prefix = ""): string[] {
  let node = schema;
  for (;;) {
    if (node instanceof z.ZodDefault || node instanceof z.ZodPrefault || node instanceof z.ZodOptional || node instanceof z.ZodNullable) {
      node = node.unwrap() as z.core.$ZodType;
    } else if (node instanceof z.ZodPipe) node = node.in as z.core.$ZodType;
    else break;
  }
  if (node instanceof z.ZodArray) return schemaKeys(node.element as z.core.$ZodType, prefix);
  if (node instanceof z.ZodUnion) return [...new Set((node.options as z.core.$ZodType[]).flatMap((o) => schemaKeys(o, prefix)))];
  if (!(node instanceof z.ZodObject)) return [];
  return Object.entries(node.shape as Record<string, z.core.$ZodType>).flatMap(([key, child]) => [
    prefix + key,
    ...schemaKeys(child, `${prefix}${key}.`),
  ]);
}

describe("shipped configuration files", () => {
  it("config/gateway.yaml parses with no environment and serves localhost from a managed registry in dataDir", () => {
    const config = parseConfig(readFileSync(GATEWAY_YAML, "utf8"), GATEWAY_YAML, {});
    assert.deepEqual(config.listen, { host: "127.0.0.1", port: 5443 });
    assert.deepEqual(config.admin, { listen: { host: "127.0.0.1", port: 9091 }, allowNonLoopback: false, hosts: [] });
    assert.equal(config.dataDir, path.resolve("data"));
    assert.ok(config.dataDir.endsWith(`${path.sep}data`));
    assert.equal(config.sites.length, 1);
    assert.deepEqual(config.sites[0]!.hosts, ["localhost", "127.0.0.1"]);
    // The registry `npm start` runs: Debian's docker-registry, a free loopback port, storage in ./data/registry.
    assert.deepEqual(config.sites[0]!.backend, { managed: { binary: "docker-registry" } });
    assert.equal(managedSpec(config.sites[0]!.backend!, config.dataDir)?.storage, path.resolve("data", "registry"));
    assert.deepEqual(config.sites[0]!.tls, { source: "generated" });
  });

  it("config/gateway.yaml's backend can be pointed at a registry of one's own with GATEWAY_SITES_0_BACKEND", () => {
    const config = parseConfig(readFileSync(GATEWAY_YAML, "utf8"), GATEWAY_YAML, { GATEWAY_SITES_0_BACKEND: "http://127.0.0.1:5000" });
    assert.equal(url(config.sites[0]!.backend).href, "http://127.0.0.1:5000/");
  });

  it("config/gateway.yaml takes dataDir from DATA_DIR when it is set", () => {
    const config = parseConfig(readFileSync(GATEWAY_YAML, "utf8"), GATEWAY_YAML, { DATA_DIR: "/var/lib/rg" });
    assert.equal(config.dataDir, "/var/lib/rg");
  });

  it("config/gateway.yaml documents every key of the schema", () => {
    const text = readFileSync(GATEWAY_YAML, "utf8");
    const keys = schemaKeys(gatewayConfig);
    assert.ok(keys.includes("sites.tls.cert") && keys.includes("admin.allowNonLoopback"), keys.join(", "));
    for (const key of keys) {
      const last = key.split(".").at(-1)!;
      assert.match(text, new RegExp(`^[ #-]*${last}:`, "m"), `config/gateway.yaml does not mention ${key}`);
    }
  });

  it("loadConfig reads config/gateway.yaml", async () => {
    const config = await loadConfig(GATEWAY_YAML, {});
    assert.equal(config.sites[0]!.name, "local");
  });

  it("config/examples/two-registries.yaml routes hub and team to their backends, hub by default", () => {
    const config = parseConfig(readFileSync(TWO_REGISTRIES_YAML, "utf8"), TWO_REGISTRIES_YAML, {});
    assert.deepEqual(config.listen, { host: "127.0.0.1", port: 5443 });
    assert.deepEqual(config.admin.listen, { host: "127.0.0.1", port: 9091 });
    assert.equal(config.dataDir, path.resolve("data"));
    const summary = config.sites.map((s) => [s.hosts.join(","), url(s.backend).href, s.default, s.tls.source]);
    assert.deepEqual(summary, [
      ["hub.registry.test", "http://127.0.0.1:5001/", true, "generated"],
      ["team.registry.test", "http://127.0.0.1:5002/", false, "generated"],
    ]);
  });
});

describe("defaults", () => {
  it("fills every omitted key, durations in milliseconds", () => {
    const config = parseConfig(lines(...MINIMAL_SITE), "test.yaml", {});
    assert.deepEqual(config.listen, { host: "0.0.0.0", port: 5443 });
    assert.deepEqual(config.admin, { listen: { host: "127.0.0.1", port: 9091 }, allowNonLoopback: false, hosts: [] });
    assert.equal(config.dataDir, path.resolve("data"));
    assert.deepEqual(config.tls, { minVersion: "TLSv1.2", strictSni: true, generated: { caValidityDays: 3650, leafValidityDays: 365 } });
    assert.deepEqual(config.timeouts, { header: 30_000, handshake: 10_000, idle: 300_000, send: 60_000, keepAlive: 65_000, drain: 30_000, uploadIdle: 3_600_000 });
    assert.deepEqual(config.limits, { maxHeaderBytes: 16_384, maxConnections: 4096, maxConnectionsPerIp: 256, downloadsPerClient: 32, downloadsPerUser: 256, uploadsPerUser: 64 });
    assert.deepEqual(config.logins, {
      maxFailures: 10,
      per: 60_000,
      maxFailuresPerAddress: 30,
      maxFailuresPerNetwork: 100,
      networkPrefix: { ipv4: 24, ipv6: 64 },
      hashWorkers: "auto",
      maxQueued: 256,
      maxQueuedPerAddress: 8,
    });
    assert.deepEqual(config.log, { level: "info", format: "json", access: true });
    assert.deepEqual(config.metrics, { enabled: true });
    assert.equal(config.sites[0]!.default, false);
    assert.deepEqual(config.sites[0]!.tls, { source: "generated" });
  });

  it("parses written durations and plain seconds", () => {
    const text = lines("timeouts:", "  header: 500ms", "  idle: 2h", "  keepAlive: 1.5", "  drain: 1m", ...MINIMAL_SITE);
    const config = parseConfig(text, "test.yaml", {});
    assert.deepEqual(config.timeouts, { header: 500, handshake: 10_000, idle: 7_200_000, send: 60_000, keepAlive: 1_500, drain: 60_000, uploadIdle: 3_600_000 });
  });

  it("refuses a send timeout under a second and a download cap under one, naming the key", () => {
    assertAt(onlyIssue(lines("timeouts:", "  send: 0s", ...MINIMAL_SITE)), { line: 2, key: "timeouts.send" }, /at least 1s/);
    assertAt(onlyIssue(lines("limits:", "  downloadsPerClient: 0", ...MINIMAL_SITE)), { line: 2, key: "limits.downloadsPerClient" }, />=1/);
  });

  it("reads the upload session bounds, and names the key of a bad one", () => {
    const config = parseConfig(lines("timeouts: { uploadIdle: 10m }", "limits: { uploadsPerUser: 8 }", ...MINIMAL_SITE), "test.yaml", {});
    assert.equal(config.timeouts.uploadIdle, 600_000);
    assert.equal(config.limits.uploadsPerUser, 8);
    assert.throws(() => parseConfig(lines("limits: { uploadsPerUser: 0 }", ...MINIMAL_SITE), "test.yaml", {}), /limits\.uploadsPerUser/);
    assert.throws(() => parseConfig(lines("timeouts: { uploadIdle: 500ms }", ...MINIMAL_SITE), "test.yaml", {}), /timeouts\.uploadIdle/);
  });

  it("returns a deeply frozen object", () => {
    const config = parseConfig(lines(...MINIMAL_SITE), "test.yaml", {});
    assert.ok(Object.isFrozen(config));
    assert.ok(Object.isFrozen(config.timeouts));
    assert.ok(Object.isFrozen(config.sites[0]!.hosts));
    assert.throws(() => {
      (config.sites[0]!.hosts as string[]).push("b.test");
    }, TypeError);
  });
});

describe("${NAME} interpolation", () => {
  const text = lines("dataDir: ${DIR:-/srv/default}", ...MINIMAL_SITE);

  it("uses the default when the variable is unset or empty", () => {
    assert.equal(parseConfig(text, "test.yaml", {}).dataDir, "/srv/default");
    assert.equal(parseConfig(text, "test.yaml", { DIR: "" }).dataDir, "/srv/default");
  });

  it("uses the variable when it is set", () => {
    assert.equal(parseConfig(text, "test.yaml", { DIR: "/srv/set" }).dataDir, "/srv/set");
  });

  it("reports an unset variable without a default, naming the key and the variable", () => {
    const issue = onlyIssue(lines(...MINIMAL_SITE, "    name: ${SITE_NAME}"));
    assertAt(issue, { line: 4, column: 5, key: "sites[0].name" }, /SITE_NAME is not set/);
  });

  it("needs no variable for a value a GATEWAY_* override replaces", () => {
    const text = lines("sites:", "  - hosts: [a.test]", "    backend: ${BACKEND}");
    const config = parseConfig(text, "test.yaml", { GATEWAY_SITES_0_BACKEND: "http://127.0.0.1:5009" });
    assert.equal(url(config.sites[0]!.backend).port, "5009");
  });

  it("treats $${ as a literal ${", () => {
    const config = parseConfig(lines("dataDir: /srv/$${HOME}", ...MINIMAL_SITE), "test.yaml", { HOME: "/root" });
    assert.equal(config.dataDir, "/srv/${HOME}");
  });

  it("reads an unquoted result as YAML would (a number), a quoted one as text", () => {
    const unquoted = parseConfig(lines("limits:", "  maxHeaderBytes: ${MAX}", ...MINIMAL_SITE), "test.yaml", { MAX: "2048" });
    assert.equal(unquoted.limits.maxHeaderBytes, 2048);
    const issue = onlyIssue(lines("limits:", '  maxHeaderBytes: "${MAX}"', ...MINIMAL_SITE), { MAX: "2048" });
    assertAt(issue, { line: 2, key: "limits.maxHeaderBytes" }, /expected number, got "2048"/);
  });

  it("substitutes text without letting it change the YAML structure", () => {
    const value = "/srv/a: [b #c";
    assert.equal(parseConfig(lines('dataDir: "${X}"', ...MINIMAL_SITE), "test.yaml", { X: value }).dataDir, value);
    // Unquoted, "[a, b]" would read as a list; the schema wants text, so the text is kept.
    assert.equal(parseConfig(lines("dataDir: /${X}", ...MINIMAL_SITE), "test.yaml", { X: "[a, b]" }).dataDir, "/[a, b]");
    assert.equal(parseConfig(lines("dataDir: ${X}", ...MINIMAL_SITE), "test.yaml", { X: "/[a, b]" }).dataDir, "/[a, b]");
  });

  it("leaves keys alone", () => {
    const issue = onlyIssue(lines("${KEY}: 1", ...MINIMAL_SITE), { KEY: "dataDir" });
    assertAt(issue, { line: 1, column: 1, key: "${KEY}" }, /unknown key "\$\{KEY\}"/);
  });
});

describe("GATEWAY_* environment overrides", () => {
  const base = lines("dataDir: /srv/file", ...MINIMAL_SITE);

  it("overrides a top-level scalar", () => {
    assert.equal(parseConfig(base, "test.yaml", { GATEWAY_DATADIR: "/var/lib/x" }).dataDir, "/var/lib/x");
  });

  it("overrides nested keys, matching camelCase names case-insensitively", () => {
    const config = parseConfig(base, "test.yaml", {
      GATEWAY_ADMIN_LISTEN: "127.0.0.1:9999",
      GATEWAY_TIMEOUTS_IDLE: "10m",
      GATEWAY_LOG_LEVEL: "debug",
      GATEWAY_TIMEOUTS_KEEPALIVE: "5s",
    });
    assert.deepEqual(config.admin.listen, { host: "127.0.0.1", port: 9999 });
    assert.equal(config.timeouts.idle, 600_000);
    assert.equal(config.timeouts.keepAlive, 5_000);
    assert.equal(config.log.level, "debug");
  });

  it("addresses list elements by index", () => {
    const config = parseConfig(base, "test.yaml", { GATEWAY_SITES_0_BACKEND: "http://127.0.0.1:5009" });
    assert.equal(url(config.sites[0]!.backend).href, "http://127.0.0.1:5009/");
  });

  it("reads values as YAML: booleans, numbers and flow sequences", () => {
    const config = parseConfig(base, "test.yaml", {
      GATEWAY_ADMIN_ALLOWNONLOOPBACK: "true",
      GATEWAY_ADMIN_LISTEN: "0.0.0.0:9091",
      GATEWAY_LIMITS_MAXHEADERBYTES: "32768",
      GATEWAY_SITES_0_HOSTS: "[a.test, b.test]",
    });
    assert.equal(config.admin.allowNonLoopback, true);
    assert.equal(config.limits.maxHeaderBytes, 32_768);
    assert.deepEqual(config.sites[0]!.hosts, ["a.test", "b.test"]);
  });

  it("keeps a number-looking value as text where the schema wants text", () => {
    assert.equal(parseConfig(base, "test.yaml", { GATEWAY_SITES_0_NAME: "2024" }).sites[0]!.name, "2024");
  });

  it("can add the next list element", () => {
    const config = parseConfig(base, "test.yaml", {
      GATEWAY_SITES_1_HOSTS: "[b.test]",
      GATEWAY_SITES_1_BACKEND: "http://127.0.0.1:5002",
    });
    assert.deepEqual(
      config.sites.map((s) => url(s.backend).port),
      ["5000", "5002"],
    );
  });

  it("applies overrides in sorted order of name, so a whole list can be replaced and then refined", () => {
    const config = parseConfig(base, "test.yaml", {
      GATEWAY_SITES_0_BACKEND: "http://127.0.0.1:5003",
      GATEWAY_SITES: '[{hosts: [b.test], backend: "http://127.0.0.1:5002"}]',
    });
    assert.deepEqual(config.sites[0]!.hosts, ["b.test"]);
    assert.equal(url(config.sites[0]!.backend).port, "5003");
  });

  it("reports a variable naming a key the schema does not have, by the variable's name", () => {
    const issue = onlyIssue(base, { GATEWAY_ADMIN_LISTN: "127.0.0.1:1" });
    assertAt(
      issue,
      { file: "environment", line: 0, column: 0, key: "GATEWAY_ADMIN_LISTN" },
      /unknown key "LISTN" at admin \(expected one of: listen, allowNonLoopback, hosts, token, tokenFile\)/,
    );
  });

  it("reports an index beyond the next list element", () => {
    const issue = onlyIssue(base, { GATEWAY_SITES_2_BACKEND: "http://127.0.0.1:5002" });
    assertAt(issue, { file: "environment", line: 0, key: "GATEWAY_SITES_2_BACKEND" }, /can add only index 1/);
  });

  it("blames the variable, not the file, for an invalid overridden value", () => {
    const issue = onlyIssue(base, { GATEWAY_TIMEOUTS_IDLE: "soon" });
    assertAt(issue, { file: "environment", line: 0, key: "timeouts.idle" }, /expected a duration.*"soon".*GATEWAY_TIMEOUTS_IDLE/);
  });

  it("ignores variables without the GATEWAY_ prefix", () => {
    assert.equal(parseConfig(base, "test.yaml", { DATADIR: "/x", gateway_datadir: "/y" }).dataDir, "/srv/file");
  });
});

describe("validation issues name file:line:column, the key and what is expected", () => {
  it("reports an unknown key at that key, with the keys expected there", () => {
    const issue = onlyIssue(lines("sites:", "  - hosts: [a.test]", "    bakend: http://127.0.0.1:5000", "    backend: http://x"));
    assertAt(
      issue,
      { line: 3, column: 5, key: "sites[0].bakend" },
      // Later issues add site keys (auth, limits, …) after these.
      /^unknown key "bakend" \(expected one of: name, hosts, backend, backends, health, group, pushTo, routes, default, tls(, \w+)*\)$/,
    );
  });

  it("lists the keys of the chosen tls variant for an unknown tls key", () => {
    const issue = onlyIssue(lines(...MINIMAL_SITE, "    tls: { source: generated, cert: a.pem }"));
    assertAt(issue, { line: 4, key: "sites[0].tls.cert" }, /unknown key "cert" \(expected one of: source\)$/);
  });

  it("reports a backend that is not an http(s) URL without a path", () => {
    const ftp = onlyIssue(lines("sites:", "  - hosts: [a.test]", "    backend: ftp://127.0.0.1:5000"));
    assertAt(ftp, { line: 3, column: 5, key: "sites[0].backend" }, /expected an http:\/\/ or https:\/\/ URL/);
    const withPath = onlyIssue(lines("sites:", "  - hosts: [a.test]", "    backend: http://127.0.0.1:5000/v2/"));
    assertAt(withPath, { line: 3, key: "sites[0].backend" }, /no path/);
  });

  it("reports a bad listen address", () => {
    const issue = onlyIssue(lines("listen: 127.0.0.1", ...MINIMAL_SITE));
    assertAt(issue, { line: 1, column: 1, key: "listen" }, /expected "host:port"/);
  });

  it("reports a bad duration", () => {
    const issue = onlyIssue(lines(...MINIMAL_SITE, "timeouts:", "  header: 30", "  drain: 10 minutes"));
    assertAt(issue, { line: 6, column: 3, key: "timeouts.drain" }, /expected a duration such as "30s".*got "10 minutes"/);
  });

  it("reports a host served by two sites at the second occurrence", () => {
    const text = lines(
      "sites:",
      "  - hosts: [a.test, b.test]",
      "    backend: http://127.0.0.1:5001",
      "  - hosts:",
      "      - c.test",
      "      - B.test",
      "    backend: http://127.0.0.1:5002",
    );
    assertAt(onlyIssue(text), { line: 6, column: 9, key: "sites[1].hosts[1]" }, /"b.test" is already served by sites\[0\]/);
  });

  it("reports a second default site", () => {
    const text = lines(
      "sites:",
      "  - hosts: [a.test]",
      "    backend: http://127.0.0.1:5001",
      "    default: true",
      "  - hosts: [b.test]",
      "    backend: http://127.0.0.1:5002",
      "    default: true",
    );
    assertAt(onlyIssue(text), { line: 7, column: 5, key: "sites[1].default" }, /only one site may be the default/);
  });

  it("refuses an admin listener beyond loopback unless allowNonLoopback is set", () => {
    const text = lines("admin:", "  listen: 0.0.0.0:9091", ...MINIMAL_SITE);
    assertAt(onlyIssue(text), { line: 2, column: 3, key: "admin.listen" }, /allowNonLoopback/);
    const allowed = parseConfig(lines("admin:", "  listen: 0.0.0.0:9091", "  allowNonLoopback: true", ...MINIMAL_SITE), "t", {});
    assert.deepEqual(allowed.admin.listen, { host: "0.0.0.0", port: 9091 });
  });

  it("points a missing key at its nearest parent", () => {
    const issue = onlyIssue(lines("listen: :5443", "sites:", "  - hosts: [a.test]", "    default: true"));
    assertAt(issue, { line: 3, column: 5, key: "sites[0]" }, /expected one of backend \(a registry\), backends \(replicas of one registry\) or group/);
  });

  it("reports every issue together, in file order, one per line of the message", () => {
    const text = lines(
      "listen: localhost", //                1
      "bogus: 1", //                          2
      "log:", //                              3
      "  level: loud", //                     4
      "sites:", //                            5
      "  - hosts: [a.test]", //               6
      "    backend: a.test:5000", //          7
      "    tls:", //                          8
      "      source: files", //               9
      "      cert: a.pem", //                 10
    );
    const issues = issuesOf(() => parseConfig(text, "multi.yaml", {}));
    assert.deepEqual(
      issues.map((i) => `${i.line} ${i.key}`),
      ["1 listen", "2 bogus", "4 log.level", "7 sites[0].backend", "8 sites[0].tls.key"],
    );
    let message = "";
    try {
      parseConfig(text, "multi.yaml", {});
    } catch (error) {
      message = (error as Error).message;
    }
    const messageLines = message.split("\n");
    assert.equal(messageLines.length, 5);
    assert.match(messageLines[3]!, /^multi\.yaml:7:5 sites\[0\]\.backend: expected an http:\/\/ or https:\/\/ URL/);
    assert.match(messageLines[2]!, /^multi\.yaml:4:3 log\.level: expected one of "trace", .*got "loud"$/);
  });

  it("reports a YAML syntax error with its position", () => {
    const issue = onlyIssue(lines("sites:", "  - hosts: [a.test", "    backend: http://x"));
    // The parser notices the unclosed list where the next key starts.
    assertAt(issue, { line: 3, column: 5, key: "(yaml)" }, /Flow sequence .* end with a \]/);
  });

  it("reports a duplicate key as a YAML error", () => {
    const issue = onlyIssue(lines("dataDir: a", "dataDir: b", ...MINIMAL_SITE));
    assertAt(issue, { line: 2, column: 1, key: "(yaml)" }, /unique/);
  });
});

describe("loadConfig", () => {
  let dir: string;

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "rg-config-"));
    await writeFile(path.join(dir, "site.crt"), "certificate");
  });

  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  function filesConfig(cert: string, key: string): string {
    return lines(
      "sites:", //                                1
      "  - hosts: [a.test]", //                   2
      "    backend: http://127.0.0.1:5000", //   3
      "    tls:", //                              4
      "      source: files", //                   5
      `      cert: ${cert}`, //                   6
      `      key: ${key}`, //                     7
    );
  }

  it("reports a missing key file at its key, with the absolute path", async () => {
    const file = path.join(dir, "gateway.yaml");
    await writeFile(file, filesConfig(path.join(dir, "site.crt"), path.join(dir, "missing.key")));
    const issues = await issuesOfAsync(() => loadConfig(file, {}));
    assert.equal(issues.length, 1);
    assertAt(issues[0]!, { file, line: 7, column: 7, key: "sites[0].tls.key" }, /^file not found: /);
    assert.equal(issues[0]!.message, `file not found: ${path.join(dir, "missing.key")}`);
  });

  it("resolves relative certificate paths against the working directory", async () => {
    const file = path.join(dir, "relative.yaml");
    await writeFile(path.join(dir, "site.key"), "key");
    const relative = (name: string) => path.relative(process.cwd(), path.join(dir, name));
    await writeFile(file, filesConfig(relative("site.crt"), relative("site.key")));
    const config = await loadConfig(file, {});
    assert.deepEqual(config.sites[0]!.tls, {
      source: "files",
      cert: path.join(dir, "site.crt"),
      key: path.join(dir, "site.key"),
    });
  });

  it("reports a file that cannot be read", async () => {
    const file = path.join(dir, "absent.yaml");
    const issues = await issuesOfAsync(() => loadConfig(file, {}));
    assertAt(issues[0]!, { file, line: 0, key: "(file)" }, /ENOENT/);
  });
});

describe("managed backends", () => {
  const site = (...backend: string[]) => lines("sites:", "  - hosts: [a.test]", ...backend);

  it("accepts { managed: {} } and a bare `managed:`, with every default", () => {
    for (const text of [site("    backend: { managed: {} }"), site("    backend:", "      managed:")]) {
      const config = parseConfig(text, "test.yaml", {});
      assert.deepEqual(config.sites[0]!.backend, { managed: { binary: "docker-registry" } });
      assert.deepEqual(managedSpec(config.sites[0]!.backend!, config.dataDir), {
        binary: "docker-registry",
        storage: path.resolve("data", "registry"),
        port: undefined,
        trustDir: path.resolve("data", "managed-registries"),
      });
    }
  });

  it("takes storage (relative to the working directory), port and binary", () => {
    const config = parseConfig(site("    backend:", "      managed: { storage: ./images, port: 5005, binary: /opt/registry }"), "test.yaml", {});
    assert.deepEqual(config.sites[0]!.backend, { managed: { storage: path.resolve("images"), port: 5005, binary: "/opt/registry" } });
  });

  it("names an unknown key inside managed and lists the known ones", () => {
    const issue = onlyIssue(site("    backend:", "      managed:", "        prot: 5005"));
    assertAt(issue, { line: 5, column: 9, key: "sites[0].backend.managed.prot" }, /^unknown key "prot" \(expected one of: storage, port, binary, proxy\)$/);
  });

  it("names a bad value inside managed by its key", () => {
    const issue = onlyIssue(site("    backend:", "      managed:", "        port: 70000"));
    assertAt(issue, { line: 5, column: 9, key: "sites[0].backend.managed.port" }, /65535/);
  });

  it("says what a backend may be when it is neither a URL nor { managed }", () => {
    const number = onlyIssue(site("    backend: 5000"));
    assertAt(number, { line: 3, column: 5, key: "sites[0].backend" }, /^expected an http:\/\/ or https:\/\/ URL of a registry, or \{ managed: \{…\} \}.*, got 5000$/);
    const issues = issuesOf(() => parseConfig(site("    backend: { manage: {} }"), "test.yaml", {}));
    assert.ok(
      issues.some((i) => i.key === "sites[0].backend.manage" && /unknown key "manage" \(expected one of: managed\)/.test(i.message)),
      issues.map((i) => `${i.key}: ${i.message}`).join("\n"),
    );
  });

  it("can be tuned, or replaced by a URL, from the environment", () => {
    const text = site("    backend: { managed: {} }");
    const tuned = parseConfig(text, "test.yaml", { GATEWAY_SITES_0_BACKEND_MANAGED_PORT: "5005" });
    assert.deepEqual(tuned.sites[0]!.backend, { managed: { binary: "docker-registry", port: 5005 } });
    const replaced = parseConfig(text, "test.yaml", { GATEWAY_SITES_0_BACKEND: "http://127.0.0.1:5009" });
    assert.equal(url(replaced.sites[0]!.backend).port, "5009");
  });

  it("lets sites share one storage only with the same settings", () => {
    const shared = lines(
      "sites:",
      "  - hosts: [a.test]",
      "    backend: { managed: {} }",
      "  - hosts: [b.test]",
      "    backend: { managed: { storage: ./data/registry } }",
    );
    assert.equal(parseConfig(shared, "test.yaml", {}).sites.length, 2);
    const clash = lines(
      "sites:",
      "  - hosts: [a.test]",
      "    backend: { managed: {} }",
      "  - hosts: [b.test]",
      "    backend: { managed: { storage: ./data/registry, port: 5005 } }",
    );
    assertAt(onlyIssue(clash), { line: 5, key: "sites[1].backend.managed" }, /is already run by a managed backend of sites\[0\] with other settings/);
  });
});
