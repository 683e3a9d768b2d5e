// What a site forwards to, built once per configuration: one registry or replicas of one (a
// pool), or a group of those tried in order (Nexus's group), for the site as a whole and for each
// repository-prefix route. Which upstream a repository goes to is decided here, and only here.
import type http from "node:http";
import { siteBackends, upstreamSpec, type PoolSpec, type UpstreamSpec } from "../config/helpers.js";
import type { SiteConfig } from "../config/schema.js";
import type { Logger } from "../observe/log.js";
import type { LeaseSet } from "../process/resources.js";
import type { BackendResolver } from "./resolve.js";
import { BackendPool } from "./pool.js";
import { compileRepositoryPatterns, type RepositoryMatcher } from "../auth/glob.js";

export interface PoolUpstream {
  kind: "pool";
  pool: BackendPool;
}

export interface GroupMember {
  name: string;
  pool: BackendPool;
  /** The names it declares (`repositories`); null: none declared (see namespaces.ts for what that means). */
  repositories: RepositoryMatcher | null;
}

export interface GroupUpstream {
  kind: "group";
  members: readonly GroupMember[];
  /** Where uploads, manifest PUTs and DELETEs go; null: the group is read-only. */
  pushTo: GroupMember | null;
}

export type Upstream = PoolUpstream | GroupUpstream;

export interface UpstreamDeps {
  /** A backend's URL (a managed one's is its running registry's). */
  resolve: BackendResolver;
  agentFor(url: URL): http.Agent;
  logger: Logger;
  onHealthChange?(pool: string, member: string, healthy: boolean): void;
  /** Where replicas' health and load are kept across reloads (pool.ts PoolDeps). */
  resources?: LeaseSet;
}

export class SiteUpstreams {
  /** Longest prefix first, so the first match is the one that wins. */
  readonly routes: readonly { prefix: string; upstream: Upstream }[];

  constructor(
    readonly fallback: Upstream,
    routes: readonly { prefix: string; upstream: Upstream }[],
  ) {
    this.routes = [...routes].sort((a, b) => b.prefix.length - a.prefix.length);
  }

  /** The upstream serving `repository` (none: the site's own, e.g. for /v2/ and the catalog). */
  for(repository: string | undefined): Upstream {
    if (repository !== undefined) {
      for (const route of this.routes) if (repository.startsWith(route.prefix)) return route.upstream;
    }
    return this.fallback;
  }

  /** Every upstream once: the site's own, then each route's. */
  all(): Upstream[] {
    return [this.fallback, ...this.routes.map((route) => route.upstream)];
  }

  pools(): BackendPool[] {
    return this.all().flatMap(poolsOf);
  }

  /**
   * The catalog is the gateway's to answer when it spans several registries (routes, or a group); a site
   * with one registry or replicas of one forwards it as any other request.
   */
  get mergesCatalog(): boolean {
    return this.routes.length > 0 || this.fallback.kind === "group";
  }

  /**
   * Health checks run for pools of replicas, where they decide the choice. One backend alone is tried
   * whatever its health (as a pool in panic mode would), so it is not polled: its registry's access log
   * stays the clients' requests, and /readyz probes it when asked.
   */
  start(): void {
    for (const pool of this.pools()) if (isReplicated(pool)) pool.start();
  }

  stop(): void {
    for (const pool of this.pools()) pool.stop();
  }
}

/** More than one backend: health checks, balancing, retries and upload affinity apply. */
export function isReplicated(pool: BackendPool): boolean {
  return pool.members.length > 1;
}

export function poolsOf(upstream: Upstream): BackendPool[] {
  return upstream.kind === "pool" ? [upstream.pool] : upstream.members.map((member) => member.pool);
}

/**
 * Builds a site's upstreams; health checks start with start(). Pool names identify upload sessions across
 * gateways sharing Redis, so they come from the configuration only: `site`, `site/member`,
 * `site:prefix`, `site:prefix/member`.
 */
export function buildSiteUpstreams(siteName: string, site: SiteConfig, deps: UpstreamDeps): SiteUpstreams {
  const build = (spec: UpstreamSpec, name: string): Upstream => {
    if (spec.kind === "pool") return { kind: "pool", pool: buildPool(name, spec.pool, deps) };
    const members = spec.members.map((member) => ({
      name: member.name,
      pool: buildPool(`${name}/${member.name}`, member.pool, deps),
      repositories: member.repositories && compileRepositoryPatterns(member.repositories),
    }));
    return { kind: "group", members, pushTo: members.find((member) => member.name === spec.pushTo) ?? null };
  };
  return new SiteUpstreams(
    build(upstreamSpec(site), siteName),
    site.routes.map((route) => ({ prefix: route.prefix, upstream: build(upstreamSpec(route), `${siteName}:${route.prefix}`) })),
  );
}

function buildPool(name: string, spec: PoolSpec, deps: UpstreamDeps): BackendPool {
  const health = {
    intervalMs: spec.health.interval,
    timeoutMs: spec.health.timeout,
    unhealthyThreshold: spec.health.unhealthyThreshold,
    healthyThreshold: spec.health.healthyThreshold,
  };
  return new BackendPool(name, spec.backends.map(deps.resolve), health, deps);
}

/** Every backend URL of a site, resolved (for logs). */
export function siteBackendOrigins(site: SiteConfig, resolve: BackendResolver): string[] {
  return [...new Set(siteBackends(site).map((backend) => resolve(backend).origin))];
}
