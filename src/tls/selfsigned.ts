// A local certificate authority kept in the data directory, and the leaf certificates it signs for
// sites with `tls.source: generated`. Clients trust the CA once (`cert ca` prints it); leaves can then be
// reissued freely (new hosts, expiry) without touching the clients.
//
// Several gateway processes may share one data directory (workers, or gateways on shared storage): every
// write happens under a lock directory, each file is written to a temporary name and renamed, and a key is
// always renamed into place before its certificate, so a reader that finds a certificate also finds its
// key. A reader that still catches a new key next to an old certificate sees them mismatch and takes the
// locked path.
import type * as x509 from "@peculiar/x509";
import { KeyObject, X509Certificate as NodeX509Certificate, createPrivateKey, randomBytes, webcrypto } from "node:crypto";
import { mkdir, readFile, rm, stat, chmod, utimes } from "node:fs/promises";
import { createRequire } from "node:module";
import { isIP } from "node:net";
import path from "node:path";
import { writeFileAtomically } from "../util/atomic-write.js";

const require = createRequire(import.meta.url);
let peculiar: typeof x509 | null = null;

/**
 * @peculiar/x509 (with reflect-metadata, asn1js, tsyringe…), loaded on first use: only making a certificate
 * needs it, which a gateway does once per data directory. Reading certificates uses node:crypto, so a process
 * serving certificates that exist (every cluster worker) never loads it: about 10 MB of RSS less.
 */
export function peculiarX509(): typeof x509 {
  if (!peculiar) {
    // Its CommonJS build is what `import` resolves to as well (the package has no ESM entry for Node).
    require("reflect-metadata");
    peculiar = require("@peculiar/x509") as typeof x509;
    peculiar.cryptoProvider.set(webcrypto);
  }
  return peculiar;
}

export interface KeyPairPem {
  certPem: string;
  keyPem: string;
}

export interface LocalCa extends KeyPairPem {
  certPath: string;
  keyPath: string;
}

const KEY_ALGORITHM: webcrypto.EcKeyGenParams = { name: "ECDSA", namedCurve: "P-256" };
const SIGNING_ALGORITHM: webcrypto.EcdsaParams = { name: "ECDSA", hash: "SHA-256" };
const DAY_MS = 86_400_000;
// Tolerates clients whose clocks run a little behind ours.
const BACKDATE_MS = 3_600_000;
const PRIVATE_FILE = 0o600;
const PUBLIC_FILE = 0o644;
const PRIVATE_DIR = 0o700;
// X.520 upper bound for commonName; longer host names live only in the SAN.
const MAX_COMMON_NAME = 64;

export function caPaths(dataDir: string): { certPath: string; keyPath: string } {
  return { certPath: path.join(dataDir, "ca", "ca.crt"), keyPath: path.join(dataDir, "ca", "ca.key") };
}

export function leafPaths(dataDir: string, siteName: string): { certPath: string; keyPath: string } {
  return { certPath: path.join(dataDir, "certs", `${siteName}.crt`), keyPath: path.join(dataDir, "certs", `${siteName}.key`) };
}

/** The CA certificate to hand to clients, or null before the first `serve` created one. */
export async function readCaPem(dataDir: string): Promise<string | null> {
  return readIfExists(caPaths(dataDir).certPath);
}

export async function loadOrCreateCa(dataDir: string, validityDays: number): Promise<LocalCa & { created: boolean }> {
  const paths = caPaths(dataDir);
  const existing = await readCa(paths);
  if (existing) return { ...existing, created: false };
  return withDataDirLock(dataDir, async () => {
    // Another process may have created it while we waited for the lock.
    const raced = await readCa(paths);
    if (raced) return { ...raced, created: false };
    const fresh = await createCa(validityDays);
    await writeKeyPair(paths, fresh);
    return { ...fresh, ...paths, created: true };
  });
}

