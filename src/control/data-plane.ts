// What the control plane (control-plane.ts) drives: the part of the gateway that accepts client
// connections and runs requests. One process serving itself (local-data-plane.ts) or a fleet of worker
// processes reached over IPC (cluster/fleet-data-plane.ts) look the same from above, so reloads, ACME,
// certificates, managed registries, the admin listener and signals are handled once, in one place.
import type { AddressInfo } from "node:net";
import type { MetricsExporter } from "../admin.js";
import type { ManagedUrls } from "../backends/managed.js";
import type { GatewayConfig } from "../config/schema.js";
import type { SiteCertificate } from "../tls/store.js";

/** Where the data plane accepts connections, once started. */
export interface ServingAddresses {
  https: AddressInfo;
  /** The plain-HTTP listener (ACME HTTP-01, redirects), when http.listen is set. */
  http: AddressInfo | null;
  /** The generated CA clients must trust, when any site uses generated certificates. */
  caFile: string | null;
  /** Worker processes serving, in a fleet (the ready line names them: memory is read per process). */
  workers?: number;
}

/** One backend of one pool, as the data plane's health checks and request counts see it. */
export interface BackendReadiness {
  /** The pool's name as a single gateway process names it (the pool, not the site). */
  pool: string;
  /** Where the backend listens (managed backends resolved to their running registry). */
  url: string;
  /** The url's origin: the `backend` label of the metrics. */
  origin: string;
  healthy: boolean;
  /** Requests sent to it and not yet answered in full. */
  outstanding: number;
}

export interface Readiness {
  /** Accepting HTTPS connections (and not draining). */
  listening: boolean;
  backends: BackendReadiness[];
}

export type { ChallengeChange } from "../tls/acme-challenges.js";
import type { ChallengeChange } from "../tls/acme-challenges.js";

/** A committed configuration: `retired` resolves once no request runs on the replaced one any more. */
export interface Committed {
  retired: Promise<void>;
}

export interface CommitOptions {
  /** False when the ACME manager is replaced too: the new one hands over what it adopts. */
  keepAcmeHandOvers: boolean;
}

export interface DataPlane {
  /** Builds the first configuration and opens the listeners; a broken configuration starts nothing. */
  start(config: GatewayConfig, managed: ManagedUrls): Promise<ServingAddresses>;
  /**
   * A reload's first phase: builds `config` and checks its certificates without serving it. Throws an
   * Error whose message lines are the reasons; nothing changes then (abort() discards what was built).
   */
  prepare(config: GatewayConfig, managed: ManagedUrls): Promise<void>;
  /** Swaps the prepared configuration in for new requests; requests in flight finish on the old one. */
  commit(options: CommitOptions): Promise<Committed>;
  /** Discards a prepared configuration (none prepared: nothing happens). */
  abort(): Promise<void>;
  /** Counts a reload's outcome where the metrics live, once per reload. */
  reloaded(ok: boolean): void;
  readiness(): Promise<Readiness>;
  /** What /metrics serves. */
  metrics(): MetricsExporter;
  /** Serves these loaded certificates (rotation) in place of the sites' current ones; resolves with any failure. */
  replaceCertificates(certificates: readonly SiteCertificate[]): Promise<string[]>;
  /** A certificate the ACME manager just obtained for `site`. */
  acmeCertificate(site: string, certPem: string, keyPem: string): Promise<void>;
  /** A pending ACME challenge changed; resolves once every process that may be asked answers it. */
  challenge(change: ChallengeChange): Promise<void>;
  /** Stops accepting, lets requests in flight finish for up to drainMs, then closes everything. */
  shutdown(drainMs: number): Promise<void>;
}
