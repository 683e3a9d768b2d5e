// `cert rotate`: a new certificate per site, by source: ACME re-issues, generated issues a new leaf even if
// the current one is still good, files are re-read. In a running gateway the result replaces the served set
// for new handshakes (connections and requests in flight keep theirs); without one, only the disk changes.
import type { GatewayConfig, SiteConfig } from "../config/schema.js";
import { siteName } from "../config/site-names.js";
import type { AcmeCertificates } from "./acme.js";
import type { ServedCertificates } from "./served-certificates.js";
import { loadSiteCertificates, type CertificateInfo, type SiteCertificate } from "./store.js";

export type CertificateSource = SiteConfig["tls"]["source"];

/** One site's result, as the admin listener answers it and the CLI prints it. */
export interface RotatedCertificate {
  site: string;
  source: CertificateSource;
  hosts: string[];
  previousSerial: string | null;
  serial: string | null;
  /** ISO time; null when there is no certificate. */
  notAfter: string | null;
  outcome: "rotated" | "unchanged" | "failed";
  message: string;
}

export interface RotationOutcome {
  ok: boolean;
  certificates: RotatedCertificate[];
  /** Why nothing was rotated at all (an unknown --site). */
  errors: string[];
}

/** Sites named by `selector` (a site name or one of its hosts, any case); every site when undefined. */
export function selectSites(config: GatewayConfig, selector: string | undefined): SiteConfig[] {
  if (selector === undefined || selector === "") return [...config.sites];
  const wanted = selector.trim().toLowerCase();
  const chosen = config.sites.filter((site) => siteName(site).toLowerCase() === wanted || site.hosts.includes(wanted));
  if (chosen.length === 0) {
    const known = config.sites.map((site) => `${siteName(site)} (${site.hosts.join(", ")})`).join("; ");
    throw new Error(`no site is named or serves "${selector}"; sites: ${known}`);
  }
  return chosen;
}

export interface RunningCertificates {
  config(): GatewayConfig;
  acme(): AcmeCertificates | null;
  served: ServedCertificates;
  info(): CertificateInfo[];
  /** Runs `work` in line with reloads, so a reload never interleaves with replacing the set. */
  serialized<T>(work: () => Promise<T>): Promise<T>;
}

/** Rotation inside a running gateway; never throws, every failure is in the outcome. */
export async function rotateServedCertificates(running: RunningCertificates, selector: string | undefined): Promise<RotationOutcome> {
  let targets: SiteConfig[];
  try {
    targets = selectSites(running.config(), selector);
  } catch (error) {
    return { ok: false, certificates: [], errors: [(error as Error).message] };
  }
  const before = serialsBySite(running.info());
  const failures = new Map<string, string>();

  // ACME first and outside the reload queue: an order can take minutes, a reload should not wait for it.
  // The manager hands the new certificate over to the served set itself.
  const acmeTargets = targets.filter((site) => site.tls.source === "acme").map(siteName);
  const acme = running.acme();
  await Promise.all(
    acmeTargets.map(async (name) => {
      try {
        if (!acme) throw new Error("no ACME manager is running");
        await acme.renewNow(name);
      } catch (error) {
        failures.set(name, (error as Error).message);
      }
    }),
  );

  const local = targets.filter((site) => site.tls.source !== "acme").map(siteName);
  if (local.length > 0) {
    await running.serialized(async () => {
      // The configuration may have been reloaded while ACME ordered: rotate what it says now.
      const config = running.config();
      const loaded: SiteCertificate[] = [];
      for (const site of config.sites.filter((s) => local.includes(siteName(s)))) {
        const name = siteName(site);
        try {
          loaded.push(...(await loadSiteCertificates(config, { sites: new Set([name]), renew: new Set([name]) })).certificates);
        } catch (error) {
          failures.set(name, (error as Error).message);
        }
      }
      try {
        if (loaded.length > 0) running.served.replaceSome(loaded);
      } catch (error) {
        for (const certificate of loaded) failures.set(certificate.site, (error as Error).message);
      }
    });
  }

  const after = new Map(running.info().map((info) => [info.site, info]));
  const certificates = targets.map((site): RotatedCertificate => {
    const name = siteName(site);
    const now = after.get(name);
    return report(site, before.get(name) ?? null, now ? { serial: now.serial, notAfter: now.notAfter } : null, failures.get(name));
  });
  return { ok: failures.size === 0, certificates, errors: [] };
}

/** Builds one site's line of the report; shared with the on-disk rotation. */
export function report(
  site: SiteConfig,
  previousSerial: string | null,
  current: { serial: string; notAfter: Date } | null,
  failure?: string,
  unchangedWhy?: string,
): RotatedCertificate {
  const base = {
    site: siteName(site),
    source: site.tls.source,
    hosts: [...site.hosts],
    previousSerial,
    serial: current?.serial ?? null,
    notAfter: current?.notAfter.toISOString() ?? null,
  };
  if (failure !== undefined) return { ...base, outcome: "failed", message: failure };
  if (current && current.serial !== previousSerial) return { ...base, outcome: "rotated", message: ROTATED[site.tls.source] };
  return { ...base, outcome: "unchanged", message: unchangedWhy ?? UNCHANGED[site.tls.source] };
}

const ROTATED: Record<CertificateSource, string> = {
  generated: "new certificate issued by the local CA",
  acme: "new certificate issued by the ACME CA",
  files: "re-read tls.cert and tls.key: a new certificate",
};

const UNCHANGED: Record<CertificateSource, string> = {
  generated: "the certificate did not change",
  acme: "the certificate did not change",
  files: "re-read tls.cert and tls.key: they hold the same certificate as before",
};

function serialsBySite(infos: readonly CertificateInfo[]): Map<string, string> {
  return new Map(infos.map((info) => [info.site, info.serial]));
}
