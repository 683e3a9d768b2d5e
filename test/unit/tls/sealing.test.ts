import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { certificateBinding, Sealer, SealingKeyMismatchError } from "../../../src/tls/sealing.js";

const SECRET = "a fleet secret of enough length";
const KEY_PEM = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END PRIVATE KEY-----\n";

describe("sealing", () => {
  test("a sealed value opens with the same secret and purpose, and shows nothing of the plaintext", () => {
    const sealer = new Sealer(SECRET);
    const sealed = sealer.seal(KEY_PEM, "ca");
    assert.doesNotMatch(sealed, /PRIVATE KEY|MIGHAgEA/);
    assert.equal(new Sealer(SECRET).open(sealed, "ca"), KEY_PEM);
    // A fresh IV each time: the same plaintext never seals to the same text.
    assert.notEqual(sealer.seal(KEY_PEM, "ca"), sealed);
  });

  test("another secret is refused as a key mismatch, naming both ways to give the key", () => {
    const sealed = new Sealer(SECRET).seal(KEY_PEM, "ca");
    assert.throws(() => new Sealer("another fleet secret, also long").open(sealed, "ca"), (error: Error) => {
      assert.ok(error instanceof SealingKeyMismatchError);
      assert.match(error.message, /sealed with another key/);
      assert.match(error.message, /GATEWAY_TLS_STORE_KEY or tls\.storeKeyFile/);
      return true;
    });
  });

  test("a tampered ciphertext, tag or purpose is refused", () => {
    const sealer = new Sealer(SECRET);
    const sealed = sealer.seal(KEY_PEM, "leaf:a");
    const parts = sealed.split(":");
    const body = Buffer.from(parts[4]!, "base64");
    body[0]! ^= 1;
    const tampered = [...parts.slice(0, 4), body.toString("base64")].join(":");
    assert.throws(() => sealer.open(tampered, "leaf:a"), /altered or damaged/);
    const tag = Buffer.from(parts[3]!, "base64");
    tag[3]! ^= 0x80;
    assert.throws(() => sealer.open([...parts.slice(0, 3), tag.toString("base64"), parts[4]].join(":"), "leaf:a"), /altered or damaged/);
    // Copied to another record: the purpose is authenticated too.
    assert.throws(() => sealer.open(sealed, "leaf:b"), /altered or damaged/);
    assert.throws(() => sealer.open("not sealed", "leaf:a"), /not a sealed value/);
  });

  test("a key bound to what travels beside it opens only beside that", () => {
    const sealer = new Sealer(SECRET);
    const sealed = sealer.seal(KEY_PEM, "ca", certificateBinding("the CA certificate"));
    assert.equal(sealer.open(sealed, "ca", certificateBinding("the CA certificate")), KEY_PEM);
    assert.throws(() => sealer.open(sealed, "ca", certificateBinding("another certificate")), /altered or damaged/);
    assert.throws(() => sealer.open(sealed, "ca"), /altered or damaged/);
  });

  test("the example's placeholder key is refused, saying how to make one", () => {
    assert.throws(() => new Sealer("REPLACE-with-openssl-rand-base64-32"), /placeholder.*openssl rand -base64 32/);
  });

  test("the key is stretched: each guess at a weak secret costs tens of milliseconds, not microseconds", () => {
    const started = performance.now();
    new Sealer(SECRET);
    assert.ok(performance.now() - started >= 15, "deriving the key is deliberately slow");
  });

  test("a short secret is refused", () => {
    assert.throws(() => new Sealer("short"), /at least 16 characters/);
  });
});
