// What each site's certificate is, read from where it is kept, so `cert status` answers the same whether or
// not a gateway runs: generated leaves and ACME certificates from the TLS store (the data directory, or
// Redis with `tls.store: redis`), `files` from their paths.
import { X509Certificate } from "node:crypto";
import { isIP } from "node:net";
import type { GatewayConfig, SiteConfig } from "../config/schema.js";
import { siteName } from "../config/site-names.js";
import { certificateDueAt } from "./acme-storage.js";
import { readIfExists, subjectAltNames } from "./selfsigned.js";
import type { ServedReport, TlsStore } from "./tls-store.js";
import { withTlsStore } from "./tls-stores.js";

const DAY_MS = 86_400_000;

export interface HostCertificateInfo {
  site: string;
  host: string;
  source: SiteConfig["tls"]["source"];
  /** The certificate file this host is served from (or would be, by a gateway started now). */
  file: string;
  /** An ACME site still served with its generated certificate, because no ACME certificate is stored yet. */
  fallback: boolean;
  /** Null when the file is missing or unreadable; `problem` says which. */
  certificate: CertificateDetails | null;
  problem: string | null;
  /** ACME only: when the stored certificate is due for renewal. */
  renewAt: Date | null;
}

export interface CertificateDetails {
  subject: string;
  issuer: string;
  sans: string[];
  serial: string;
  notBefore: Date;
  notAfter: Date;
  /** Whole days until notAfter; negative once expired. */
  daysLeft: number;
  /** Whether the certificate's names include this host. */
  coversHost: boolean;
}

export function certificateStatus(config: GatewayConfig, now = new Date()): Promise<HostCertificateInfo[]> {
  return withTlsStore(config, (store) => statusFromStore(config, store, now));
}

/** What each gateway of a fleet reports it serves (the redis store); empty with the files store. */
export function fleetServed(config: GatewayConfig): Promise<ServedReport[]> {
  return withTlsStore(config, async (store) => (store.fleet ? store.fleet.servedReports() : []));
}

async function statusFromStore(config: GatewayConfig, store: TlsStore, now: Date): Promise<HostCertificateInfo[]> {
  const rows: HostCertificateInfo[] = [];
  for (const site of config.sites) {
    const name = siteName(site);
    const served = await servedFile(store, site, name, now);
    const text = await served.read().catch((error: Error) => error);
    const parsed = typeof text === "string" ? parseLeaf(text) : null;
    const problem =
      text === null
        ? "no certificate file yet (a gateway creates it when it starts)"
        : text instanceof Error
          ? `cannot read: ${text.message}`
          : parsed === null
            ? "not a readable PEM certificate"
            : null;
    for (const host of site.hosts) {
      rows.push({
        site: name,
        host,
        source: site.tls.source,
        file: served.file,
        fallback: served.fallback,
        certificate: parsed ? details(parsed, host, now) : null,
        problem,
        renewAt: served.renewAt,
      });
    }
  }
  return rows;
}

interface ServedSource {
  file: string;
  read(): Promise<string | null>;
  fallback: boolean;
  renewAt: Date | null;
}

async function servedFile(store: TlsStore, site: SiteConfig, name: string, now: Date): Promise<ServedSource> {
  const tls = site.tls;
  const generated = async (fallback: boolean): Promise<ServedSource> => {
    const leaf = await store.readLeafCertificate(name);
    return { file: leaf.location, read: async () => leaf.certPem, fallback, renewAt: null };
  };
  switch (tls.source) {
    case "files":
      return { file: tls.cert, read: () => readIfExists(tls.cert), fallback: false, renewAt: null };
    case "generated":
      return generated(false);
    case "acme": {
      // The same choice loadSiteCertificates makes: the stored certificate while valid, else generated.
      const stored = await store.readAcmeCertificate(name, now.getTime());
      if (stored) return { file: store.acmeCertificateLocation(name), read: async () => stored.certPem, fallback: false, renewAt: certificateDueAt(stored, tls.renewBefore) };
      return generated(true);
    }
  }
}

function parseLeaf(pem: string): X509Certificate | null {
  try {
    return new X509Certificate(pem);
  } catch {
    return null;
  }
}

function details(leaf: X509Certificate, host: string, now: Date): CertificateDetails {
  const sans = subjectAltNames(leaf);
  const notAfter = new Date(leaf.validTo);
  return {
    subject: leaf.subject,
    issuer: leaf.issuer,
    sans,
    serial: leaf.serialNumber,
    notBefore: new Date(leaf.validFrom),
    notAfter,
    daysLeft: Math.floor((notAfter.getTime() - now.getTime()) / DAY_MS),
    coversHost: covers(leaf, sans, host),
  };
}

function covers(leaf: X509Certificate, sans: string[], host: string): boolean {
  if (host.startsWith("*.")) return sans.includes(host);
  return (isIP(host) ? leaf.checkIP(host) : leaf.checkHost(host)) !== undefined;
}
