// Functions of a validated configuration. Apart from schema.ts, which builds the zod schema when it is
// loaded: a cluster worker is handed its configuration already validated (cluster/worker.ts), and only
// these, never zod, are loaded for it. What the schema itself validates with is in rules.ts.
import type { BackendConfig, GatewayConfig, HealthCheckConfig, SiteConfig } from "./schema.js";

/** One registry or replicas of one, with their health checks. */
export interface PoolSpec {
  backends: BackendConfig[];
  health: HealthCheckConfig;
}

/** What a site, or one of its routes, forwards to, once validated. */
export type UpstreamSpec =
  | { kind: "pool"; pool: PoolSpec }
  | { kind: "group"; members: { name: string; pool: PoolSpec; repositories: string[] | null }[]; pushTo: string | null };

type ValidatedUpstream = Pick<SiteConfig, "backend" | "backends" | "health" | "group" | "pushTo">;

function poolSpec(fields: Pick<ValidatedUpstream, "backend" | "backends" | "health">): PoolSpec {
  return { backends: fields.backends ?? (fields.backend ? [fields.backend] : []), health: fields.health };
}

/** The upstream a validated site or route names (checkUpstream made sure it names exactly one). */
export function upstreamSpec(fields: ValidatedUpstream): UpstreamSpec {
  if (fields.group) {
    const members = fields.group.map((m) => ({ name: m.name, pool: poolSpec(m), repositories: m.repositories ?? null }));
    return { kind: "group", members, pushTo: fields.pushTo ?? null };
  }
  return { kind: "pool", pool: poolSpec(fields) };
}

function upstreamBackends(spec: UpstreamSpec): BackendConfig[] {
  return spec.kind === "pool" ? spec.pool.backends : spec.members.flatMap((m) => m.pool.backends);
}

/** Every backend a site names: its own upstream's and its routes'. */
export function siteBackends(site: ValidatedUpstream & Pick<SiteConfig, "routes">): BackendConfig[] {
  return [upstreamSpec(site), ...site.routes.map(upstreamSpec)].flatMap(upstreamBackends);
}

/** URL objects are frozen too, though their setters still work: treat a `backend` URL as read-only by convention. */
export function deepFreeze<T>(value: T): Readonly<T> {
  if (typeof value === "object" && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}

/** The tag of a URL in encodeConfig's JSON. */
const URL_KEY = "$url";

/**
 * A validated configuration as JSON text, for a cluster worker (cluster/fleet-data-plane.ts hands it over): URL values
 * (backends) are written as `{"$url": href}` and come back from decodeConfig as URL objects. The worker then
 * uses the configuration the primary validated without loading YAML or zod.
 */
export function encodeConfig(config: Readonly<GatewayConfig>): string {
  return JSON.stringify(config, function (this: Record<string, unknown>, key: string, value: unknown) {
    // `value` went through URL's toJSON already; the holder still has the URL itself.
    const original = this[key];
    return original instanceof URL ? { [URL_KEY]: original.href } : value;
  });
}

/** encodeConfig's text back as the configuration, frozen like loadConfig's. */
export function decodeConfig(text: string): Readonly<GatewayConfig> {
  const config = JSON.parse(text, (_key, value: unknown) => {
    if (typeof value !== "object" || value === null || Array.isArray(value)) return value;
    const keys = Object.keys(value);
    const href = (value as Record<string, unknown>)[URL_KEY];
    return keys.length === 1 && typeof href === "string" ? new URL(href) : value;
  }) as GatewayConfig;
  return deepFreeze(config);
}
