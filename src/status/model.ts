// What the status panel shows, built from the control plane's view (configuration in service, certificates
// served) and the data plane's (readiness, metrics). The JSON form is this model as it is.
import { probeReadiness, type ProbedBackend, type ReadinessSource } from "../admin.js";
import type { BackendResolver } from "../backends/resolve.js";
import { siteBackends } from "../config/helpers.js";
import type { GatewayConfig, SiteConfig } from "../config/schema.js";
import { siteName } from "../config/site-names.js";
import { certificatesDue } from "../tls/expiry.js";
import type { CertificateInfo } from "../tls/store.js";
import type { TrafficRates, TrafficStatus } from "./traffic.js";

const DAY_MS = 86_400_000;

export interface SiteStatus {
  name: string;
  hosts: string[];
  auth: SiteConfig["auth"]["type"];
  /** Origins of every backend the site or its routes forward to. */
  backends: string[];
}

export interface CertificateStatus {
  site: string;
  hosts: string[];
  /** The issuer's common name (or its whole name when it has none). */
  issuer: string;
  serial: string;
  notAfter: string;
  daysLeft: number;
  /** due: past the point where renewal should have replaced it (the expiry warning's rule). */
  state: "ok" | "due" | "expired";
}

export interface BackendStatus {
  backend: string;
  healthy: boolean;
  reachable: boolean;
  /** The answer to GET /v2/ now: its status, or why there was none. */
  answer: string;
  outstanding: number;
}

export interface PoolStatus {
  pool: string;
  healthy: number;
  reachable: number;
  total: number;
  backends: BackendStatus[];
}

export interface StatusModel {
  generatedAt: string;
  /** What /readyz would answer. */
  ready: boolean;
  listening: boolean;
  sites: SiteStatus[];
  certificates: CertificateStatus[];
  pools: PoolStatus[];
  traffic: TrafficStatus;
}

export interface StatusSources {
  config(): GatewayConfig;
  certificates(): readonly CertificateInfo[];
  /** Where the backends of `config` listen (managed ones resolved to their running registry). */
  resolver(config: GatewayConfig): BackendResolver;
  readiness: ReadinessSource;
  /** The exposition /metrics serves; null when metrics are disabled. */
  exposition: (() => Promise<string>) | null;
}

export async function buildStatus(sources: StatusSources, traffic: TrafficRates, now = new Date()): Promise<StatusModel> {
  const config = sources.config();
  const sites = config.sites.map((site) => siteStatus(site, sources.resolver(config)));
  const [readiness, rates] = await Promise.all([
    probeReadiness(sources.readiness),
    sources.exposition ? traffic.read(sources.exposition, sites.map((s) => s.name), now.getTime()) : ({ metrics: "disabled" } as const),
  ]);
  return {
    generatedAt: now.toISOString(),
    ready: readiness.ready,
    listening: readiness.listening,
    sites,
    certificates: certificateStatus(sources.certificates(), config, now),
    pools: poolStatus(readiness.backends),
    traffic: rates,
  };
}

function siteStatus(site: SiteConfig, resolve: BackendResolver): SiteStatus {
  const origins = siteBackends(site).map((backend) => {
    try {
      return resolve(backend).origin;
    } catch {
      return "managed (not running)";
    }
  });
  return { name: siteName(site), hosts: [...site.hosts], auth: site.auth.type, backends: [...new Set(origins)] };
}

function certificateStatus(served: readonly CertificateInfo[], config: GatewayConfig, now: Date): CertificateStatus[] {
  const due = new Set(certificatesDue(served, config, now).map((warning) => `${warning.site}\n${warning.serial}`));
  return served.map((info) => {
    const daysLeft = Math.floor((info.notAfter.getTime() - now.getTime()) / DAY_MS);
    const expired = info.notAfter <= now;
    return {
      site: info.site,
      hosts: [...info.hosts],
      issuer: commonName(info.issuer),
      serial: info.serial,
      notAfter: info.notAfter.toISOString(),
      daysLeft,
      state: expired ? "expired" : due.has(`${info.site}\n${info.serial}`) ? "due" : "ok",
    };
  });
}

function poolStatus(backends: readonly ProbedBackend[]): PoolStatus[] {
  const pools = new Map<string, PoolStatus>();
  for (const b of backends) {
    let pool = pools.get(b.pool);
    if (!pool) pools.set(b.pool, (pool = { pool: b.pool, healthy: 0, reachable: 0, total: 0, backends: [] }));
    pool.total++;
    if (b.healthy) pool.healthy++;
    if (b.reachable) pool.reachable++;
    const answer = b.reachable ? `HTTP ${b.status}` : b.error;
    pool.backends.push({ backend: b.backend, healthy: b.healthy, reachable: b.reachable, answer, outstanding: b.outstanding });
  }
  return [...pools.values()];
}

/** X.509 names print as `CN=…\nO=…` lines: the CN is what people recognise. */
function commonName(name: string): string {
  const cn = name.split("\n").find((part) => part.startsWith("CN="));
  return cn ? cn.slice(3) : name.replaceAll("\n", ", ");
}
