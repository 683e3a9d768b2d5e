// The TLS store shared by a fleet of gateways through Redis (keys under `<redis.keyPrefix>tls:`):
//   ca                     the local CA: {certPem, key} — key sealed (sealing.ts), bound to the certificate
//   leaf:<site>            a generated leaf: {certPem, key}
//   acme:account:<host>    the ACME account key of one directory, sealed
//   acme:cert:<site>       an issued certificate: {certPem, key, directory, storedAt}
//   acme:lock:<site>       the one order in flight for the site (redis-lease-lock.ts)
//   lock:<what>            held while the CA, a leaf, an account key or a secret is first made
//   secret:<name>          a shared secret, sealed
//   challenges             hash: pending ACME challenge answers, for any gateway the CA reaches; each sealed
//   served                 hash: gateway → what it serves, with an expiry (a heartbeat)
//   ack:<id>               set: gateways that applied a challenge notice
// Changes are announced on the channel `<redis.keyPrefix>tls:notices`. Private keys are never stored plain.
// Whoever can write to Redis must not choose what a gateway serves: a sealed key opens only beside the
// certificate it was sealed with, and a challenge answer (the key authorization, or the TLS-ALPN certificate
// and key) is sealed whole, record and notice alike, so a forged one is refused rather than answered (a
// forged answer would get a publicly trusted certificate for the sites' hostnames).
import { randomBytes } from "node:crypto";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import type { Cluster, Redis } from "ioredis";
import type { RedisConfig } from "../config/schema.js";
import type { ChallengeChange } from "./acme-challenges.js";
import { describeCertificate, type StoredAcmeCertificate } from "./acme-storage.js";
import { writeFileAtomically } from "../util/atomic-write.js";
import { defineLeaseCommands, withLeaseLock } from "./redis-lease-lock.js";
import { certificateBinding, type Sealer } from "./sealing.js";
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
  /** Where a refused record is reported (once per distinct message); a process warning if not given. */
  warn?: (message: string) => void;
}

const CREATE_LOCK = { leaseMs: 30_000, waitMs: 60_000, pollMs: 50 };
const CHALLENGE_TTL_MS = 10 * 60_000;
const ACK_TTL_MS = 60_000;
/** Far more than the orders of every site at once need: a flood written to Redis is not all answered. */
const MAX_PENDING_CHALLENGES = 100;

interface SealedPair {
  certPem: string;
  key: string;
}

/** A challenge change as it is sealed: the expiry is inside, so an old record or notice stops being answered. */
interface ChallengeRecord {
  change: ChallengeChange;
  expiresAt: number;
}

/** A challenge notice on the channel: `sealed` is a ChallengeRecord sealed for `field`. */
interface ChallengeWire {
  kind: "challenge";
  field: string;
  sealed: string;
  ackId: string;
  from: string;
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
  readonly #warned = new Set<string>();

  constructor(client: Redis | Cluster, options: RedisTlsStoreOptions) {
    this.#client = client;
    this.#options = options;
    this.#channel = `${options.redis.keyPrefix}tls:notices`;
    defineLeaseCommands(client);
  }

