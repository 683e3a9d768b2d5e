// The certificates the HTTPS listener presents, chosen per handshake by SNI.
// Everything is built and validated when the store is constructed or replaced; a handshake only does
// two map lookups. Replacing swaps a single reference, so in-flight connections keep the context they
// negotiated and new handshakes see the new set.
import { X509Certificate } from "node:crypto";
import { readFile } from "node:fs/promises";
import * as tls from "node:tls";
import type { GatewayConfig, SiteConfig } from "../config/schema.js";
import { isLoopback } from "../config/rules.js";
import { keyPairProblem, subjectAltNames, type LocalCa } from "./selfsigned.js";
import type { TlsStore } from "./tls-store.js";
import { withTlsStore } from "./tls-stores.js";
import { HostMatcher } from "../config/host-matcher.js";
import { siteName } from "../config/site-names.js";

export interface SiteCertificate {
  site: string;
  hosts: string[];
  /** PEM; may be a chain, leaf first. */
  certPem: string;
  keyPem: string;
}

export interface CertificateInfo {
  site: string;
  hosts: string[];
  subject: string;
  issuer: string;
  serial: string;
  notBefore: Date;
  notAfter: Date;
  sans: string[];
}

export type TlsMinVersion = "TLSv1.2" | "TLSv1.3";

interface SiteEntry {
  certificate: SiteCertificate;
  context: tls.SecureContext;
  info: CertificateInfo;
}

/** Everything a handshake needs, replaced as one object. */
interface StoreState {
  byHost: HostMatcher<SiteEntry>;
  fallback: SiteEntry;
  entries: SiteEntry[];
}

export class CertificateStore {
  #state: StoreState;
  readonly #minVersion: TlsMinVersion;
  readonly #servers = new Set<tls.Server>();

  constructor(certificates: SiteCertificate[], defaultSite: string, minVersion: TlsMinVersion) {
    this.#minVersion = minVersion;
    this.#state = buildState(certificates, defaultSite, minVersion);
  }

  readonly sniCallback = (servername: string, cb: (err: Error | null, ctx?: tls.SecureContext) => void): void => {
    try {
      cb(null, this.contextFor(servername));
    } catch (error) {
      cb(error instanceof Error ? error : new Error(String(error)));
    }
  };

  contextFor(servername: string | undefined): tls.SecureContext {
    return this.#entryFor(servername).context;
  }

