// Which sites use ACME. Apart from acme.ts so that a gateway without ACME sites never loads acme-client
// (and the axios, node-forge, … behind it): about 10 MB of RSS.
import type { GatewayConfig } from "../config/schema.js";
import { siteName } from "../config/site-names.js";
import type { AcmeSite } from "./acme-orderer.js";

export function acmeSites(config: GatewayConfig): AcmeSite[] {
  return config.sites.flatMap((site) => (site.tls.source === "acme" ? [{ name: siteName(site), hosts: [...site.hosts], tls: site.tls }] : []));
}

/** The names of the sites whose certificates come from ACME. */
export function acmeSiteNames(config: GatewayConfig): ReadonlySet<string> {
  return new Set(acmeSites(config).map((site) => site.name));
}

let acmeModule: typeof import("./acme.js") | null = null;

/** Loads acme.js once a configuration has an ACME site; createAcmeManager is then at loadAcme.loaded(). */
export async function loadAcme(config: GatewayConfig): Promise<void> {
  if (acmeSites(config).length) acmeModule ??= await import("./acme.js");
}
loadAcme.loaded = (): typeof import("./acme.js") | null => acmeModule;
