// Certificates from an ACME CA (RFC 8555) for sites with `tls.source: acme`: ordered when missing,
// renewed when due, kept in the data directory and shared with every process that uses it.
//
// The gateway sees the small AcmeCertificates interface: it hands certificates over through
// `onCertificate` (the gateway calls `store.replace` from it), and its listeners answer challenges through
// the responder (`httpChallengeResponse`, `alpnContextFor`). Until a site's first certificate arrives the
// gateway serves its generated fallback (see loadSiteCertificates).
//
// Ordering is serialised per site twice: within a process by a promise chain, across processes by a lock
// directory next to the certificate. Whoever gets the lock re-reads the disk first, so a process that
// waited behind another one adopts the certificate the other ordered instead of ordering again.
import type { SecureContext } from "node:tls";
import type { AcmeTlsConfig, GatewayConfig } from "../config/schema.js";
import { AcmeChallengeResponder } from "./acme-challenges.js";
import { certificateDueAt, describeCertificate, fitsSite, type StoredAcmeCertificate } from "./acme-storage.js";
import { FilesTlsStore, type TlsStore } from "./tls-store.js";
import { acmeSites } from "./acme-sites.js";
import { AcmeClientOrderer, type AcmeSite, type CertificateOrderer, type StatusPolling } from "./acme-orderer.js";
import { configureAcmeTransport, explainAcmeError, type AcmeTransportSettings } from "./acme-transport.js";
import { keyPairProblem, type LockOptions } from "./selfsigned.js";

export type { AcmeSite, CertificateOrderer, StatusPolling };

export interface AcmeSiteStatus {
  site: string;
  hosts: string[];
  directory: string;
  challenge: AcmeTlsConfig["challenge"];
  /** The certificate in service, or null while the generated fallback is served. */
  certificate: { serial: string; notBefore: Date; notAfter: Date; names: string[] } | null;
  renewAt: Date | null;
  /** When this process will next try to order (renewal or retry), or null when stopped. */
  nextAttemptAt: Date | null;
  ordering: boolean;
  /** Failed attempts since the last success. */
  failures: number;
  lastError: string | null;
  /** Orders placed by this process (a certificate adopted from disk is not an order). */
  orders: number;
}

/** What the gateway wires (phase 2): listeners call the two challenge methods, the CLI and admin the rest. */
export interface AcmeCertificates {
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Re-issues now, for one site or all; rejects with the reasons if any order fails. */
  renewNow(site?: string): Promise<AcmeSiteStatus[]>;
  /** Adopts certificates another process stored since (after a `cert rotate` elsewhere, on SIGHUP). */
  refreshFromDisk(): Promise<void>;
  status(): AcmeSiteStatus[];
  httpChallengeResponse(token: string): string | undefined;
  alpnContextFor(servername: string): SecureContext | undefined;
}

export interface AcmeLogger {
  info(details: object, message: string): void;
  warn(details: object, message: string): void;
  error(details: object, message: string): void;
}

export interface BackoffPolicy {
  initialMs: number;
  maxMs: number;
}

export interface AcmeManagerOptions {
  dataDir: string;
  /** Where certificates, the account key and the order lock live; default: the files in dataDir. */
  store?: TlsStore;
  sites: AcmeSite[];
  onCertificate: (site: string, certPem: string, keyPem: string) => void;
  /** Shared with the listeners; pass the same one to a manager built by a reload. */
  responder?: AcmeChallengeResponder;
  logger?: AcmeLogger;
  /** Default: acme-client with one account per directory. Tests pass a fake. */
  orderer?: CertificateOrderer;
  backoff?: BackoffPolicy;
  lock?: Partial<LockOptions>;
  transport?: AcmeTransportSettings;
  statusPolling?: StatusPolling;
}



// Let's Encrypt allows 5 failed validations per host per hour: the first retries come after minutes.
const DEFAULT_BACKOFF: BackoffPolicy = { initialMs: 2 * 60_000, maxMs: 6 * 3_600_000 };
// An order takes seconds to minutes; the holder's heartbeat keeps the lock fresh meanwhile.
const DEFAULT_LOCK: LockOptions = { staleMs: 2 * 60_000, waitMs: 15 * 60_000, pollMs: 250 };
// setTimeout fires at once for delays beyond 2^31-1 ms (~24.8 days); longer waits are taken in steps.
const MAX_TIMER_MS = 2 ** 31 - 1;

type Attempt = { kind: "renew" } | { kind: "rotate"; replacing: string | null };

interface SiteState {
  site: AcmeSite;
  current: StoredAcmeCertificate | null;
  renewAt: Date | null;
  nextAttemptAt: Date | null;
  timer: NodeJS.Timeout | null;
  ordering: boolean;
  failures: number;
  lastError: string | null;
  orders: number;
  /** The tail of this site's attempts: each waits for the one before. */
  queue: Promise<unknown>;
}

