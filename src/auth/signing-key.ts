// The key that signs every token the gateway issues, and the certificate a token-auth backend trusts it by
// (distribution's `auth.token.rootcertbundle`). Configured (tokens.key + tokens.cert) or generated once and
// kept in DATADIR/tokens, so restarts and every process sharing the data directory sign with the same key.
import { createHash, createPrivateKey, KeyObject, randomBytes, webcrypto, X509Certificate } from "node:crypto";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { importPKCS8, importX509, type CryptoKey } from "jose";
import type { GatewayConfig } from "../config/schema.js";
import { ensurePrivateDir, keyPairProblem, peculiarX509, withDataDirLock, writeKeyPair } from "../tls/selfsigned.js";
import { loadOrCreateSharedSecret, tlsStoreKind } from "../tls/tls-stores.js";
import { writeFileAtomically } from "../util/atomic-write.js";

export type SigningAlgorithm = "ES256" | "RS256";

export interface SigningKey {
  algorithm: SigningAlgorithm;
  /** Imported once; jose signs and verifies with these directly. */
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  /** libtrust key ID of the public key: the JWT `kid` distribution looks the key up by. */
  keyId: string;
  certPem: string;
  certPath: string;
  created: boolean;
}

const VALIDITY_DAYS = 3650;
const DAY_MS = 86_400_000;

