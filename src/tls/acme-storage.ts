// ACME state in the data directory, shared by every gateway process that uses it:
//   acme/<directory host>/account.key   one account per ACME server
//   acme/certs/<site>.crt|.key          the certificate chain (leaf first) and its key
//   acme/certs/<site>.json              which directory issued it, so a staging certificate is never
//                                       taken for a production one after the directory changes
//   acme/certs/<site>.lock/             held while a process orders for the site
// Files are written atomically (util/atomic-write.ts): key, then certificate, then metadata.
import { X509Certificate, createPrivateKey } from "node:crypto";
import path from "node:path";
import {
  ensurePrivateDir,
  keyPairProblem,
  readIfExists,
  subjectAltNames,
  withDataDirLock,
  withLockDirectory,
  writeKeyPair,
  type KeyPairPem,
  type LockOptions,
} from "./selfsigned.js";
import { writeFileAtomically } from "../util/atomic-write.js";

const PRIVATE_FILE = 0o600;

export interface AcmeCertificatePaths {
  certPath: string;
  keyPath: string;
  metaPath: string;
  lockDir: string;
}

export function acmeCertificatePaths(dataDir: string, site: string): AcmeCertificatePaths {
  const dir = path.join(dataDir, "acme", "certs");
  return {
    certPath: path.join(dir, `${site}.crt`),
    keyPath: path.join(dir, `${site}.key`),
    metaPath: path.join(dir, `${site}.json`),
    lockDir: path.join(dir, `${site}.lock`),
  };
}

/** Runs `work` holding the site's order lock, shared by every process using the data directory. */
export async function withSiteOrderLock<T>(dataDir: string, site: string, options: LockOptions, work: () => Promise<T>): Promise<T> {
  const { lockDir } = acmeCertificatePaths(dataDir, site);
  await ensurePrivateDir(path.dirname(lockDir));
  return withLockDirectory(lockDir, options, work);
}

/** `127.0.0.1:14000` becomes `127.0.0.1_14000`: a colon is not a portable file name character. */
export function accountKeyPath(dataDir: string, directoryUrl: string): string {
  return path.join(dataDir, "acme", new URL(directoryUrl).host.replace(/:/g, "_"), "account.key");
}

export async function loadOrCreateAccountKey(dataDir: string, directoryUrl: string): Promise<{ keyPem: string; created: boolean }> {
  const file = accountKeyPath(dataDir, directoryUrl);
  const existing = await readAccountKey(file);
  if (existing) return { keyPem: existing, created: false };
  return withDataDirLock(dataDir, async () => {
    // Another process may have created it while we waited: two keys would mean two accounts.
    const raced = await readAccountKey(file);
    if (raced) return { keyPem: raced, created: false };
    const acme = await import("acme-client");
    const keyPem = (await acme.crypto.createPrivateEcdsaKey("P-256")).toString();
    await ensurePrivateDir(path.dirname(file));
    await writeFileAtomically(file, keyPem, PRIVATE_FILE);
    return { keyPem, created: true };
  });
}

async function readAccountKey(file: string): Promise<string | null> {
  const keyPem = await readIfExists(file);
  if (keyPem === null) return null;
  try {
    createPrivateKey(keyPem);
  } catch (error) {
    // Replacing it would silently lose the account (and its rate-limit history): a human decides.
    throw new Error(`ACME account key ${file} is not a readable private key: ${(error as Error).message}`);
  }
  return keyPem;
}

export interface StoredAcmeCertificate extends KeyPairPem {
  serial: string;
  notBefore: Date;
  notAfter: Date;
  /** DNS names of the leaf. */
  names: string[];
  /** The directory that issued it, or null when the metadata is missing. */
  directory: string | null;
  /** When it was written to the data directory, or null when the metadata is missing. */
  storedAt: Date | null;
}

