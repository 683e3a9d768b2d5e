// Which served certificates count as overdue for renewal, per source.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { gatewayConfig } from "../../../src/config/schema.js";
import { certificatesDue } from "../../../src/tls/expiry.js";
import type { CertificateInfo } from "../../../src/tls/store.js";

const DAY = 86_400_000;
const config = gatewayConfig.parse({
  http: { listen: "127.0.0.1:5080" },
  sites: [
    { name: "gen", hosts: ["gen.test"], backend: "http://127.0.0.1:5001" },
    { name: "acme", hosts: ["acme.test"], backend: "http://127.0.0.1:5001", tls: { source: "acme", directory: "letsencrypt" } },
    { name: "tuned", hosts: ["tuned.test"], backend: "http://127.0.0.1:5001", tls: { source: "acme", directory: "letsencrypt", renewBefore: "240h" } },
    { name: "files", hosts: ["files.test"], backend: "http://127.0.0.1:5001", tls: { source: "files", cert: "/x.crt", key: "/x.key" } },
  ],
});

const now = new Date("2030-01-01T00:00:00Z");

function served(site: string, lifetimeDays: number, daysLeft: number): CertificateInfo {
  const notAfter = new Date(now.getTime() + daysLeft * DAY);
  return {
    site,
    hosts: [`${site}.test`],
    subject: "",
    issuer: "",
    serial: `${site}-${daysLeft}`,
    notBefore: new Date(notAfter.getTime() - lifetimeDays * DAY),
    notAfter,
    sans: [],
  };
}

const due = (infos: CertificateInfo[]) => certificatesDue(infos, config, now).map((w) => w.serial);

describe("certificates due for renewal", () => {
  test("generated: once a third of the lifetime is left", () => {
    assert.deepEqual(due([served("gen", 300, 101), served("gen", 300, 99)]), ["gen-99"]);
  });

  test("acme: once two thirds have passed, or renewBefore when set", () => {
    assert.deepEqual(due([served("acme", 90, 31), served("acme", 90, 29)]), ["acme-29"]);
    assert.deepEqual(due([served("tuned", 90, 11), served("tuned", 90, 9)]), ["tuned-9"]);
  });

  test("files: 30 days before expiry; expired ones say so in daysLeft", () => {
    assert.deepEqual(due([served("files", 365, 31), served("files", 365, 29)]), ["files-29"]);
    const [expired] = certificatesDue([served("files", 365, -2)], config, now);
    assert.equal(expired?.daysLeft, -2);
    assert.equal(expired?.source, "files");
  });

  test("certificates of sites no longer configured are not reported", () => {
    assert.deepEqual(due([served("gone", 300, 1)]), []);
  });
});