const GENERATE: Record<SigningAlgorithm, { key: webcrypto.RsaHashedKeyGenParams | webcrypto.EcKeyGenParams; sign: webcrypto.EcdsaParams | webcrypto.Algorithm }> = {
  ES256: { key: { name: "ECDSA", namedCurve: "P-256" }, sign: { name: "ECDSA", hash: "SHA-256" } as webcrypto.EcdsaParams },
  RS256: {
    key: { name: "RSASSA-PKCS1-v1_5", modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-256" },
    sign: { name: "RSASSA-PKCS1-v1_5" },
  },
};

export function signingKeyPaths(dataDir: string): { certPath: string; keyPath: string } {
  return { certPath: path.join(dataDir, "tokens", "signing.crt"), keyPath: path.join(dataDir, "tokens", "signing.key") };
}

export async function loadSigningKey(config: Pick<GatewayConfig, "dataDir" | "tokens"> & Partial<Pick<GatewayConfig, "tls" | "redis">>): Promise<SigningKey> {
  const { tokens } = config;
  if (tokens.key !== undefined && tokens.cert !== undefined) {
    const [keyPem, certPem] = await Promise.all([readFile(tokens.key, "utf8"), readFile(tokens.cert, "utf8")]);
    return importSigningKey(keyPem, certPem, { certPath: tokens.cert, keyPath: tokens.key }, null, false);
  }
  if (config.tls && tlsStoreKind({ tls: config.tls, redis: config.redis }) === "redis") return loadFleetKey({ ...config, tls: config.tls }, tokens.algorithm);
  return loadGeneratedKey(config.dataDir, signingKeyPaths(config.dataDir), tokens.algorithm);
}

/** With the redis TLS store, one generated pair for the whole fleet: a token one gateway issues verifies on every other. */
async function loadFleetKey(config: Pick<GatewayConfig, "dataDir" | "tls" | "redis">, algorithm: SigningAlgorithm): Promise<SigningKey> {
  let created = false;
  const text = await loadOrCreateSharedSecret(config, `token-signing-${algorithm}`, async () => {
    created = true;
    return JSON.stringify(await generatePair(algorithm));
  });
  const pair = JSON.parse(text) as { certPem: string; keyPem: string };
  // The certificate is mirrored where `token cert` and token-auth backends have always found it.
  const paths = signingKeyPaths(config.dataDir);
  await ensurePrivateDir(path.dirname(paths.certPath));
  await writeFileAtomically(paths.certPath, pair.certPem, 0o644);
  return importSigningKey(pair.keyPem, pair.certPem, { certPath: paths.certPath, keyPath: `the TLS store's secret token-signing-${algorithm}` }, algorithm, created);
}

/**
 * The key pair at `paths` (under `dataDir`), generated there first if it does not exist: key 0600, in a
 * directory 0700. Every process sharing the data directory reads the same pair; the data directory's lock
 * makes sure only one of them generates it.
 */
export async function loadGeneratedKey(dataDir: string, paths: { certPath: string; keyPath: string }, algorithm: SigningAlgorithm): Promise<SigningKey> {
  const existing = await readPair(paths);
  if (existing) return importSigningKey(existing.keyPem, existing.certPem, paths, algorithm, false);
  return withDataDirLock(dataDir, async () => {
    // Another process may have made it while we waited for the lock.
    const raced = await readPair(paths);
    if (raced) return importSigningKey(raced.keyPem, raced.certPem, paths, algorithm, false);
    const fresh = await generatePair(algorithm);
    await writeKeyPair(paths, fresh);
    return importSigningKey(fresh.keyPem, fresh.certPem, paths, algorithm, true);
  });
}

async function importSigningKey(
  keyPem: string,
  certPem: string,
  paths: { certPath: string; keyPath: string },
  expected: SigningAlgorithm | null,
  created: boolean,
): Promise<SigningKey> {
  const mismatch = keyPairProblem(certPem, keyPem);
  if (mismatch) throw new Error(`token signing key ${paths.keyPath} and certificate ${paths.certPath}: ${mismatch}`);
  const algorithm = algorithmOf(createPrivateKey(keyPem), paths.keyPath);
  if (expected && algorithm !== expected) {
    throw new Error(
      `tokens.algorithm is ${expected} but the generated key ${paths.keyPath} is for ${algorithm}: ` +
        `set tokens.algorithm to ${algorithm}, or delete ${path.dirname(paths.keyPath)} to generate a new key (then give backends the new \`token cert\`)`,
    );
  }
  return {
    algorithm,
    privateKey: await importPKCS8(pkcs8Pem(keyPem), algorithm),
    publicKey: await importX509(certPem, algorithm),
    keyId: libtrustKeyId(new X509Certificate(certPem).publicKey),
    certPem: certPem.endsWith("\n") ? certPem : `${certPem}\n`,
    certPath: paths.certPath,
    created,
  };
}

/** distribution 2.8 verifies RS256/384/512 and ES256/384/512 only; the gateway signs with the two common ones. */
function algorithmOf(key: KeyObject, file: string): SigningAlgorithm {
  if (key.asymmetricKeyType === "ec" && key.asymmetricKeyDetails?.namedCurve === "prime256v1") return "ES256";
  if (key.asymmetricKeyType === "rsa" && (key.asymmetricKeyDetails?.modulusLength ?? 0) >= 2048) return "RS256";
  throw new Error(`token signing key ${file}: expected an EC P-256 key (ES256) or an RSA key of at least 2048 bits (RS256)`);
}

/** jose imports PKCS#8 only; keys written by `openssl ecparam`/`genrsa` are SEC1/PKCS#1. */
function pkcs8Pem(keyPem: string): string {
  return createPrivateKey(keyPem).export({ type: "pkcs8", format: "pem" }) as string;
}

/**
 * libtrust's key ID (docker/libtrust util.go keyIDFromCryptoKey): SHA-256 of the DER SubjectPublicKeyInfo,
 * the first 240 bits in unpadded base32, in 12 groups of 4 joined by ':'.
 */
export function libtrustKeyId(publicKey: KeyObject): string {
  const der = publicKey.export({ type: "spki", format: "der" });
  const digest = createHash("sha256").update(der).digest().subarray(0, 30);
  return base32(digest).match(/.{4}/g)!.join(":");
}

const BASE32_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

function base32(bytes: Uint8Array): string {
  let out = "";
  let buffer = 0;
  let bits = 0;
  for (const byte of bytes) {
    buffer = (buffer << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += BASE32_ALPHABET[(buffer >>> (bits - 5)) & 31];
      bits -= 5;
    }
    buffer &= (1 << bits) - 1;
  }
  if (bits > 0) out += BASE32_ALPHABET[(buffer << (5 - bits)) & 31];
  return out;
}

async function readPair(paths: { certPath: string; keyPath: string }): Promise<{ certPem: string; keyPem: string } | null> {
  const read = (file: string) =>
    readFile(file, "utf8").catch((err: NodeJS.ErrnoException) => {
      if (err.code === "ENOENT") return null;
      throw err;
    });
  const [certPem, keyPem] = await Promise.all([read(paths.certPath), read(paths.keyPath)]);
  if (certPem === null) return null;
  // Never replace a key whose certificate backends may already trust: a half-present pair needs a human.
  if (keyPem === null) throw new Error(`token signing certificate ${paths.certPath} exists but its key ${paths.keyPath} is missing`);
  return { certPem, keyPem };
}

async function generatePair(algorithm: SigningAlgorithm): Promise<{ certPem: string; keyPem: string }> {
  const { key, sign } = GENERATE[algorithm];
  const x509 = peculiarX509();
  const keys = (await webcrypto.subtle.generateKey(key, true, ["sign", "verify"])) as webcrypto.CryptoKeyPair;
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: [{ CN: [`registry-gateway token signing ${randomBytes(4).toString("hex")}`] }, { O: ["registry-gateway"] }],
    notBefore: new Date(now - 3_600_000),
    notAfter: new Date(now + VALIDITY_DAYS * DAY_MS),
    keys,
    signingAlgorithm: sign,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
    ],
  });
  const keyPem = KeyObject.from(keys.privateKey).export({ type: "pkcs8", format: "pem" }) as string;
  return { certPem: `${cert.toString("pem")}\n`, keyPem };
}

function randomSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0]! & 0x7f) | 0x40;
  return bytes.toString("hex");
}
