// The TLS store shared by a fleet of gateways through Redis (keys under `<redis.keyPrefix>tls:`):
//   ca                     the local CA: {certPem, key} — key sealed (sealing.ts)
//   leaf:<site>            a generated leaf: {certPem, key}
//   acme:account:<host>    the ACME account key of one directory, sealed
//   acme:cert:<site>       an issued certificate: {certPem, key, directory, storedAt}
//   acme:lock:<site>       the one order in flight for the site (redis-lease-lock.ts)
//   lock:<what>            held while the CA, a leaf, an account key or a secret is first made
//   secret:<name>          a shared secret, sealed
//   challenges             hash: pending ACME challenge answers, for any gateway the CA reaches
//   served                 hash: gateway → what it serves, with an expiry (a heartbeat)
//   ack:<id>               set: gateways that applied a challenge notice
// Changes are announced on the channel `<redis.keyPrefix>tls:notices`. Private keys are never stored plain.
import { randomBytes } from "node:crypto";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import type { Cluster, Redis } from "ioredis";
import type { RedisConfig } from "../config/schema.js";
import type { ChallengeChange } from "./acme-challenges.js";
import { describeCertificate, type StoredAcmeCertificate } from "./acme-storage.js";
import { writeFileAtomically } from "../util/atomic-write.js";
import { defineLeaseCommands, withLeaseLock } from "./redis-lease-lock.js";
import type { Sealer } from "./sealing.js";
import {
  caPaths,
  createCa,
  isReusableLeaf,
  issueLeaf,
  keyPairProblem,
  readCa,
  readIfExists,
  type KeyPairPem,
  type LeafOptions,
  type LocalCa,
  type LockOptions,
} from "./selfsigned.js";
import { safeName, type FleetChannel, type FleetNotice, type ServedReport, type TlsStore } from "./tls-store.js";

export interface RedisTlsStoreOptions {
  redis: RedisConfig;
  sealer: Sealer;
  /** This machine's data directory: the CA certificate is mirrored there for clients, and an existing CA is adopted from it. */
  dataDir: string;
  /** This gateway's name in notices and served reports. */
  gateway: string;
  /** Overrides the order lock's lease (else the ACME manager's staleMs). */
  orderLeaseMs?: number;
  /** How long a challenge publisher waits for the other gateways to confirm. */
  challengeAckWaitMs?: number;
}

const CREATE_LOCK = { leaseMs: 30_000, waitMs: 60_000, pollMs: 50 };
const CHALLENGE_TTL_MS = 10 * 60_000;
const ACK_TTL_MS = 60_000;

interface SealedPair {
  certPem: string;
  key: string;
}

export class RedisTlsStore implements TlsStore, FleetChannel {
  readonly kind = "redis";
  readonly fleet: FleetChannel = this;
  readonly #client: Redis | Cluster;
  readonly #options: RedisTlsStoreOptions;
  readonly #channel: string;
  #subscriber: Redis | Cluster | null = null;
  /** The CA and sealed secrets last read or written: what is written back if Redis comes back empty. */
  #knownCa: KeyPairPem | null = null;
  readonly #knownSecrets = new Map<string, string>();

  constructor(client: Redis | Cluster, options: RedisTlsStoreOptions) {
    this.#client = client;
    this.#options = options;
    this.#channel = `${options.redis.keyPrefix}tls:notices`;
    defineLeaseCommands(client);
  }