export async function readCa(paths: { certPath: string; keyPath: string }): Promise<LocalCa | null> {
  const certPem = await readIfExists(paths.certPath);
  if (certPem === null) return null;
  const keyPem = await readIfExists(paths.keyPath);
  // Never replace a CA that clients may already trust: a half-present CA needs a human.
  if (keyPem === null) throw new Error(`CA certificate ${paths.certPath} exists but its key ${paths.keyPath} is missing`);
  const mismatch = keyPairProblem(certPem, keyPem);
  if (mismatch) throw new Error(`CA certificate ${paths.certPath} and key ${paths.keyPath}: ${mismatch}`);
  return { certPem, keyPem, ...paths };
}

export async function createCa(validityDays: number): Promise<KeyPairPem> {
  const x509 = peculiarX509();
  const keys = await generateKeys();
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    // The suffix keeps two installs apart in trust stores, which index CAs by subject.
    name: [{ CN: [`registry-gateway local CA ${randomBytes(4).toString("hex")}`] }, { O: ["registry-gateway"] }],
    notBefore: new Date(now - BACKDATE_MS),
    notAfter: new Date(now + validityDays * DAY_MS),
    keys,
    signingAlgorithm: SIGNING_ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certPem: certificatePem(cert), keyPem: exportPrivateKeyPem(keys.privateKey) };
}

export async function issueLeaf(ca: LocalCa, names: string[], validityDays: number): Promise<KeyPairPem> {
  const sanNames = canonicalNames(names);
  const [firstName] = sanNames;
  if (firstName === undefined) throw new Error("a leaf certificate needs at least one host name or IP address");
  const x509 = peculiarX509();
  const caCert = new x509.X509Certificate(ca.certPem);
  const keys = await generateKeys();
  const now = Date.now();
  // A leaf that outlives its CA would only fail verification later, with a more confusing error.
  const notAfter = new Date(Math.min(now + validityDays * DAY_MS, caCert.notAfter.getTime()));
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: firstName.length <= MAX_COMMON_NAME ? [{ CN: [firstName] }] : [{ O: ["registry-gateway"] }],
    // The raw issuer name, so it matches the CA subject byte for byte (Go's chain builder compares bytes).
    issuer: caCert.subjectName,
    notBefore: new Date(now - BACKDATE_MS),
    notAfter,
    publicKey: keys.publicKey,
    signingKey: await importSigningKey(ca.keyPem),
    signingAlgorithm: SIGNING_ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension(sanNames.map(toGeneralName)),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      authorityKeyIdentifier(caCert),
    ],
  });
  return { certPem: certificatePem(cert), keyPem: exportPrivateKeyPem(keys.privateKey) };
}

export interface LeafOptions {
  /** Issue a new leaf even if the stored one is still good (`cert rotate`). */
  force?: boolean;
}

export async function loadOrIssueLeaf(
  ca: LocalCa,
  dataDir: string,
  siteName: string,
  names: string[],
  validityDays: number,
  { force = false }: LeafOptions = {},
): Promise<KeyPairPem & { issued: boolean }> {
  const paths = leafPaths(dataDir, siteName);
  const existing = force ? null : await readReusableLeaf(paths, ca, names);
  if (existing) return { ...existing, issued: false };
  return withDataDirLock(dataDir, async () => {
    const raced = force ? null : await readReusableLeaf(paths, ca, names);
    if (raced) return { ...raced, issued: false };
    const fresh = await issueLeaf(ca, names, validityDays);
    await writeKeyPair(paths, fresh);
    return { ...fresh, issued: true };
  });
}

export async function readReusableLeaf(
  paths: { certPath: string; keyPath: string },
  ca: LocalCa,
  names: string[],
): Promise<KeyPairPem | null> {
  const certPem = await readIfExists(paths.certPath);
  const keyPem = await readIfExists(paths.keyPath);
  if (certPem === null || keyPem === null) return null;
  return isReusableLeaf(certPem, keyPem, ca, names) ? { certPem, keyPem } : null;
}

/** A stored leaf is reused only if nothing about it would make a client (or the next reload) reject it. */
export function isReusableLeaf(certPem: string, keyPem: string, ca: KeyPairPem, names: string[]): boolean {
  try {
    const leaf = new NodeX509Certificate(certPem);
    const caCert = new NodeX509Certificate(ca.certPem);
    return (
      sameNameSet(subjectAltNames(leaf), canonicalNames(names)) &&
      leaf.checkIssued(caCert) &&
      leaf.verify(caCert.publicKey) &&
      leaf.checkPrivateKey(createPrivateKey(keyPem)) &&
      hasMoreThanAThirdLeft(new Date(leaf.validFrom), new Date(leaf.validTo), new Date())
    );
  } catch {
    // Unreadable or corrupt files are simply replaced.
    return false;
  }
}

