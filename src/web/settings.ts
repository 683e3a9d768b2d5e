// A site's browser settings with their defaults (config: sites[].browser).
import type { SiteConfig } from "../config/schema.js";

export const DEFAULT_SESSION_LIFETIME_MS = 8 * 3600_000;

export function browserEnabled(site: Pick<SiteConfig, "browser">): boolean {
  return site.browser?.enabled ?? true;
}

export function sessionLifetimeMs(site: Pick<SiteConfig, "browser">): number {
  return site.browser?.sessionLifetime ?? DEFAULT_SESSION_LIFETIME_MS;
}
