// Host header → site. Built once per configuration; lookups are a map hit (or one wildcard probe).
import http from "node:http";
import type { SiteSecurity } from "./auth/build.js";
import { configuredBackend } from "./backends/resolve.js";
import { buildSiteUpstreams, type SiteUpstreams } from "./backends/upstream.js";
import { HostMatcher } from "./config/host-matcher.js";
import type { GatewayConfig, SiteConfig } from "./config/schema.js";
import { defaultSite, siteName } from "./config/site-names.js";
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
  private readonly byHost: HostMatcher<Site>;
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
    this.byHost = new HostMatcher(this.sites.map((site) => ({ hosts: site.hosts, owner: site })), (site) => site.name);
    this.defaultSite = this.sites[config.sites.indexOf(defaultSite(config))]!;
  }

  lookup(hostHeader: string | undefined): SiteLookup {
    if (hostHeader === undefined || hostHeader.trim() === "") return { ok: false, reason: "missing" };
    const host = parseHostHeader(hostHeader);
    if (!host) return { ok: false, reason: "malformed" };
    const site = this.byHost.match(host.hostname);
    if (!site) return { ok: false, reason: "unknown", hostname: host.hostname };
    return { ok: true, site, host };
  }
}
