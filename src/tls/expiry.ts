// Served certificates that are past the point where they should have been replaced, logged as warnings at
// start and once a day. A warning therefore means renewal is not happening by itself:
//   generated  a third of the lifetime left (a restart, reload or `cert rotate` issues a new one)
//   acme       the renewal time has passed (renewBefore, or two thirds of the lifetime): orders are failing
//   files      30 days left: someone has to replace the files, then reload
// The not-after metric is read from the certificate store at each scrape, so it needs nothing from here.
import type { GatewayConfig, SiteConfig } from "../config/schema.js";
import { siteName } from "../config/site-names.js";
import { renewalTime } from "./acme-storage.js";
import type { CertificateInfo } from "./store.js";

const DAY_MS = 86_400_000;
const FILES_WARNING_MS = 30 * DAY_MS;

export interface ExpiryWarning {
  site: string;
  hosts: string[];
  source: SiteConfig["tls"]["source"];
  serial: string;
  notAfter: Date;
  /** Whole days until notAfter; negative once expired. */
  daysLeft: number;
  /** When the certificate crossed its source's threshold. */
  dueSince: Date;
}

const thresholds: Record<SiteConfig["tls"]["source"], (info: CertificateInfo, tls: SiteConfig["tls"]) => Date> = {
  generated: (info) => new Date(info.notAfter.getTime() - lifetime(info) / 3),
  acme: (info, tls) => renewalTime(info.notBefore, info.notAfter, tls.source === "acme" ? tls.renewBefore : undefined),
  files: (info) => new Date(info.notAfter.getTime() - FILES_WARNING_MS),
};

/** The served certificates under their renewal threshold. */
export function certificatesDue(served: readonly CertificateInfo[], config: GatewayConfig, now = new Date()): ExpiryWarning[] {
  const sites = new Map(config.sites.map((site) => [siteName(site), site]));
  const due: ExpiryWarning[] = [];
  for (const info of served) {
    const site = sites.get(info.site);
    if (!site) continue;
    const dueSince = thresholds[site.tls.source](info, site.tls);
    if (dueSince > now) continue;
    due.push({
      site: info.site,
      hosts: [...info.hosts],
      source: site.tls.source,
      serial: info.serial,
      notAfter: info.notAfter,
      daysLeft: Math.floor((info.notAfter.getTime() - now.getTime()) / DAY_MS),
      dueSince,
    });
  }
  return due;
}

export interface ExpirySource {
  certificates(): readonly CertificateInfo[];
  config(): GatewayConfig;
}

export interface WarningLogger {
  warn(details: object, message: string): void;
}

/** Checks now and every `intervalMs` (a day); the timer never keeps the process alive. Returns the stop function. */
export function watchCertificateExpiry(source: ExpirySource, logger: WarningLogger, intervalMs = DAY_MS): () => void {
  const check = () => {
    for (const warning of certificatesDue(source.certificates(), source.config())) {
      logger.warn(
        { ...warning, notAfter: warning.notAfter.toISOString(), dueSince: warning.dueSince.toISOString() },
        warning.daysLeft < 0 ? "certificate has expired" : "certificate is due for renewal and has not been renewed",
      );
    }
  };
  check();
  const timer = setInterval(check, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}

function lifetime(info: CertificateInfo): number {
  return info.notAfter.getTime() - info.notBefore.getTime();
}