function hasMoreThanAThirdLeft(notBefore: Date, notAfter: Date, now: Date): boolean {
  const lifetime = notAfter.getTime() - notBefore.getTime();
  return notAfter.getTime() - now.getTime() > lifetime / 3;
}

/**
 * DNS names and IP addresses from a certificate's SAN, in the form canonicalNames produces; other kinds of
 * name as `type:value` (@peculiar/x509's type names: email, url, …).
 */
export function subjectAltNames(cert: NodeX509Certificate): string[] {
  const text = cert.subjectAltName;
  if (text === undefined) return [];
  // Node lists the names as `DNS:a, IP Address:b`, quoting (JSON) any name with a comma, quote or other
  // unusual character. Without a quote every ", " separates two names: only DNS and IP entries are read
  // here, anything else is read by @peculiar/x509.
  if (!text.includes('"')) {
    const names: string[] = [];
    for (const entry of text.split(", ")) {
      if (entry.startsWith("DNS:")) names.push(canonicalName(entry.slice(4)));
      else if (entry.startsWith("IP Address:") && isIP(entry.slice(11))) names.push(canonicalName(entry.slice(11)));
      else return peculiarSubjectAltNames(cert);
    }
    return names;
  }
  return peculiarSubjectAltNames(cert);
}

function peculiarSubjectAltNames(cert: NodeX509Certificate): string[] {
  const x509 = peculiarX509();
  const san = new x509.X509Certificate(cert.raw).getExtension(x509.SubjectAlternativeNameExtension);
  if (!san) return [];
  return san.names.items.map((name) =>
    name.type === "dns" || name.type === "ip" ? canonicalName(name.value) : `${name.type}:${name.value}`,
  );
}

/** Lower-cased DNS names and compressed IP literals, duplicates removed, order kept. */
function canonicalNames(names: string[]): string[] {
  return [...new Set(names.map(canonicalName))];
}

function canonicalName(name: string): string {
  const trimmed = name.trim().toLowerCase().replace(/\.$/, "");
  if (isIP(trimmed) === 6) {
    // URL parsing compresses IPv6 and rewrites embedded IPv4 tails, which the SAN encoder cannot parse.
    return new URL(`http://[${trimmed}]/`).hostname.slice(1, -1);
  }
  return trimmed;
}

function sameNameSet(a: string[], b: string[]): boolean {
  const left = new Set(a);
  const right = new Set(b);
  return left.size === right.size && [...left].every((name) => right.has(name));
}

function toGeneralName(name: string): x509.JsonGeneralName {
  return { type: isIP(name) ? "ip" : "dns", value: name };
}

function authorityKeyIdentifier(caCert: x509.X509Certificate): x509.AuthorityKeyIdentifierExtension {
  const x509 = peculiarX509();
  const ski = caCert.getExtension(x509.SubjectKeyIdentifierExtension);
  if (!ski) throw new Error("the local CA certificate has no subject key identifier");
  return new x509.AuthorityKeyIdentifierExtension(ski.keyId);
}

/** 16 random bytes, top bit clear so the DER INTEGER stays positive, next bit set so it keeps 16 bytes. */
function randomSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0]! & 0x7f) | 0x40;
  return bytes.toString("hex");
}

/** With a final newline, so files can be concatenated into chains and bundles (`cat leaf.crt ca.crt`). */
function certificatePem(cert: x509.X509Certificate): string {
  return `${cert.toString("pem")}\n`;
}

async function generateKeys(): Promise<webcrypto.CryptoKeyPair> {
  return webcrypto.subtle.generateKey(KEY_ALGORITHM, true, ["sign", "verify"]);
}

function exportPrivateKeyPem(key: webcrypto.CryptoKey): string {
  return KeyObject.from(key).export({ type: "pkcs8", format: "pem" }) as string;
}