  async loadOrCreateCa(validityDays: number): Promise<LocalCa & { created: boolean }> {
    const existing = await this.#readCa();
    if (existing) return { ...(await this.#mirrorCa(existing)), created: false };
    return this.#creating("ca", async () => {
      const raced = await this.#readCa();
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

  async readReusableLeaf(ca: LocalCa, site: string, names: string[]) {
    const key = `leaf:${site}`;
    const stored = await this.#readPair(key, key);
    return stored && isReusableLeaf(stored.certPem, stored.keyPem, ca, names) ? stored : null;
  }

  async loadOrIssueLeaf(ca: LocalCa, site: string, names: string[], validityDays: number, { force = false }: LeafOptions = {}) {
    const key = `leaf:${site}`;
    const reusable = () => this.readReusableLeaf(ca, site, names);
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
    const binding = acmeCertificateBinding(record.certPem, record.directory, record.storedAt);
    const pair = { certPem: record.certPem, keyPem: this.#options.sealer.open(record.key, `acme:cert:${site}`, binding) };
    if (keyPairProblem(pair.certPem, pair.keyPem)) return null;
    const described = describeCertificate(pair, record.directory, new Date(record.storedAt));
    return described.notAfter.getTime() <= now ? null : described;
  }

  acmeCertificateLocation(site: string): string {
    return `redis ${this.#options.redis.keyPrefix}tls:acme:cert:${site}`;
  }

  async writeAcmeCertificate(site: string, pair: KeyPairPem, directory: string, storedAt: Date): Promise<void> {
    const key = `acme:cert:${site}`;
    const at = storedAt.toISOString();
    const record = { certPem: pair.certPem, key: this.#options.sealer.seal(pair.keyPem, key, acmeCertificateBinding(pair.certPem, directory, at)), directory, storedAt: at };
    await this.#client.set(`tls:${key}`, JSON.stringify(record));
    await this.#notify({ kind: "certificate", site, from: this.#options.gateway });
  }

  withOrderLock<T>(site: string, lock: LockOptions, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
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
      let notice: Extract<FleetNotice, { kind: "certificate" }> | ChallengeWire;
      try {
        notice = JSON.parse(text) as typeof notice;
      } catch {
        return; // Unreadable (another version's): the periodic check catches up.
      }
      if (notice.from === this.#options.gateway) return;
      if (notice.kind !== "challenge") return onNotice(notice);
      const record = this.#openChallenge(String(notice.field), String(notice.sealed), "notice");
      if (record && record.expiresAt > Date.now()) onNotice({ kind: "challenge", change: record.change, ackId: String(notice.ackId), from: String(notice.from) });
    });
    await waitReady(subscriber, 5000);
    await subscriber.subscribe(this.#channel);
  }

  async publishChallenge(change: ChallengeChange): Promise<void> {
    const field = challengeField(change);
    const adding = change.kind === "http" ? change.keyAuthorization !== null : change.certPem !== null;
    // Sealed whole, in the hash and on the channel alike: Redis sees no private key, even in passing, and
    // no gateway answers a challenge this fleet's key did not seal.
    const record: ChallengeRecord = { change, expiresAt: Date.now() + CHALLENGE_TTL_MS };
    const sealed = this.#options.sealer.seal(JSON.stringify(record), `challenge:${field}`);
    if (adding) await this.#client.hset("tls:challenges", field, sealed);
    else await this.#client.hdel("tls:challenges", field);
    const ackId = randomBytes(8).toString("hex");
    const wire: ChallengeWire = { kind: "challenge", field, sealed, ackId, from: this.#options.gateway };
    const listeners = await this.#client.publish(this.#channel, JSON.stringify(wire));
    // Our own subscription, if any, hears it too.
    const others = Math.max(0, listeners - (this.#subscriber ? 1 : 0));
    if (!adding || others === 0) return;
    const deadline = Date.now() + (this.#options.challengeAckWaitMs ?? 5000);
    while (Date.now() < deadline && (await this.#client.scard(`tls:ack:${ackId}`)) < others) await new Promise((r) => setTimeout(r, 20));
  }

  async acknowledge(ackId: string): Promise<void> {
    await this.#client.multi().sadd(`tls:ack:${ackId}`, this.#options.gateway).pexpire(`tls:ack:${ackId}`, ACK_TTL_MS).exec();
  }

  /**
   * A sealed challenge record or notice, or null (logged) when it does not open with this fleet's key or
   * names another field than it is stored under: such a record is not answered.
   */
  #openChallenge(field: string, sealed: string, what: "record" | "notice"): ChallengeRecord | null {
    try {
      const record = JSON.parse(this.#options.sealer.open(sealed, `challenge:${field}`)) as ChallengeRecord;
      if (challengeField(record.change) !== field) throw new Error(`challenge:${field}: the sealed challenge is for ${challengeField(record.change)}`);
      return record;
    } catch (error) {
      this.#warn(`an ACME challenge ${what} in the shared TLS store was refused, not answered: ${(error as Error).message}`);
      return null;
    }
  }

  async pendingChallenges(): Promise<ChallengeChange[]> {
    const all = await this.#client.hgetall("tls:challenges");
    const now = Date.now();
    const pending: ChallengeChange[] = [];
    // One bad record costs only itself: a gateway starting mid-order still answers the others.
    for (const [field, sealed] of Object.entries(all)) {
      const record = this.#openChallenge(field, sealed, "record");
      if (!record) continue;
      if (record.expiresAt <= now) {
        await this.#client.hdel("tls:challenges", field);
      } else if (pending.length >= MAX_PENDING_CHALLENGES) {
        this.#warn(`more than ${MAX_PENDING_CHALLENGES} ACME challenges are pending in the shared TLS store: only the first ${MAX_PENDING_CHALLENGES} are answered`);
        break;
      } else {
        pending.push(record.change);
      }
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

  /** The CA every client trusts: its certificate must be the one its key was sealed with, and match the key. */
  async #readCa(): Promise<KeyPairPem | null> {
    const pair = await this.#readPair("ca", "ca");
    const problem = pair && keyPairProblem(pair.certPem, pair.keyPem);
    if (problem) throw new Error(`the CA in the shared TLS store is unusable: ${problem}`);
    return pair;
  }

  async #readPair(key: string, purpose: string): Promise<KeyPairPem | null> {
    const raw = await this.#client.get(`tls:${key}`);
    if (raw === null) return null;
    const record = JSON.parse(raw) as SealedPair;
    return { certPem: record.certPem, keyPem: this.#options.sealer.open(record.key, purpose, certificateBinding(record.certPem)) };
  }

  async #writePair(key: string, purpose: string, pair: KeyPairPem): Promise<void> {
    const record: SealedPair = { certPem: pair.certPem, key: this.#options.sealer.seal(pair.keyPem, purpose, certificateBinding(pair.certPem)) };
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

  #warn(message: string): void {
    if (this.#warned.has(message)) return;
    this.#warned.add(message);
    (this.#options.warn ?? ((text: string) => process.emitWarning(text, "TlsStoreWarning")))(message);
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

function challengeField(change: ChallengeChange): string {
  return change.kind === "http" ? `http:${change.token}` : `alpn:${change.host}`;
}

/** An ACME certificate's key opens only beside the certificate, directory and time it was stored with. */
function acmeCertificateBinding(certPem: string, directory: string, storedAt: string): string {
  return JSON.stringify([certificateBinding(certPem), String(directory), String(storedAt)]);
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
