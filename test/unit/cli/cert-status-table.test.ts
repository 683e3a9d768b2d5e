// `cert status` as a table people can read.
import assert from "node:assert/strict";
import { test } from "node:test";
import { formatCertificateStatus } from "../../../src/cli/cert-status-table.js";
import type { HostCertificateInfo } from "../../../src/tls/cert-info.js";

const certificate = {
  subject: "CN=hub.registry.test",
  issuer: "CN=Pebble Intermediate CA 1a2b\nO=Pebble",
  sans: ["hub.registry.test", "team.registry.test"],
  serial: "0A1B2C",
  notBefore: new Date("2030-01-01T00:00:00Z"),
  notAfter: new Date("2030-04-01T00:00:00Z"),
  daysLeft: 89,
  coversHost: true,
};

test("one aligned row per host, notes for what needs attention", () => {
  const rows: HostCertificateInfo[] = [
    { site: "hub", host: "hub.registry.test", source: "acme", file: "/d/acme/certs/hub.crt", fallback: false, certificate, problem: null, renewAt: new Date("2030-03-02T00:00:00Z") },
    { site: "local", host: "local.registry.test", source: "generated", file: "/d/certs/local.crt", fallback: false, certificate: null, problem: "no certificate file yet", renewAt: null },
  ];
  const lines = formatCertificateStatus(rows).split("\n");
  assert.match(lines[0]!, /^SITE\s+HOST\s+SOURCE\s+ISSUER\s+SERIAL\s+NOT BEFORE\s+NOT AFTER\s+DAYS LEFT\s+SANS$/);
  assert.match(lines[1]!, /^hub\s+hub\.registry\.test\s+acme\s+Pebble Intermediate CA 1a2b\s+0A1B2C\s+2030-01-01 00:00Z\s+2030-04-01 00:00Z\s+89\s+hub\.registry\.test, team\.registry\.test$/);
  assert.match(lines[2]!, /^local\s+local\.registry\.test\s+generated\s+-\s+-/);
  assert.equal(lines[0]!.indexOf("SERIAL"), lines[1]!.indexOf("0A1B2C"), "columns line up");
  assert.ok(lines.includes("! local / local.registry.test: no certificate file yet (/d/certs/local.crt)"));
  assert.ok(lines.includes("  hub / hub.registry.test: ACME renewal due 2030-03-02 00:00Z"));
});