async function importSigningKey(keyPem: string): Promise<webcrypto.CryptoKey> {
  const der = createPrivateKey(keyPem).export({ type: "pkcs8", format: "der" });
  return webcrypto.subtle.importKey("pkcs8", der, KEY_ALGORITHM, false, ["sign"]);
}

/** Why a certificate and key do not belong together, or null when they do. */
export function keyPairProblem(certPem: string, keyPem: string): string | null {
  let cert: NodeX509Certificate;
  try {
    cert = new NodeX509Certificate(certPem);
  } catch (error) {
    return `the certificate is not a readable PEM certificate (${errorMessage(error)})`;
  }
  try {
    return cert.checkPrivateKey(createPrivateKey(keyPem)) ? null : "the private key does not match the certificate";
  } catch (error) {
    return `the key is not a readable PEM private key (${errorMessage(error)})`;
  }
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

// ---- files -------------------------------------------------------------------------------------------

export async function readIfExists(file: string): Promise<string | null> {
  try {
    return await readFile(file, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw error;
  }
}

/** Key first (0600), then certificate (0644), each atomically; also used for the token signing key. */
export async function writeKeyPair(paths: { certPath: string; keyPath: string }, pair: KeyPairPem): Promise<void> {
  await ensurePrivateDir(path.dirname(paths.certPath));
  await writeFileAtomically(paths.keyPath, pair.keyPem, PRIVATE_FILE);
  await writeFileAtomically(paths.certPath, pair.certPem, PUBLIC_FILE);
}

export async function ensurePrivateDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: PRIVATE_DIR });
  // mkdir's mode is filtered by the umask and ignored for a directory that already exists.
  await chmod(dir, PRIVATE_DIR);
}

const LOCK_STALE_MS = 60_000;
const LOCK_WAIT_MS = 30_000;

export interface LockOptions {
  /** A lock whose heartbeat is older than this was left by a crashed process and is broken. */
  staleMs: number;
  /** Give up waiting after this long. */
  waitMs: number;
  /** Pause between attempts while another process holds the lock (jittered up to 2.5×). */
  pollMs?: number;
}

/**
 * Runs `work` while holding `${dataDir}/.tls.lock`, shared by every process using this data directory.
 * A lock left by a crashed process is broken once it is older than any certificate write could take.
 */
export async function withDataDirLock<T>(dataDir: string, work: () => Promise<T>): Promise<T> {
  await ensurePrivateDir(dataDir);
  return withLockDirectory(path.join(dataDir, ".tls.lock"), { staleMs: LOCK_STALE_MS, waitMs: LOCK_WAIT_MS }, work);
}

/**
 * Runs `work` while holding the lock directory `lockDir` (its parent must exist). mkdir is atomic on local
 * and network file systems alike, which is why a lock is a directory. The holder refreshes the lock's
 * mtime while it works, so slow work (an ACME order takes seconds to minutes) is never mistaken for a
 * crashed holder, while a lock left by a crash still goes stale after `staleMs`.
 */
export async function withLockDirectory<T>(lockDir: string, options: LockOptions, work: () => Promise<T>): Promise<T> {
  await acquireLock(lockDir, options);
  const heartbeat = setInterval(() => {
    const now = new Date();
    utimes(lockDir, now, now).catch(() => {});
  }, Math.max(1000, options.staleMs / 4));
  heartbeat.unref();
  try {
    return await work();
  } finally {
    clearInterval(heartbeat);
    await rm(lockDir, { recursive: true, force: true });
  }
}

async function acquireLock(lockDir: string, { staleMs, waitMs, pollMs = 20 }: LockOptions): Promise<void> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    try {
      await mkdir(lockDir, { mode: PRIVATE_DIR });
      return;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    }
    if (await isStaleLock(lockDir, staleMs)) {
      await rm(lockDir, { recursive: true, force: true });
      continue;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${waitMs} ms waiting for lock ${lockDir}`);
    await new Promise((resolve) => setTimeout(resolve, pollMs * (1 + Math.random() * 1.5)));
  }
}

async function isStaleLock(lockDir: string, staleMs: number): Promise<boolean> {
  try {
    return Date.now() - (await stat(lockDir)).mtimeMs > staleMs;
  } catch {
    return false; // released between our mkdir and stat: just retry
  }
}
