// A gateway's part in a fleet sharing the redis TLS store: it picks up certificates another gateway made or
// rotated (a notice at once, a periodic check in case a notice was missed), answers the ACME challenges of
// orders another gateway placed, reports what it serves (`cert status`), and says whether the store answers:
// the registry_gateway_tls_store_up gauge, an error counter, and one log line per transition. While the store
// is down the certificates in memory keep being served; the next check or renewal attempt tries again.
import type { MetricsExporter } from "../admin.js";
import type { Logger } from "../observe/log.js";
import type { CertificateInfo } from "../tls/store.js";
import type { FleetChannel, FleetNotice } from "../tls/tls-store.js";
import type { ChallengeChange } from "./data-plane.js";
import { gatewayName, type FleetTimings } from "../tls/tls-stores.js";

export interface FleetSyncHooks {
  /** Re-reads the store and serves what changed. */
  refresh(): Promise<void>;
  /** Makes this gateway's listeners answer a challenge. */
  applyChallenge(change: ChallengeChange): Promise<void>;
  /** What the gateway serves now. */
  served(): CertificateInfo[];
}

export class FleetSync {
  #up = true;
  #errors = 0;
  #timer: NodeJS.Timeout | null = null;
  #refreshing: Promise<void> | null = null;
  #again = false;
  #stopped = false;
  #lastProblem: string | null = null;

  constructor(
    private readonly channel: FleetChannel,
    private readonly hooks: FleetSyncHooks,
    private readonly logger: Logger,
    private readonly timings: FleetTimings,
  ) {}

  async start(): Promise<void> {
    // First: without notices (a failed subscribe) the periodic check still picks changes up.
    this.#timer = setInterval(() => void this.check(), this.timings.checkMs);
    this.#timer.unref();
    await this.channel.subscribe(
      (notice) => void this.#onNotice(notice),
      (up) => this.#availability(up),
    );
    for (const change of await this.channel.pendingChallenges().catch(() => [])) await this.hooks.applyChallenge(change).catch(() => {});
    await this.#report();
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer) clearInterval(this.#timer);
  }

  /** What the ACME orders' responder forwards: every other gateway answers it before the CA is told to look. */
  publishChallenge(change: ChallengeChange): Promise<void> {
    return this.channel.publishChallenge(change).catch((error: Error) => this.#failed(error, "publishing an ACME challenge to the fleet failed"));
  }

  /** A refresh and a served report; overlapping calls coalesce into one more run. */
  async check(): Promise<void> {
    if (this.#stopped) return;
    if (this.#refreshing) {
      this.#again = true;
      return this.#refreshing;
    }
    this.#refreshing = (async () => {
      do {
        this.#again = false;
        try {
          await this.hooks.refresh();
          await this.#report();
          this.#lastProblem = null;
          if (this.channel.available()) this.#availability(true);
        } catch (error) {
          this.#failed(error as Error, "reading the shared TLS store failed");
        }
      } while (this.#again && !this.#stopped);
    })().finally(() => (this.#refreshing = null));
    return this.#refreshing;
  }

  /** Called after this gateway changed what it serves (rotation, a new ACME certificate). */
  reportSoon(): void {
    void this.#report().catch(() => {});
  }

  metrics(inner: MetricsExporter | null): MetricsExporter | null {
    if (!inner) return null;
    return {
      contentType: inner.contentType,
      exposition: async () =>
        `${await inner.exposition()}` +
        "# HELP registry_gateway_tls_store_up 1 when the shared TLS store (Redis) answered the last exchange, else 0.\n" +
        "# TYPE registry_gateway_tls_store_up gauge\n" +
        `registry_gateway_tls_store_up ${this.#up ? 1 : 0}\n` +
        "# HELP registry_gateway_tls_store_errors_total Failed exchanges with the shared TLS store.\n" +
        "# TYPE registry_gateway_tls_store_errors_total counter\n" +
        `registry_gateway_tls_store_errors_total ${this.#errors}\n`,
    };
  }

  async #onNotice(notice: FleetNotice): Promise<void> {
    if (notice.kind === "certificate") return this.check();
    try {
      await this.hooks.applyChallenge(notice.change);
      await this.channel.acknowledge(notice.ackId);
    } catch (error) {
      this.#failed(error as Error, "answering an ACME challenge of another gateway failed");
    }
  }

  async #report(): Promise<void> {
    const certificates = this.hooks.served().map((info) => ({ site: info.site, serial: info.serial, notAfter: info.notAfter.toISOString() }));
    await this.channel.reportServed({ gateway: gatewayName(), at: new Date().toISOString(), certificates }, this.timings.checkMs * 3);
  }

  /** An outage is a transition (one line); any other failure is logged once until another one replaces it. */
  #failed(error: Error, what: string): void {
    this.#errors++;
    if (!this.channel.available()) return this.#availability(false, { err: error.message, what });
    if (error.message === this.#lastProblem) return;
    this.#lastProblem = error.message;
    this.logger.error({ err: error.message }, `${what}: the certificates in memory stay in service`);
  }

  /** Logs only transitions: a Redis outage is one line down and one line up, however long it lasts. */
  #availability(up: boolean, details: object = {}): void {
    if (up === this.#up || this.#stopped) return;
    this.#up = up;
    if (up) {
      this.logger.info("the shared TLS store (Redis) answers again: certificates and renewals are shared with the fleet again");
      void this.check();
    } else {
      this.logger.error(details, "the shared TLS store (Redis) does not answer: serving the certificates in memory; renewals wait and are retried");
    }
  }
}
