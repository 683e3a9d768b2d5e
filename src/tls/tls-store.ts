// Where the gateway keeps its TLS state: the local CA, generated leaves, the ACME account key, issued ACME
// certificates and the per-order lock, and small shared secrets. `files` is the data directory of one
// machine (selfsigned.ts, acme-storage.ts); `redis` (redis-tls-store.ts) is shared by a fleet of gateways,
// with every private key sealed. Code above this interface does not know which one it talks to.
import type { StoredAcmeCertificate } from "./acme-storage.js";
import {
  loadOrCreateAccountKey,
  readStoredCertificate,
  withSiteOrderLock,
  writeStoredCertificate,
} from "./acme-storage.js";
import type { ChallengeChange } from "./acme-challenges.js";
import path from "node:path";
import { ensurePrivateDir, leafPaths, loadOrCreateCa, loadOrIssueLeaf, readIfExists, readReusableLeaf, withDataDirLock, type KeyPairPem, type LeafOptions, type LocalCa, type LockOptions } from "./selfsigned.js";
import { writeFileAtomically } from "../util/atomic-write.js";

export type TlsStoreKind = "files" | "redis";

/** What one gateway serves, as it reports it to the fleet (`cert status`). */
export interface ServedReport {
  gateway: string;
  at: string;
  certificates: { site: string; serial: string; notAfter: string }[];
}

/** The fleet side of a shared store: change notices, challenge answers, who serves what. */
export interface FleetChannel {
  /** Calls `onNotice` for every change another gateway announces (challenge keys opened); resolves once subscribed. */
  subscribe(onNotice: (notice: FleetNotice) => void, onAvailability: (up: boolean) => void): Promise<void>;
  /** Stores and announces a challenge change; resolves once every other gateway listening answers it (bounded wait). */
  publishChallenge(change: ChallengeChange): Promise<void>;
  /** The challenges pending now (a gateway that starts mid-order answers them too). */
  pendingChallenges(): Promise<ChallengeChange[]>;
  /** Confirms a challenge notice was applied here, so its publisher may let the CA validate. */
  acknowledge(ackId: string): Promise<void>;
  reportServed(report: ServedReport, ttlMs: number): Promise<void>;
  /** Connected now (a failure while connected is not an outage). */
  available(): boolean;
  servedReports(): Promise<ServedReport[]>;
}

export type FleetNotice =
  | { kind: "certificate"; site: string; from: string }
  | { kind: "challenge"; change: ChallengeChange; ackId: string; from: string };

export interface TlsStore {
  readonly kind: TlsStoreKind;
  /** Null for the files store: one machine has no fleet. */
  readonly fleet: FleetChannel | null;
  /** `certPath` is always a file on this machine (clients are pointed at it); the key may live elsewhere. */
  loadOrCreateCa(validityDays: number): Promise<LocalCa & { created: boolean }>;
  loadOrIssueLeaf(ca: LocalCa, site: string, names: string[], validityDays: number, options?: LeafOptions): Promise<KeyPairPem & { issued: boolean }>;
  /** The stored leaf if loadOrIssueLeaf would reuse it for these names, else null; never issues. */
  readReusableLeaf(ca: LocalCa, site: string, names: string[]): Promise<KeyPairPem | null>;
  /** The generated leaf's certificate as stored (no key), or null; plus where it is, for `cert status`. */
  readLeafCertificate(site: string): Promise<{ certPem: string | null; location: string }>;
  loadOrCreateAccountKey(directoryUrl: string): Promise<{ keyPem: string; created: boolean }>;
  readAcmeCertificate(site: string, now?: number): Promise<StoredAcmeCertificate | null>;
  /** Where the ACME certificate of `site` lives, for `cert status`. */
  acmeCertificateLocation(site: string): string;
  writeAcmeCertificate(site: string, pair: KeyPairPem, directory: string, storedAt: Date): Promise<void>;
  /**
   * Runs `work` holding the one order lock for `site` that every gateway sharing the store respects; its
   * signal fires if the lock is lost meanwhile (another gateway may then order), and `work` must stop.
   */
  withOrderLock<T>(site: string, lock: LockOptions, work: (signal: AbortSignal) => Promise<T>): Promise<T>;
  /**
   * A secret every gateway sharing the store agrees on (e.g. a signing key): the stored one, else `create()`'s,
   * stored once (a concurrent creator's value wins, both callers get it). Never logged.
   */
  loadOrCreateSharedSecret(name: string, create: () => Promise<string> | string): Promise<string>;
  close(): Promise<void>;
}

/** Today's behaviour: the data directory of this machine. */
export class FilesTlsStore implements TlsStore {
  readonly kind = "files";
  readonly fleet = null;

  constructor(readonly dataDir: string) {}

  loadOrCreateCa(validityDays: number) {
    return loadOrCreateCa(this.dataDir, validityDays);
  }

  loadOrIssueLeaf(ca: LocalCa, site: string, names: string[], validityDays: number, options?: LeafOptions) {
    return loadOrIssueLeaf(ca, this.dataDir, site, names, validityDays, options);
  }

  readReusableLeaf(ca: LocalCa, site: string, names: string[]) {
    return readReusableLeaf(leafPaths(this.dataDir, site), ca, names);
  }

  async readLeafCertificate(site: string) {
    const location = leafPaths(this.dataDir, site).certPath;
    return { certPem: await readIfExists(location), location };
  }

  loadOrCreateAccountKey(directoryUrl: string) {
    return loadOrCreateAccountKey(this.dataDir, directoryUrl);
  }

  readAcmeCertificate(site: string, now?: number) {
    return readStoredCertificate(this.dataDir, site, now);
  }

  acmeCertificateLocation(site: string): string {
    return path.join(this.dataDir, "acme", "certs", `${site}.crt`);
  }

  writeAcmeCertificate(site: string, pair: KeyPairPem, directory: string, storedAt: Date) {
    return writeStoredCertificate(this.dataDir, site, pair, directory, storedAt);
  }

  withOrderLock<T>(site: string, lock: LockOptions, work: (signal: AbortSignal) => Promise<T>) {
    return withSiteOrderLock(this.dataDir, site, lock, () => work(new AbortController().signal));
  }

  async loadOrCreateSharedSecret(name: string, create: () => Promise<string> | string): Promise<string> {
    const file = path.join(this.dataDir, "secrets", safeName(name));
    const existing = await readIfExists(file);
    if (existing !== null) return existing;
    return withDataDirLock(this.dataDir, async () => {
      const raced = await readIfExists(file);
      if (raced !== null) return raced;
      const value = await create();
      // 0600 in a 0700 directory: the same care as any private key.
      await ensurePrivateDir(path.dirname(file));
      await writeFileAtomically(file, value, 0o600);
      return value;
    });
  }

  async close(): Promise<void> {}
}

/** A secret's name as a file or key name: letters, digits, dot, dash and underscore only. */
export function safeName(name: string): string {
  if (!/^[A-Za-z0-9._-]{1,100}$/.test(name) || name.startsWith(".")) throw new Error(`shared secret name "${name}": use letters, digits, ".", "-" and "_"`);
  return name;
}
