// subjectAltNames reads node:crypto's listing of a certificate's SAN, and hands anything unusual to
// @peculiar/x509: the answer must be what @peculiar/x509 alone gave before (DNS and IP names canonical,
// other kinds as `type:value`), while serving certificates never loads @peculiar/x509.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { X509Certificate, webcrypto } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { isIP } from "node:net";
import os from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { subjectAltNames } from "../../../src/tls/selfsigned.js";

x509.cryptoProvider.set(webcrypto);
const run = promisify(execFile);
const REPO_ROOT = fileURLToPath(new URL("../../../", import.meta.url));

async function certificate(names: x509.JsonGeneralName[] | null): Promise<X509Certificate> {
  const keys = await webcrypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, ["sign", "verify"]);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: "01",
    name: "CN=test",
    keys,
    signingAlgorithm: { name: "ECDSA", hash: "SHA-256" },
    extensions: names ? [new x509.SubjectAlternativeNameExtension(names)] : [],
  });
  return new X509Certificate(cert.toString("pem"));
}

/** What subjectAltNames answered when it read the SAN with @peculiar/x509 only. */
function peculiarOnly(cert: X509Certificate): string[] {
  const san = new x509.X509Certificate(cert.raw).getExtension(x509.SubjectAlternativeNameExtension);
  if (!san) return [];
  const canonical = (name: string) => {
    const trimmed = name.trim().toLowerCase().replace(/\.$/, "");
    return isIP(trimmed) === 6 ? new URL(`http://[${trimmed}]/`).hostname.slice(1, -1) : trimmed;
  };
  return san.names.items.map((n) => (n.type === "dns" || n.type === "ip" ? canonical(n.value) : `${n.type}:${n.value}`));
}

describe("subjectAltNames", () => {
  it("reads DNS names and IPv4/IPv6 addresses in canonical form, in certificate order", async () => {
    const cert = await certificate([
      { type: "dns", value: "Registry.Example.COM" },
      { type: "ip", value: "127.0.0.1" },
      { type: "ip", value: "::1" },
      { type: "ip", value: "2001:db8::10:1" },
      { type: "dns", value: "*.example.com" },
      { type: "dns", value: "localhost" },
    ]);
    const names = subjectAltNames(cert);
    assert.deepEqual(names, ["registry.example.com", "127.0.0.1", "::1", "2001:db8::10:1", "*.example.com", "localhost"]);
    assert.deepEqual(names, peculiarOnly(cert));
  });

  it("answers like @peculiar/x509 for other kinds of name and for names node quotes", async () => {
    for (const names of [
      [{ type: "email", value: "ops@example.com" }, { type: "dns", value: "a.example" }],
      [{ type: "url", value: "https://x.example/p?q=1,2" }],
      [{ type: "dns", value: "a.example, DNS:b.example" }],
      [{ type: "dns", value: 'quo"te.example' }, { type: "ip", value: "10.0.0.1" }],
    ] as x509.JsonGeneralName[][]) {
      const cert = await certificate(names);
      assert.deepEqual(subjectAltNames(cert), peculiarOnly(cert), JSON.stringify(names));
    }
  });

  it("is empty without a SAN extension", async () => {
    assert.deepEqual(subjectAltNames(await certificate(null)), []);
  });

  it("leaves @peculiar/x509 unloaded for DNS and IP names", async () => {
    // In a process of its own: this one loaded @peculiar/x509 above.
    const pem = (await certificate([{ type: "dns", value: "localhost" }, { type: "ip", value: "127.0.0.1" }])).toString();
    const dir = await mkdtemp(path.join(os.tmpdir(), "rg-san-"));
    try {
      const script = path.join(dir, "san.ts");
      await writeFile(
        script,
        `import { X509Certificate } from "node:crypto";
import { createRequire } from "node:module";
import { subjectAltNames } from ${JSON.stringify(new URL("../../../src/tls/selfsigned.ts", import.meta.url).href)};
const names = subjectAltNames(new X509Certificate(${JSON.stringify(pem)}));
const loaded = Object.keys(createRequire(import.meta.url).cache).filter((file) => file.includes("@peculiar"));
console.log(JSON.stringify({ names, loaded }));
`,
      );
      const { stdout } = await run(process.execPath, ["--import", "tsx", script], { cwd: REPO_ROOT });
      assert.deepEqual(JSON.parse(stdout), { names: ["localhost", "127.0.0.1"], loaded: [] });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
