// Sealing for secrets kept outside the machine (the shared TLS store in Redis): AES-256-GCM with a key
// derived from the operator's secret. Each sealed value names the key it was sealed with (a short id derived
// from the same secret, never the key), so a gateway given another secret says so plainly instead of
// reporting a corrupt value; GCM's tag refuses any change to the value. The associated data binds a value to
// what it is (e.g. "ca") and, where given, to what travels beside it (the certificate of a sealed key), so a
// value copied to another record, or left beside another certificate, does not open.
import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes, scryptSync } from "node:crypto";

const FORMAT = "sealed1";
const SALT = "registry-gateway tls store";
const IV_BYTES = 12;
const TAG_BYTES = 16;
// The master key is stretched with scrypt rather than taken through HKDF alone: the key id is published in
// every sealed value and a Redis dump holds known plaintext, so a passphrase-like key could otherwise be
// guessed offline at HKDF speed. Each guess costs about 50 ms and 16 MiB here; the cost is fixed (not tuned
// per machine) because every gateway of a fleet must derive the same key. Requiring 32 random bytes instead
// would refuse the keys fleets already run with.
const SCRYPT = { N: 2 ** 14, r: 8, p: 1, maxmem: 32 * 1024 * 1024 };
const PLACEHOLDER = "REPLACE";

export class SealingKeyMismatchError extends Error {}

export class Sealer {
  readonly keyId: string;
  readonly #key: Buffer;

  /** `secret`: the operator's secret (any length; at least 16 characters are asked for). */
  constructor(secret: string) {
    if (secret.includes(PLACEHOLDER)) {
      throw new Error("the TLS store key is still the example's placeholder: set it to the output of `openssl rand -base64 32`, the same on every gateway");
    }
    if (secret.trim().length < 16) throw new Error("the TLS store key must be at least 16 characters (e.g. `openssl rand -base64 32`)");
    const master = scryptSync(Buffer.from(secret, "utf8"), SALT, 32, SCRYPT);
    this.#key = derive(master, "aes-256-gcm key", 32);
    this.keyId = derive(master, "key id", 6).toString("hex");
  }

  /** `boundTo`: what must travel beside the sealed value for it to open (e.g. its certificate), not stored in it. */
  seal(plaintext: string, purpose: string, boundTo?: string): string {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv("aes-256-gcm", this.#key, iv, { authTagLength: TAG_BYTES });
    cipher.setAAD(associatedData(purpose, boundTo));
    const body = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final()]);
    return [FORMAT, this.keyId, iv.toString("base64"), cipher.getAuthTag().toString("base64"), body.toString("base64")].join(":");
  }

  open(sealed: string, purpose: string, boundTo?: string): string {
    const [format, keyId, iv, tag, body, ...rest] = sealed.split(":");
    if (format !== FORMAT || body === undefined || rest.length > 0) throw new Error(`${purpose}: not a sealed value`);
    if (keyId !== this.keyId) {
      throw new SealingKeyMismatchError(
        `${purpose}: the store was sealed with another key (key id ${keyId}, this gateway's is ${this.keyId}): give every gateway the same GATEWAY_TLS_STORE_KEY or tls.storeKeyFile`,
      );
    }
    try {
      const decipher = createDecipheriv("aes-256-gcm", this.#key, Buffer.from(iv!, "base64"), { authTagLength: TAG_BYTES });
      decipher.setAAD(associatedData(purpose, boundTo));
      decipher.setAuthTag(Buffer.from(tag!, "base64"));
      return Buffer.concat([decipher.update(Buffer.from(body, "base64")), decipher.final()]).toString("utf8");
    } catch {
      throw new Error(`${purpose}: the sealed value was altered or damaged (authentication failed)`);
    }
  }
}

/** What a sealed key's associated data binds: the SHA-256 of the certificate stored beside it. */
export function certificateBinding(certPem: string): string {
  return `cert-sha256:${createHash("sha256").update(certPem).digest("hex")}`;
}

function associatedData(purpose: string, boundTo: string | undefined): Buffer {
  return Buffer.from(boundTo === undefined ? purpose : `${purpose}\n${boundTo}`);
}

function derive(master: Buffer, info: string, bytes: number): Buffer {
  return Buffer.from(hkdfSync("sha256", master, Buffer.from(SALT), Buffer.from(info), bytes));
}
