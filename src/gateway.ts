// A gateway of one process: the control plane (control/control-plane.ts: reloads, ACME, certificates,
// managed registries, the admin listener) over the data plane of this process (control/local-data-plane.ts:
// listeners and generations). A cluster puts the same control plane over a fleet of workers instead
// (cluster/fleet-data-plane.ts).
import type { AddressInfo } from "node:net";
import type { ReloadOutcome } from "./admin-actions.js";
import type { GatewayConfig } from "./config/schema.js";
import { ControlPlane, type ControlPlaneOptions } from "./control/control-plane.js";
import { LocalDataPlane } from "./control/local-data-plane.js";
import type { Logger } from "./observe/log.js";
import type { AcmeCertificates } from "./tls/acme.js";
import type { AcmeChallengeResponder } from "./tls/acme-challenges.js";
import type { RotationOutcome } from "./tls/rotation.js";
import type { ServedCertificates } from "./tls/served-certificates.js";
import type { CertificateStore } from "./tls/store.js";

export type GatewayOptions = ControlPlaneOptions;

export interface RunningGateway {
  https: AddressInfo;
  admin: AddressInfo;
  /** The plain-HTTP listener (ACME HTTP-01, redirects to HTTPS), when http.listen is set. */
  http: AddressInfo | null;
  /** The generated CA clients must trust, when any site uses generated certificates. */
  caFile: string | null;
  /** What the listeners present, per handshake. */
  certificates: CertificateStore;
  /** What each site presents, as the listeners serve it. */
  served: ServedCertificates;
  /** Pending ACME challenges the listeners answer. */
  responder: AcmeChallengeResponder;
  /** The ACME manager in service; null when no site uses ACME. */
  acme(): AcmeCertificates | null;
  inFlight(): number;
  upstreamSocketsInUse(): number;
  /** Upload sessions this process's memory holds (null: they are kept in Redis). */
  uploadSessions(): number | null;
  /**
   * Builds the new configuration completely (by default re-read from configSource), then swaps it in for
   * new requests; on any error the running one stays and the outcome carries the error lines.
   */
  reload(config?: GatewayConfig): Promise<ReloadOutcome>;
  /** `cert rotate`: new certificates for one site (name or host) or all, served to new handshakes at once. */
  rotateCertificates(site?: string): Promise<RotationOutcome>;
  /** Stops accepting, lets requests in flight finish for up to drainMs, then closes everything. */
  shutdown(drainMs: number): Promise<void>;
}

/** Starts a gateway process: the first generation, then the listeners; a broken configuration starts nothing. */
export async function startGateway(config: GatewayConfig, logger: Logger, options: GatewayOptions = {}): Promise<RunningGateway> {
  const data = new LocalDataPlane(logger);
  const control = new ControlPlane(data, logger, options);
  await control.start(config);
  const { https, http, caFile } = control.addresses;
  return {
    https,
    admin: control.adminAddress,
    http,
    caFile,
    certificates: data.certificates,
    served: data.served,
    responder: data.responder,
    acme: () => control.acme(),
    inFlight: () => data.inFlight(),
    upstreamSocketsInUse: () => data.upstreamSocketsInUse(),
    uploadSessions: () => data.uploadSessions(),
    reload: (next) => control.reload(next),
    rotateCertificates: (site) => control.rotateCertificates(site),
    shutdown: (drainMs) => control.shutdown(drainMs),
  };
}