  /**
   * Options for `https.createServer` / `tls.createServer`. The top-level cert and key are the default
   * site's: Node calls the SNI callback only when the client sent a server name.
   */
  serverOptions(): tls.TlsOptions {
    return { SNICallback: this.sniCallback, minVersion: this.#minVersion, ...this.#defaultContextOptions() };
  }

  /** Keeps a server's default (no-SNI) certificate current across `replace`; returns a detach function. */
  attach(server: tls.Server): () => void {
    this.#servers.add(server);
    server.setSecureContext(this.#defaultContextOptions());
    return () => this.#servers.delete(server);
  }

  /** Builds and validates the whole new set before anything changes: a bad certificate throws, the old set stays. */
  /** Throws what replace() would throw for this set, changing nothing (the first phase of a cluster reload). */
  validate(certificates: SiteCertificate[], defaultSite: string): void {
    buildState(certificates, defaultSite, this.#minVersion);
  }

  replace(certificates: SiteCertificate[], defaultSite: string): void {
    const next = buildState(certificates, defaultSite, this.#minVersion);
    this.#state = next;
    for (const server of this.#servers) server.setSecureContext(this.#defaultContextOptions());
  }

  info(): CertificateInfo[] {
    return this.#state.entries.map((entry) => ({ ...entry.info, hosts: [...entry.info.hosts], sans: [...entry.info.sans] }));
  }

  #entryFor(servername: string | undefined): SiteEntry {
    const state = this.#state;
    return (servername ? state.byHost.match(servername) : undefined) ?? state.fallback;
  }

  #defaultContextOptions(): tls.SecureContextOptions {
    const { certPem, keyPem } = this.#state.fallback.certificate;
    return { cert: certPem, key: keyPem, minVersion: this.#minVersion };
  }
}

function buildState(certificates: SiteCertificate[], defaultSite: string, minVersion: TlsMinVersion): StoreState {
  const entries = certificates.map((certificate) => buildEntry(certificate, minVersion));
  const fallback = entries.find((entry) => entry.certificate.site === defaultSite);
  if (!fallback) {
    throw new Error(`default site "${defaultSite}" has no certificate (sites: ${certificates.map((c) => c.site).join(", ") || "none"})`);
  }
  const byHost = new HostMatcher(
    entries.map((entry) => ({ hosts: entry.certificate.hosts, owner: entry })),
    (entry) => entry.certificate.site,
  );
  return { byHost, fallback, entries };
}

function buildEntry(certificate: SiteCertificate, minVersion: TlsMinVersion): SiteEntry {
  const problem = keyPairProblem(certificate.certPem, certificate.keyPem);
  if (problem) throw new Error(`site "${certificate.site}": ${problem}`);
  let context: tls.SecureContext;
  try {
    // OpenSSL fixes the protocol range before the SNI callback runs, so the server's own minVersion
    // (serverOptions / attach) is what enforces it; set here too so each context is correct on its own.
    context = tls.createSecureContext({ cert: certificate.certPem, key: certificate.keyPem, minVersion });
  } catch (error) {
    throw new Error(`site "${certificate.site}": cannot build a TLS context: ${(error as Error).message}`);
  }
  return { certificate, context, info: describe(certificate) };
}

function describe(certificate: SiteCertificate): CertificateInfo {
  const leaf = new X509Certificate(certificate.certPem);
  return {
    site: certificate.site,
    hosts: [...certificate.hosts],
    subject: leaf.subject,
    issuer: leaf.issuer,
    serial: leaf.serialNumber,
    notBefore: new Date(leaf.validFrom),
    notAfter: new Date(leaf.validTo),
    sans: subjectAltNames(leaf),
  };
}

// ---- from configuration ---------------------------------------------------------------------------

/** Hosts clients reach without a name when the gateway listens on loopback or everywhere. */
const LOCAL_NAMES = ["localhost", "127.0.0.1"];

function listensLocally(host: string): boolean {
  return isLoopback(host) || host === "0.0.0.0" || host === "::";
}

/** null: nothing to serve without issuing (adoptOnly). */
type CertificateSource = (site: SiteConfig, name: string) => Promise<SiteCertificate | null>;

export interface CertificateLoadOptions {
  /** Load only these sites (by name); default: every site. */
  sites?: ReadonlySet<string>;
  /** Sites whose generated leaf is replaced even while it is still good (`cert rotate`). */
  renew?: ReadonlySet<string>;
  /** Where generated and ACME certificates are read; default: the configuration's (tls-stores.ts). */
  store?: TlsStore;
  /**
   * Serve only what is stored, issuing nothing: a site without a fitting stored certificate is left out.
   * For picking up another gateway's certificate, which must never make this one issue its own: two
   * gateways whose hosts differ (a rolling configuration change) would otherwise re-issue in turn, forever.
   */
  adoptOnly?: boolean;
}

export async function loadSiteCertificates(
  config: GatewayConfig,
  options: CertificateLoadOptions = {},
): Promise<{ certificates: SiteCertificate[]; ca: (LocalCa & { created: boolean }) | null; issued: string[] }> {
  if (!options.store) return withTlsStore(config, (store) => loadSiteCertificates(config, { ...options, store }));
  const store = options.store;
  let ca: (LocalCa & { created: boolean }) | null = null;
  const issued: string[] = [];
  // Created on first use, so a gateway serving only its own certificates never writes a CA.
  const localCa = async (): Promise<LocalCa> => (ca ??= await store.loadOrCreateCa(config.tls.generated.caValidityDays));

  const generated: CertificateSource = async (site, name) => {
    // A shared store's leaf is one for the whole fleet: its names must not depend on where this gateway
    // listens, or gateways listening differently would each re-issue it for themselves, in turn, forever.
    const local = store.kind === "redis" || listensLocally(config.listen.host);
    const names = [...site.hosts, ...(local ? LOCAL_NAMES : [])];
    if (options.adoptOnly) {
      const stored = await store.readReusableLeaf(await localCa(), name, names);
      return stored && { site: name, hosts: [...site.hosts], certPem: stored.certPem, keyPem: stored.keyPem };
    }
    const leaf = await store.loadOrIssueLeaf(await localCa(), name, names, config.tls.generated.leafValidityDays, {
      force: options.renew?.has(name) ?? false,
    });
    if (leaf.issued) issued.push(name);
    return { site: name, hosts: [...site.hosts], certPem: leaf.certPem, keyPem: leaf.keyPem };
  };

  const sources: Record<SiteConfig["tls"]["source"], CertificateSource> = {
    generated,
    // The stored ACME certificate while it is valid (the ACME manager renews it); until the first one
    // arrives, a generated one, so the site answers from the start (and HTTP-01 can reach the gateway).
    acme: async (site, name) => {
      const stored = await store.readAcmeCertificate(name);
      return stored ? { site: name, hosts: [...site.hosts], certPem: stored.certPem, keyPem: stored.keyPem } : generated(site, name);
    },
    files: async (site, name) => {
      if (site.tls.source !== "files") throw new Error(`site "${name}": expected tls.source "files"`);
      return readCertificateFiles(name, site.hosts, site.tls.cert, site.tls.key);
    },
  };

  const certificates: SiteCertificate[] = [];
  for (const site of config.sites) {
    const name = siteName(site);
    if (options.sites && !options.sites.has(name)) continue;
    const certificate = await sources[site.tls.source](site, name);
    if (certificate) certificates.push(certificate);
  }
  return { certificates, ca, issued };
}

async function readCertificateFiles(site: string, hosts: string[], certFile: string, keyFile: string): Promise<SiteCertificate> {
  const certPem = await readPem(site, "tls.cert", certFile);
  const keyPem = await readPem(site, "tls.key", keyFile);
  const problem = keyPairProblem(certPem, keyPem) ?? secureContextProblem(certPem, keyPem);
  if (problem) throw new Error(`site "${site}": certificate ${certFile} and key ${keyFile}: ${problem}`);
  return { site, hosts: [...hosts], certPem, keyPem };
}

async function readPem(site: string, key: string, file: string): Promise<string> {
  try {
    return await readFile(file, "utf8");
  } catch (error) {
    throw new Error(`site "${site}": cannot read ${key} file ${file}: ${(error as Error).message}`);
  }
}

function secureContextProblem(certPem: string, keyPem: string): string | null {
  try {
    tls.createSecureContext({ cert: certPem, key: keyPem });
    return null;
  } catch (error) {
    return (error as Error).message;
  }
}
