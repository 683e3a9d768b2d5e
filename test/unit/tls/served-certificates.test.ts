// The served set combines configuration (reload, rotation) and ACME hand-overs without one
// undoing the other, and never serves a half-replaced set.
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { issueLeaf, loadOrCreateCa, type LocalCa } from "../../../src/tls/selfsigned.js";
import { ServedCertificates } from "../../../src/tls/served-certificates.js";
import { CertificateStore, type SiteCertificate } from "../../../src/tls/store.js";

let tmp: string;
let ca: LocalCa;
before(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), "rg-served-"));
  ca = await loadOrCreateCa(tmp, 1);
});
after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

async function certificate(site: string, hosts: string[]): Promise<SiteCertificate> {
  return { site, hosts, ...(await issueLeaf(ca, hosts, 1)) };
}

const serialOf = (certificate: SiteCertificate) => new X509Certificate(certificate.certPem).serialNumber;
const ACME = new Set(["acme"]);

async function setup() {
  const loaded = [await certificate("local", ["local.test"]), await certificate("acme", ["acme.test"])];
  const store = new CertificateStore(loaded, "local", "TLSv1.2");
  const served = new ServedCertificates(store, loaded, "local", ACME);
  const serving = (site: string) => store.info().find((info) => info.site === site)!.serial;
  return { loaded, store, served, serving };
}

describe("served certificates", () => {
  test("an ACME hand-over survives a reload that re-read the disk before it, unless the manager is replaced", async () => {
    const { loaded, served, serving } = await setup();
    const ordered = await certificate("acme", ["acme.test"]);
    served.acmeCertificate("acme", ordered.certPem, ordered.keyPem);
    assert.equal(serving("acme"), serialOf(ordered));

    served.replaceLoaded(loaded, "local", ACME);
    assert.equal(serving("acme"), serialOf(ordered), "the reload's stale fallback does not replace it");
    served.replaceLoaded(loaded, "local", ACME, { keepHandOvers: false });
    assert.equal(serving("acme"), serialOf(loaded[1]!));
  });

  test("a hand-over is dropped when the site's hosts change or it stops being an ACME site", async () => {
    const { loaded, served, serving } = await setup();
    const ordered = await certificate("acme", ["acme.test"]);
    served.acmeCertificate("acme", ordered.certPem, ordered.keyPem);
    const moved = await certificate("acme", ["acme.test", "more.test"]);
    served.replaceLoaded([loaded[0]!, moved], "local", ACME);
    assert.equal(serving("acme"), serialOf(moved));

    served.replaceLoaded(loaded, "local", new Set());
    served.acmeCertificate("acme", ordered.certPem, ordered.keyPem);
    assert.equal(serving("acme"), serialOf(loaded[1]!), "no longer an ACME site: ignored");
  });

  test("replaceSome swaps one site and keeps the rest, hand-overs included", async () => {
    const { loaded, served, serving } = await setup();
    const ordered = await certificate("acme", ["acme.test"]);
    served.acmeCertificate("acme", ordered.certPem, ordered.keyPem);
    const rotated = await certificate("local", ["local.test"]);
    served.replaceSome([rotated]);
    assert.equal(serving("local"), serialOf(rotated));
    assert.equal(serving("acme"), serialOf(ordered));
    assert.notEqual(serialOf(rotated), serialOf(loaded[0]!));
  });

  test("an unusable certificate throws and changes nothing", async () => {
    const { served, serving, loaded } = await setup();
    const other = await certificate("local", ["local.test"]);
    const mismatched = { ...other, keyPem: loaded[1]!.keyPem };
    assert.throws(() => served.replaceSome([mismatched]), /private key does not match/);
    assert.equal(serving("local"), serialOf(loaded[0]!));
    assert.throws(() => served.acmeCertificate("acme", other.certPem, loaded[0]!.keyPem), /private key does not match/);
    assert.equal(serving("acme"), serialOf(loaded[1]!));
  });
});