  async loadOrCreateCa(validityDays: number): Promise<LocalCa & { created: boolean }> {
    const existing = await this.#readPair("ca", "ca");
    if (existing) return { ...(await this.#mirrorCa(existing)), created: false };
    return this.#creating("ca", async () => {
      const raced = await this.#readPair("ca", "ca");
      if (raced) return { ...(await this.#mirrorCa(raced)), created: false };
      // A Redis that came back empty (restarted without persistence) must not cost the fleet its CA: every
      // client trusts it. The CA this process already holds is written back. Otherwise a CA this machine
      // already made (before the fleet) is kept, for the same reason; a certificate without its key is only
      // this store's earlier mirror, not a CA to adopt.
      const paths = caPaths(this.#options.dataDir);
      const local = this.#knownCa ?? ((await readIfExists(paths.keyPath)) === null ? null : await readCa(paths));
      const pair = local ? { certPem: local.certPem, keyPem: local.keyPem } : await createCa(validityDays);
      await this.#writePair("ca", "ca", pair);
      return { ...(await this.#mirrorCa(pair)), created: !local };
    });
  }

  async loadOrIssueLeaf(ca: LocalCa, site: string, names: string[], validityDays: number, { force = false }: LeafOptions = {}) {
    const key = `leaf:${site}`;
    const reusable = async () => {
      const stored = await this.#readPair(key, key);
      return stored && isReusableLeaf(stored.certPem, stored.keyPem, ca, names) ? stored : null;
    };
    const existing = force ? null : await reusable();
    if (existing) return { ...existing, issued: false };
    return this.#creating(key, async () => {
      const raced = force ? null : await reusable();
      if (raced) return { ...raced, issued: false };
      const fresh = await issueLeaf(ca, names, validityDays);
      await this.#writePair(key, key, fresh);
      await this.#notify({ kind: "certificate", site, from: this.#options.gateway });
      return { ...fresh, issued: true };
    });
  }

  async readLeafCertificate(site: string) {
    const raw = await this.#client.get(`tls:leaf:${site}`);
    return { certPem: raw === null ? null : (JSON.parse(raw) as SealedPair).certPem, location: `redis ${this.#options.redis.keyPrefix}tls:leaf:${site}` };
  }

  async loadOrCreateAccountKey(directoryUrl: string): Promise<{ keyPem: string; created: boolean }> {
    const key = `acme:account:${new URL(directoryUrl).host}`;
    let created = false;
    const keyPem = await this.#loadOrCreateSealed(key, async () => {
      created = true;
      const acme = await import("acme-client");
      return (await acme.crypto.createPrivateEcdsaKey("P-256")).toString();
    });
    return { keyPem, created };
  }

  async readAcmeCertificate(site: string, now = Date.now()): Promise<StoredAcmeCertificate | null> {
    const raw = await this.#client.get(`tls:acme:cert:${site}`);
    if (raw === null) return null;
    const record = JSON.parse(raw) as SealedPair & { directory: string; storedAt: string };
    const pair = { certPem: record.certPem, keyPem: this.#options.sealer.open(record.key, `acme:cert:${site}`) };
    if (keyPairProblem(pair.certPem, pair.keyPem)) return null;
    const described = describeCertificate(pair, record.directory, new Date(record.storedAt));
    return described.notAfter.getTime() <= now ? null : described;
  }

  acmeCertificateLocation(site: string): string {
    return `redis ${this.#options.redis.keyPrefix}tls:acme:cert:${site}`;
  }

  async writeAcmeCertificate(site: string, pair: KeyPairPem, directory: string, storedAt: Date): Promise<void> {
    const key = `acme:cert:${site}`;
    const record = { certPem: pair.certPem, key: this.#options.sealer.seal(pair.keyPem, key), directory, storedAt: storedAt.toISOString() };
    await this.#client.set(`tls:${key}`, JSON.stringify(record));
    await this.#notify({ kind: "certificate", site, from: this.#options.gateway });
  }

  withOrderLock<T>(site: string, lock: LockOptions, work: () => Promise<T>): Promise<T> {
    const leaseMs = this.#options.orderLeaseMs ?? lock.staleMs;
    return withLeaseLock(this.#client, `tls:acme:lock:${site}`, { leaseMs, waitMs: lock.waitMs, pollMs: lock.pollMs ?? 250 }, work);
  }

  async loadOrCreateSharedSecret(name: string, create: () => Promise<string> | string): Promise<string> {
    return this.#loadOrCreateSealed(`secret:${safeName(name)}`, create);
  }

  // ---- fleet ----------------------------------------------------------------------------------------------

  async subscribe(onNotice: (notice: FleetNotice) => void, onAvailability: (up: boolean) => void): Promise<void> {
    this.#client.on("ready", () => onAvailability(true));
    this.#client.on("close", () => onAvailability(false));
    const subscriber = this.#client.duplicate();
    this.#subscriber = subscriber;
    subscriber.on("error", () => {}); // availability is reported from the main connection's events
    subscriber.on("message", (_channel: string, text: string) => {
      try {
        const notice = JSON.parse(text) as FleetNotice;
        if (notice.from === this.#options.gateway) return;
        onNotice(notice.kind === "challenge" ? { ...notice, change: this.#openChallenge(notice.change) } : notice);
      } catch {
        // Unreadable (another version's, or sealed with another key): the periodic check catches up.
      }
    });
    await waitReady(subscriber, 5000);
    await subscriber.subscribe(this.#channel);
  }

  async publishChallenge(change: ChallengeChange): Promise<void> {
    const field = change.kind === "http" ? `http:${change.token}` : `alpn:${change.host}`;
    const adding = change.kind === "http" ? change.keyAuthorization !== null : change.certPem !== null;
    if (adding) {
      const stored = change.kind === "alpn" ? { ...change, keyPem: this.#options.sealer.seal(change.keyPem!, `challenge:${field}`) } : change;
      await this.#client.hset("tls:challenges", field, JSON.stringify({ change: stored, expiresAt: Date.now() + CHALLENGE_TTL_MS }));
    } else {
      await this.#client.hdel("tls:challenges", field);
    }
    const ackId = randomBytes(8).toString("hex");
    // A stored ALPN key travels sealed in the notice too: Redis sees no private key, even in passing.
    const wire = change.kind === "alpn" && change.keyPem !== null ? { ...change, keyPem: this.#options.sealer.seal(change.keyPem, `challenge:${field}`) } : change;
    const listeners = await this.#client.publish(this.#channel, JSON.stringify({ kind: "challenge", change: wire, ackId, from: this.#options.gateway }));
    // Our own subscription, if any, hears it too.
    const others = Math.max(0, listeners - (this.#subscriber ? 1 : 0));
    if (!adding || others === 0) return;
    const deadline = Date.now() + (this.#options.challengeAckWaitMs ?? 5000);
    while (Date.now() < deadline && (await this.#client.scard(`tls:ack:${ackId}`)) < others) await new Promise((r) => setTimeout(r, 20));
  }

  async acknowledge(ackId: string): Promise<void> {
    await this.#client.multi().sadd(`tls:ack:${ackId}`, this.#options.gateway).pexpire(`tls:ack:${ackId}`, ACK_TTL_MS).exec();
  }

  /** Opens the sealed key of a challenge notice or record. */
  #openChallenge(change: ChallengeChange): ChallengeChange {
    if (change.kind !== "alpn" || change.keyPem === null) return change;
    return { ...change, keyPem: this.#options.sealer.open(change.keyPem, `challenge:alpn:${change.host}`) };
  }

  async pendingChallenges(): Promise<ChallengeChange[]> {
    const all = await this.#client.hgetall("tls:challenges");
    const now = Date.now();
    const pending: ChallengeChange[] = [];
    for (const [field, text] of Object.entries(all)) {
      const record = JSON.parse(text) as { change: ChallengeChange; expiresAt: number };
      if (record.expiresAt > now) pending.push(this.#openChallenge(record.change));
      else await this.#client.hdel("tls:challenges", field);
    }
    return pending;
  }

  async reportServed(report: ServedReport, ttlMs: number): Promise<void> {
    await this.#client.hset("tls:served", report.gateway, JSON.stringify({ ...report, expiresAt: Date.now() + ttlMs }));
  }

  available(): boolean {
    return this.#client.status === "ready";
  }

  async servedReports(): Promise<ServedReport[]> {
    const all = await this.#client.hgetall("tls:served");
    const now = Date.now();
    const reports: ServedReport[] = [];
    for (const [gateway, text] of Object.entries(all)) {
      const { expiresAt, ...report } = JSON.parse(text) as ServedReport & { expiresAt: number };
      if (expiresAt > now) reports.push(report);
      else await this.#client.hdel("tls:served", gateway);
    }
    return reports.sort((a, b) => a.gateway.localeCompare(b.gateway));
  }

  async close(): Promise<void> {
    this.#subscriber?.disconnect();
    this.#client.disconnect();
  }

  // ---- records --------------------------------------------------------------------------------------------

  async #readPair(key: string, purpose: string): Promise<KeyPairPem | null> {
    const raw = await this.#client.get(`tls:${key}`);
    if (raw === null) return null;
    const record = JSON.parse(raw) as SealedPair;
    return { certPem: record.certPem, keyPem: this.#options.sealer.open(record.key, purpose) };
  }

  async #writePair(key: string, purpose: string, pair: KeyPairPem): Promise<void> {
    const record: SealedPair = { certPem: pair.certPem, key: this.#options.sealer.seal(pair.keyPem, purpose) };
    await this.#client.set(`tls:${key}`, JSON.stringify(record));
  }

  async #loadOrCreateSealed(key: string, create: () => Promise<string> | string): Promise<string> {
    const read = async () => {
      const raw = await this.#client.get(`tls:${key}`);
      const value = raw === null ? null : this.#options.sealer.open(raw, key);
      if (value !== null) this.#knownSecrets.set(key, value);
      return value;
    };
    const existing = await read();
    if (existing !== null) return existing;
    return this.#creating(key, async () => {
      const raced = await read();
      if (raced !== null) return raced;
      // Written back from memory when Redis lost it (as the CA is): the account, token signing and session
      // keys the fleet already uses stay the same.
      const value = this.#knownSecrets.get(key) ?? (await create());
      await this.#client.set(`tls:${key}`, this.#options.sealer.seal(value, key));
      this.#knownSecrets.set(key, value);
      return value;
    });
  }

  #creating<T>(what: string, work: () => Promise<T>): Promise<T> {
    return withLeaseLock(this.#client, `tls:lock:${what}`, CREATE_LOCK, work);
  }

  async #notify(notice: FleetNotice): Promise<void> {
    await this.#client.publish(this.#channel, JSON.stringify(notice));
  }

  /** The CA certificate (never its key) as a file on this machine: what clients are told to trust. */
  async #mirrorCa(pair: KeyPairPem): Promise<LocalCa> {
    this.#knownCa = pair;
    const { certPath } = caPaths(this.#options.dataDir);
    if ((await readIfExists(certPath)) !== pair.certPem) {
      await mkdir(path.dirname(certPath), { recursive: true, mode: 0o700 });
      await writeFileAtomically(certPath, pair.certPem, 0o644);
    }
    return { ...pair, certPath, keyPath: `redis ${this.#options.redis.keyPrefix}tls:ca` };
  }
}

/** Resolves once `client` is connected; throws after `timeoutMs`. */
export function waitReady(client: Redis | Cluster, timeoutMs: number): Promise<void> {
  if (client.status === "ready") return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      client.off("ready", onReady);
      reject(new Error(`Redis did not answer within ${timeoutMs} ms`));
    }, timeoutMs);
    const onReady = () => {
      clearTimeout(timer);
      resolve();
    };
    client.once("ready", onReady);
  });
}
