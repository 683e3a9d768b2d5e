// Sealing for secrets kept outside the machine (the shared TLS store in Redis): AES-256-GCM with a key
// derived by HKDF-SHA256 from the operator's secret. Each sealed value names the key it was sealed with (a
// short id derived from the same secret, never the key), so a gateway given another secret says so plainly
// instead of reporting a corrupt value; GCM's tag refuses any change to the value. The associated data binds
// a value to what it is (e.g. "ca"), so a value copied to another record does not open there.
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from "node:crypto";

const FORMAT = "sealed1";
const SALT = "registry-gateway tls store";
const IV_BYTES = 12;
const TAG_BYTES = 16;

export class SealingKeyMismatchError extends Error {}

export class Sealer {
  readonly keyId: string;
  readonly #key: Buffer;

  /** `secret`: the operator's secret (any length; at least 16 characters are asked for). */
  constructor(secret: string) {
    if (secret.trim().length < 16) throw new Error("the TLS store key must be at least 16 characters (e.g. `openssl rand -base64 32`)");
    this.#key = derive(secret, "aes-256-gcm key", 32);
    this.keyId = derive(secret, "key id", 6).toString("hex");
  }

  seal(plaintext: string, purpose: string): string {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv("aes-256-gcm", this.#key, iv, { authTagLength: TAG_BYTES });
    cipher.setAAD(Buffer.from(purpose));
    const body = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final()]);
    return [FORMAT, this.keyId, iv.toString("base64"), cipher.getAuthTag().toString("base64"), body.toString("base64")].join(":");
  }

  open(sealed: string, purpose: string): string {
    const [format, keyId, iv, tag, body, ...rest] = sealed.split(":");
    if (format !== FORMAT || body === undefined || rest.length > 0) throw new Error(`${purpose}: not a sealed value`);
    if (keyId !== this.keyId) {
      throw new SealingKeyMismatchError(
        `${purpose}: the store was sealed with another key (key id ${keyId}, this gateway's is ${this.keyId}): give every gateway the same GATEWAY_TLS_STORE_KEY or tls.storeKeyFile`,
      );
    }
    try {
      const decipher = createDecipheriv("aes-256-gcm", this.#key, Buffer.from(iv!, "base64"), { authTagLength: TAG_BYTES });
      decipher.setAAD(Buffer.from(purpose));
      decipher.setAuthTag(Buffer.from(tag!, "base64"));
      return Buffer.concat([decipher.update(Buffer.from(body, "base64")), decipher.final()]).toString("utf8");
    } catch {
      throw new Error(`${purpose}: the sealed value was altered or damaged (authentication failed)`);
    }
  }
}

function derive(secret: string, info: string, bytes: number): Buffer {
  return Buffer.from(hkdfSync("sha256", Buffer.from(secret, "utf8"), Buffer.from(SALT), Buffer.from(info), bytes));
}
