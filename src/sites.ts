// Host header → site. Built once per configuration; lookups are a map hit (or one wildcard probe).
import http from "node:http";
import type { SiteSecurity } from "./auth/build.js";
import { buildSiteUpstreams, type SiteUpstreams } from "./backends/upstream.js";
import type { BackendConfig, GatewayConfig, SiteConfig } from "./config/schema.js";
import { createLogger } from "./observe/log.js";

export interface Site extends SiteSecurity {
  name: string;
  hosts: readonly string[];
  /** Where its repositories are served: the site's own upstream and its prefix routes. */
  upstreams: SiteUpstreams;
  config: SiteConfig;
}

/** A site without auth: what every site is unless the gateway built it some. */
const OPEN: SiteSecurity = { auth: null, backendAuth: null, passClientAuthorization: false };

export interface HostHeader {
  /** Lower-cased, without port or trailing dot; IPv6 without brackets. */
  hostname: string;
  /** `hostname[:port]` as the client addressed us, the authority of our external URL. */
  authority: string;
}

export type SiteLookup =
  | { ok: true; site: Site; host: HostHeader }
  | { ok: false; reason: "missing" | "malformed" | "unknown"; hostname?: string };

const HOST_HEADER = /^(?:\[([0-9a-f:.]+)\]|([a-z0-9._-]+))(?::(\d{1,5}))?$/;

export function siteName(site: SiteConfig): string {
  return site.name ?? site.hosts[0]!;
}

/** The site answering handshakes with an unknown or absent SNI: the one marked default, else the first. */
export function defaultSiteName(config: GatewayConfig): string {
  return siteName(config.sites.find((s) => s.default) ?? config.sites[0]!);
}

/** A backend's URL. A managed backend has one only once its registry runs (backends/managed.ts). */
export type BackendResolver = (backend: BackendConfig) => URL;

export const configuredBackend: BackendResolver = (backend) => {
  if (backend instanceof URL) return backend;
  throw new Error(`a managed backend (storage ${backend.managed.storage ?? "default"}) has not been started`);
};

/** Builds a site's upstreams; the gateway's own starts health checks and shares its backend agents. */
export type UpstreamsBuilder = (name: string, site: SiteConfig) => SiteUpstreams;

/** Upstreams with no health checks running and a private agent: for tools and tests that only route. */
const idleUpstreams: UpstreamsBuilder = (name, site) =>
  buildSiteUpstreams(name, site, { resolve: configuredBackend, agentFor: () => http.globalAgent, logger: createLogger({ level: "silent", format: "json" }) });

export function parseHostHeader(value: string): HostHeader | null {
  const match = HOST_HEADER.exec(value.trim().toLowerCase());
  if (!match) return null;
  const port = match[3];
  if (port !== undefined && Number(port) > 65535) return null;
  const v6 = match[1];
  const hostname = v6 ?? match[2]!.replace(/\.$/, "");
  if (hostname === "") return null;
  const bracketed = v6 ? `[${v6}]` : hostname;
  return { hostname, authority: port ? `${bracketed}:${port}` : bracketed };
}

export class SiteMap {
  private readonly exact = new Map<string, Site>();
  private readonly wildcard = new Map<string, Site>();
  readonly sites: readonly Site[];
  readonly defaultSite: Site;

  /** `security[i]`: the auth of config.sites[i], built at load (auth/build.ts). */
  constructor(config: GatewayConfig, security: readonly SiteSecurity[] = [], upstreams: UpstreamsBuilder = idleUpstreams) {
    this.sites = config.sites.map((s, index) => ({
      name: siteName(s),
      hosts: s.hosts,
      upstreams: upstreams(siteName(s), s),
      config: s,
      ...(security[index] ?? OPEN),
    }));
    for (const site of this.sites) {
      for (const host of site.hosts) {
        if (host.startsWith("*.")) this.wildcard.set(host.slice(2), site);
        else this.exact.set(host, site);
      }
    }
    this.defaultSite = this.sites.find((s) => s.config.default) ?? this.sites[0]!;
  }

  lookup(hostHeader: string | undefined): SiteLookup {
    if (hostHeader === undefined || hostHeader.trim() === "") return { ok: false, reason: "missing" };
    const host = parseHostHeader(hostHeader);
    if (!host) return { ok: false, reason: "malformed" };
    const site = this.exact.get(host.hostname) ?? this.wildcardMatch(host.hostname);
    if (!site) return { ok: false, reason: "unknown", hostname: host.hostname };
    return { ok: true, site, host };
  }

  private wildcardMatch(hostname: string): Site | undefined {
    const dot = hostname.indexOf(".");
    return dot > 0 ? this.wildcard.get(hostname.slice(dot + 1)) : undefined;
  }
}