const silentLogger: AcmeLogger = { info() {}, warn() {}, error() {} };

export class AcmeManager implements AcmeCertificates {
  readonly responder: AcmeChallengeResponder;
  readonly #options: AcmeManagerOptions;
  readonly #orderer: CertificateOrderer;
  readonly #logger: AcmeLogger;
  readonly #backoff: BackoffPolicy;
  readonly #lock: LockOptions;
  readonly #sites = new Map<string, SiteState>();
  readonly #store: TlsStore;
  #stopped = false;

  constructor(options: AcmeManagerOptions) {
    this.#options = options;
    this.#store = options.store ?? new FilesTlsStore(options.dataDir);
    this.responder = options.responder ?? new AcmeChallengeResponder();
    this.#logger = options.logger ?? silentLogger;
    this.#backoff = options.backoff ?? DEFAULT_BACKOFF;
    this.#lock = { ...DEFAULT_LOCK, ...options.lock };
    this.#orderer = options.orderer ?? new AcmeClientOrderer(this.#store, this.responder, options.statusPolling);
    configureAcmeTransport(options.transport);
    for (const site of options.sites) {
      this.#sites.set(site.name, {
        site,
        current: null,
        renewAt: null,
        nextAttemptAt: null,
        timer: null,
        ordering: false,
        failures: 0,
        lastError: null,
        orders: 0,
        queue: Promise.resolve(),
      });
    }
  }

  httpChallengeResponse(token: string): string | undefined {
    return this.responder.httpChallengeResponse(token);
  }

  alpnContextFor(servername: string): SecureContext | undefined {
    return this.responder.alpnContextFor(servername);
  }

  /**
   * Hands over every stored certificate still valid, then schedules: sites without a usable certificate
   * order at once, in the background, so listeners can come up (HTTP-01 needs them) meanwhile.
   */
  async start(): Promise<void> {
    for (const state of this.#sites.values()) {
      const stored = await this.#store.readAcmeCertificate(state.site.name);
      if (stored) this.#adopt(state, stored);
      const reusable = stored && fitsSite(stored, state.site.hosts, state.site.tls.directory);
      this.#schedule(state, reusable ? state.renewAt! : new Date());
    }
  }

  /** No new attempts; waits for orders in flight (bounded by the request timeouts) to finish. */
  async stop(): Promise<void> {
    this.#stopped = true;
    for (const state of this.#sites.values()) this.#clearTimer(state);
    await Promise.allSettled([...this.#sites.values()].map((state) => state.queue));
  }

  async renewNow(site?: string): Promise<AcmeSiteStatus[]> {
    const states = site === undefined ? [...this.#sites.values()] : [this.#site(site)];
    const results = await Promise.allSettled(
      states.map((state) => this.#enqueue(state, { kind: "rotate", replacing: state.current?.serial ?? null }, true)),
    );
    const failures = results.flatMap((result, index) =>
      result.status === "rejected" ? [`${states[index]!.site.name}: ${(result.reason as Error).message}`] : [],
    );
    if (failures.length) throw new Error(`certificate rotation failed for ${failures.join("; ")}`);
    return states.map((state) => this.#statusOf(state));
  }

  async refreshFromDisk(): Promise<void> {
    for (const state of this.#sites.values()) {
      const stored = await this.#store.readAcmeCertificate(state.site.name);
      if (!stored || !fitsSite(stored, state.site.hosts, state.site.tls.directory)) continue;
      // Two certificates ordered within the same second share notBefore: the serial tells them apart.
      if (state.current && (stored.serial === state.current.serial || stored.notBefore < state.current.notBefore)) continue;
      this.#adopt(state, stored);
      if (!state.ordering) this.#schedule(state, state.renewAt!);
    }
  }

  status(): AcmeSiteStatus[] {
    return [...this.#sites.values()].map((state) => this.#statusOf(state));
  }

  #site(name: string): SiteState {
    const state = this.#sites.get(name);
    if (!state) throw new Error(`no ACME site "${name}" (ACME sites: ${[...this.#sites.keys()].join(", ") || "none"})`);
    return state;
  }

  #enqueue(state: SiteState, attempt: Attempt, rethrow: boolean): Promise<void> {
    const run = state.queue.then(() => this.#attempt(state, attempt, rethrow));
    state.queue = run.catch(() => {});
    return run;
  }

  async #attempt(state: SiteState, attempt: Attempt, rethrow: boolean): Promise<void> {
    if (this.#stopped) return;
    this.#clearTimer(state);
    state.ordering = true;
    try {
      const certificate = await this.#store.withOrderLock(state.site.name, this.#lock, (lost) => this.#obtainLocked(state, attempt, lost));
      state.failures = 0;
      state.lastError = null;
      if (!this.#stopped) this.#adopt(state, certificate);
    } catch (error) {
      const explained = await explainAcmeError(error, state.site.tls.directory);
      state.failures++;
      state.lastError = explained.message;
      const retryAt = new Date(Date.now() + backoffDelay(state.failures, this.#backoff));
      this.#logger.error(
        { site: state.site.name, failures: state.failures, retryAt, err: explained.message },
        state.current ? "ACME order failed: the current certificate stays in service" : "ACME order failed: the generated certificate stays in service",
      );
      this.#schedule(state, retryAt);
      if (rethrow) throw explained;
      return;
    } finally {
      state.ordering = false;
    }
    this.#schedule(state, state.renewAt!);
  }

  /** Under the site's lock: adopt what another process just stored, or order. `lost`: the lock went to another gateway. */
  async #obtainLocked(state: SiteState, attempt: Attempt, lost: AbortSignal): Promise<StoredAcmeCertificate> {
    const { site } = state;
    const stored = await this.#store.readAcmeCertificate(site.name);
    if (stored && fitsSite(stored, site.hosts, site.tls.directory)) {
      const fresh = attempt.kind === "rotate" ? stored.serial !== attempt.replacing : certificateDueAt(stored, site.tls.renewBefore) > new Date();
      if (fresh) return stored;
    }
    state.orders++;
    this.#logger.info({ site: site.name, hosts: site.hosts, directory: site.tls.directory, challenge: site.tls.challenge }, "ordering an ACME certificate");
    lost.throwIfAborted();
    const pair = await untilAborted(this.#orderer.order(site), lost);
    const problem = keyPairProblem(pair.certPem, pair.keyPem);
    if (problem) throw new Error(`the CA returned an unusable certificate: ${problem}`);
    const storedAt = new Date();
    // The gateway that took the lock over may have stored its own certificate: this one is not written over it.
    lost.throwIfAborted();
    await this.#store.writeAcmeCertificate(site.name, pair, site.tls.directory, storedAt);
    return describeCertificate(pair, site.tls.directory, storedAt);
  }

  #adopt(state: SiteState, certificate: StoredAcmeCertificate): void {
    const changed = state.current?.serial !== certificate.serial;
    state.current = certificate;
    state.renewAt = certificateDueAt(certificate, state.site.tls.renewBefore);
    if (!changed) return;
    this.#logger.info(
      { site: state.site.name, serial: certificate.serial, notAfter: certificate.notAfter, renewAt: state.renewAt },
      "ACME certificate in service",
    );
    try {
      this.#options.onCertificate(state.site.name, certificate.certPem, certificate.keyPem);
    } catch (error) {
      this.#logger.error({ site: state.site.name, err: (error as Error).message }, "the new certificate could not be put in service");
    }
  }

  #schedule(state: SiteState, at: Date): void {
    this.#clearTimer(state);
    if (this.#stopped) return;
    state.nextAttemptAt = at;
    const delay = Math.max(0, at.getTime() - Date.now());
    state.timer = setTimeout(() => {
      state.timer = null;
      // A long wait is taken in steps; only the last one orders.
      if (at.getTime() > Date.now()) this.#schedule(state, at);
      else void this.#enqueue(state, { kind: "renew" }, false);
    }, Math.min(delay, MAX_TIMER_MS));
    // The listeners keep a gateway alive; a pending renewal alone must not keep a CLI process running.
    state.timer.unref();
  }

  #clearTimer(state: SiteState): void {
    if (state.timer) clearTimeout(state.timer);
    state.timer = null;
    state.nextAttemptAt = null;
  }

  #statusOf(state: SiteState): AcmeSiteStatus {
    const { current } = state;
    return {
      site: state.site.name,
      hosts: [...state.site.hosts],
      directory: state.site.tls.directory,
      challenge: state.site.tls.challenge,
      certificate: current
        ? { serial: current.serial, notBefore: current.notBefore, notAfter: current.notAfter, names: [...current.names] }
        : null,
      renewAt: state.renewAt,
      nextAttemptAt: state.nextAttemptAt,
      ordering: state.ordering,
      failures: state.failures,
      lastError: state.lastError,
      orders: state.orders,
    };
  }
}

/** `work`'s outcome, or the signal's reason as soon as it fires (`work` is left to settle unobserved). */
function untilAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/** Exponential backoff with jitter: the delay is drawn from [half, whole] of min(max, initial·2^(n-1)). */
export function backoffDelay(failures: number, { initialMs, maxMs }: BackoffPolicy, random = Math.random): number {
  const ceiling = Math.min(maxMs, initialMs * 2 ** Math.max(0, failures - 1));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

// ---- from configuration -------------------------------------------------------------------------------

export { acmeSites };

/** Null when no site uses ACME: an absent stage, not an empty one. */
export function createAcmeManager(config: GatewayConfig, options: Omit<AcmeManagerOptions, "dataDir" | "sites">): AcmeManager | null {
  const sites = acmeSites(config);
  return sites.length ? new AcmeManager({ ...options, dataDir: config.dataDir, sites }) : null;
}
