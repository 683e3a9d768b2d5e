// How configuration names its sites. Pure functions of a validated configuration, apart from sites.ts (the
// runtime site map) so that whoever only needs a site's name (auth, TLS, the cluster primary, the CLI)
// does not load the site map and the upstreams behind it.
import type { GatewayConfig, SiteConfig } from "./schema.js";

/** A site's name: the one it is given, else its first host. */
export function siteName(site: SiteConfig): string {
  return site.name ?? site.hosts[0]!;
}

/**
 * The site answering requests and handshakes that name no site of ours (an unknown or absent SNI): the
 * one marked default, else the first.
 */
export function defaultSite(config: Pick<GatewayConfig, "sites">): SiteConfig {
  return config.sites.find((site) => site.default) ?? config.sites[0]!;
}

export function defaultSiteName(config: Pick<GatewayConfig, "sites">): string {
  return siteName(defaultSite(config));
}
