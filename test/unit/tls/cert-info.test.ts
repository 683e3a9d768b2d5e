// What `cert status` will print, and what a gateway serves for an ACME site before and after its first
// certificate — both read from disk only.
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { gatewayConfig, type GatewayConfig } from "../../../src/config/schema.js";
import { acmeCertificatePaths, writeStoredCertificate } from "../../../src/tls/acme-storage.js";
import { certificateStatus } from "../../../src/tls/cert-info.js";
import { issueLeaf, leafPaths, loadOrCreateCa, type LocalCa } from "../../../src/tls/selfsigned.js";
import { loadSiteCertificates } from "../../../src/tls/store.js";
import { certificateFor } from "../../helpers/certs.js";

const DIRECTORY = "https://acme.example.test/directory";

let tmp: string;
let outsideCa: LocalCa;
before(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), "rg-cert-info-"));
  outsideCa = await loadOrCreateCa(path.join(tmp, "outside-ca"), 1);
});
after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

async function configWith(dataDir: string): Promise<GatewayConfig> {
  const files = await issueLeaf(outsideCa, ["files.registry.test"], 30);
  await writeFile(path.join(dataDir, "files.crt"), files.certPem);
  await writeFile(path.join(dataDir, "files.key"), files.keyPem);
  return gatewayConfig.parse({
    listen: "127.0.0.1:5443",
    http: { listen: "127.0.0.1:5080" },
    dataDir,
    sites: [
      { name: "local", hosts: ["local.registry.test"], backend: "http://127.0.0.1:5000" },
      { name: "files", hosts: ["files.registry.test", "other.registry.test"], backend: "http://127.0.0.1:5000", tls: { source: "files", cert: path.join(dataDir, "files.crt"), key: path.join(dataDir, "files.key") } },
      { name: "hub", hosts: ["hub.registry.test", "team.registry.test"], backend: "http://127.0.0.1:5001", tls: { source: "acme", directory: DIRECTORY, renewBefore: "10m" } },
    ],
  });
}

describe("ACME sites in loadSiteCertificates and certificateStatus", () => {
  test("before any certificate exists, status says so for every site and host", async () => {
    const dataDir = await mkdtemp(path.join(tmp, "empty-"));
    const rows = await certificateStatus(await configWith(dataDir));
    assert.deepEqual(
      rows.map((row) => [row.site, row.host, row.source, row.certificate === null, row.fallback]),
      [
        ["local", "local.registry.test", "generated", true, false],
        ["files", "files.registry.test", "files", false, false],
        ["files", "other.registry.test", "files", false, false],
        ["hub", "hub.registry.test", "acme", true, true],
        ["hub", "team.registry.test", "acme", true, true],
      ],
    );
    assert.match(rows[0]!.problem ?? "", /no certificate file yet/);
    assert.equal(rows[1]!.certificate?.coversHost, true);
    assert.equal(rows[2]!.certificate?.coversHost, false, "other.registry.test is not in the files certificate");
  });

  test("until the first ACME certificate the site is served with a generated one; then with the stored one", async () => {
    const dataDir = await mkdtemp(path.join(tmp, "acme-"));
    const config = await configWith(dataDir);
    const before = await loadSiteCertificates(config);
    const fallback = before.certificates.find((c) => c.site === "hub")!;
    assert.equal(new X509Certificate(fallback.certPem).issuer, new X509Certificate(before.ca!.certPem).subject, "signed by the local CA");
    assert.deepEqual(fallback.hosts, ["hub.registry.test", "team.registry.test"]);
    const fallbackRows = (await certificateStatus(config)).filter((row) => row.site === "hub");
    assert.equal(fallbackRows[0]!.file, leafPaths(dataDir, "hub").certPath);
    assert.equal(fallbackRows[0]!.certificate?.serial, new X509Certificate(fallback.certPem).serialNumber);

    const acmeIssued = await certificateFor(outsideCa, ["hub.registry.test", "team.registry.test"], 3_600_000);
    await writeStoredCertificate(dataDir, "hub", acmeIssued, DIRECTORY, new Date());
    const after = await loadSiteCertificates(config);
    assert.equal(after.certificates.find((c) => c.site === "hub")!.certPem, acmeIssued.certPem);

    const rows = (await certificateStatus(config)).filter((row) => row.site === "hub");
    const leaf = new X509Certificate(acmeIssued.certPem);
    for (const row of rows) {
      assert.equal(row.fallback, false);
      assert.equal(row.file, acmeCertificatePaths(dataDir, "hub").certPath);
      assert.equal(row.certificate?.serial, leaf.serialNumber);
      assert.equal(row.certificate?.issuer, leaf.issuer);
      assert.deepEqual(row.certificate?.sans, ["hub.registry.test", "team.registry.test"]);
      assert.equal(row.certificate?.coversHost, true);
      assert.equal(row.certificate?.daysLeft, 0);
      assert.equal(row.renewAt?.getTime(), new Date(leaf.validTo).getTime() - 600_000);
    }
  });
});