/** The stored certificate if it is readable, matches its key and has not expired; null otherwise. */
export async function readStoredCertificate(dataDir: string, site: string, now = Date.now()): Promise<StoredAcmeCertificate | null> {
  const paths = acmeCertificatePaths(dataDir, site);
  const certPem = await readIfExists(paths.certPath);
  const keyPem = await readIfExists(paths.keyPath);
  if (certPem === null || keyPem === null || keyPairProblem(certPem, keyPem)) return null;
  const leaf = new X509Certificate(certPem);
  const notAfter = new Date(leaf.validTo);
  if (notAfter.getTime() <= now) return null;
  return {
    certPem,
    keyPem,
    serial: leaf.serialNumber,
    notBefore: new Date(leaf.validFrom),
    notAfter,
    names: subjectAltNames(leaf),
    ...(await readMetadata(paths.metaPath)),
  };
}

async function readMetadata(metaPath: string): Promise<{ directory: string | null; storedAt: Date | null }> {
  try {
    const meta = JSON.parse((await readIfExists(metaPath)) ?? "null") as { directory?: unknown; storedAt?: unknown } | null;
    const storedAt = typeof meta?.storedAt === "string" ? new Date(meta.storedAt) : null;
    return {
      directory: typeof meta?.directory === "string" ? meta.directory : null,
      storedAt: storedAt && !Number.isNaN(storedAt.getTime()) ? storedAt : null,
    };
  } catch {
    return { directory: null, storedAt: null };
  }
}

export async function writeStoredCertificate(dataDir: string, site: string, pair: KeyPairPem, directory: string, storedAt: Date): Promise<void> {
  const paths = acmeCertificatePaths(dataDir, site);
  await writeKeyPair(paths, pair);
  // Last: a reader that sees the new certificate with the old metadata only orders once too often.
  await writeFileAtomically(paths.metaPath, `${JSON.stringify({ directory, storedAt: storedAt.toISOString() })}\n`, PRIVATE_FILE);
}

/** True when the stored certificate was issued by `directory` for exactly `hosts`. */
export function fitsSite(stored: StoredAcmeCertificate, hosts: readonly string[], directory: string): boolean {
  const wanted = new Set(hosts.map((host) => host.toLowerCase()));
  return stored.directory === directory && stored.names.length === wanted.size && stored.names.every((name) => wanted.has(name));
}

// Never renew a certificate sooner than this after it was stored, whatever renewBefore and a backdated
// notBefore say: a certificate due on arrival would otherwise be re-ordered in a loop, by every process.
const MIN_RENEWAL_INTERVAL_MS = 3_600_000;

/** renewalTime, but never within min(a third of the lifetime, an hour) of the certificate being stored. */
export function certificateDueAt(stored: Pick<StoredAcmeCertificate, "notBefore" | "notAfter" | "storedAt">, renewBeforeMs?: number): Date {
  const due = renewalTime(stored.notBefore, stored.notAfter, renewBeforeMs).getTime();
  if (!stored.storedAt) return new Date(due);
  const lifetime = stored.notAfter.getTime() - stored.notBefore.getTime();
  return new Date(Math.max(due, stored.storedAt.getTime() + Math.min(lifetime / 3, MIN_RENEWAL_INTERVAL_MS)));
}

/**
 * When a certificate is due: `renewBeforeMs` before expiry, or once two thirds of its lifetime have
 * passed. A renewBefore at least as long as the lifetime would make every new certificate due at once
 * (an order loop against the CA's rate limits), so then the two-thirds rule applies.
 */
export function renewalTime(notBefore: Date, notAfter: Date, renewBeforeMs?: number): Date {
  const lifetime = notAfter.getTime() - notBefore.getTime();
  const twoThirds = notBefore.getTime() + (lifetime * 2) / 3;
  if (renewBeforeMs === undefined || renewBeforeMs >= lifetime) return new Date(twoThirds);
  return new Date(notAfter.getTime() - renewBeforeMs);
}

/** The facts of a certificate read from its PEM, with where it came from. */
export function describeCertificate(pair: KeyPairPem, directory: string, storedAt: Date): StoredAcmeCertificate {
  const leaf = new X509Certificate(pair.certPem);
  return {
    ...pair,
    serial: leaf.serialNumber,
    notBefore: new Date(leaf.validFrom),
    notAfter: new Date(leaf.validTo),
    names: subjectAltNames(leaf),
    directory,
    storedAt,
  };
}
