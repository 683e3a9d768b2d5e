// Certificates with lifetimes measured in seconds, signed by a local CA: what a fake ACME orderer hands out
// so renewal scheduling can be tested without waiting days (selfsigned.ts only issues whole days).
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { KeyObject, createPrivateKey, randomBytes, webcrypto } from "node:crypto";
import type { KeyPairPem, LocalCa } from "../../src/tls/selfsigned.js";
import type { AcmeSite, CertificateOrderer } from "../../src/tls/acme.js";

x509.cryptoProvider.set(webcrypto);

const EC: webcrypto.EcKeyGenParams = { name: "ECDSA", namedCurve: "P-256" };
const SIGNING: webcrypto.EcdsaParams = { name: "ECDSA", hash: "SHA-256" };

/** X.509 times have whole seconds: notBefore is rounded down to one, so the lifetime is exactly lifetimeMs. */
export async function certificateFor(ca: LocalCa, names: string[], lifetimeMs: number, from = new Date()): Promise<KeyPairPem> {
  const notBefore = new Date(Math.floor(from.getTime() / 1000) * 1000);
  const keys = await webcrypto.subtle.generateKey(EC, true, ["sign", "verify"]);
  const caKey = await webcrypto.subtle.importKey("pkcs8", createPrivateKey(ca.keyPem).export({ type: "pkcs8", format: "der" }), EC, false, ["sign"]);
  const serial = randomBytes(8);
  serial[0] = (serial[0]! & 0x7f) | 0x40;
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial.toString("hex"),
    subject: [{ CN: [names[0]!] }],
    issuer: new x509.X509Certificate(ca.certPem).subjectName,
    notBefore,
    notAfter: new Date(notBefore.getTime() + lifetimeMs),
    publicKey: keys.publicKey,
    signingKey: caKey,
    signingAlgorithm: SIGNING,
    extensions: [new x509.SubjectAlternativeNameExtension(names.map((value) => ({ type: "dns" as const, value })))],
  });
  return { certPem: `${cert.toString("pem")}\n`, keyPem: KeyObject.from(keys.privateKey).export({ type: "pkcs8", format: "pem" }) as string };
}

/** Issues from a local CA; `fail` makes the next orders reject; counts what it was asked. */
export class FakeOrderer implements CertificateOrderer {
  orders = 0;
  failuresToCome = 0;
  constructor(
    private readonly ca: LocalCa,
    public lifetimeMs: number,
    private readonly delayMs = 0,
  ) {}

  async order(site: AcmeSite): Promise<KeyPairPem> {
    this.orders++;
    if (this.delayMs) await new Promise((resolve) => setTimeout(resolve, this.delayMs));
    if (this.failuresToCome > 0) {
      this.failuresToCome--;
      throw new Error("urn:ietf:params:acme:error:connection: the CA could not connect");
    }
    return certificateFor(this.ca, site.hosts, this.lifetimeMs);
  }
}
