// The repository and tag lists of a site that fronts several registries: every upstream's
// catalog, each filtered to the names that route to it (a name under a route's prefix is served by that
// route, whatever another registry holds under it) and, in a group, to the names each member may answer
// for (namespaces.ts), and a group's tags merged across the members that may answer for the name. A
// member that fails is left out and counted; only when none answers does the list fail.
import type http from "node:http";
import type { Principal } from "../auth/types.js";
import type { Access } from "../registry/routes.js";
import type { Logger } from "../observe/log.js";
import { fetchRepositories, fetchTags, ListTooLarge, mergeSorted, type ListSource } from "../registry/catalog.js";
import type { Site } from "../sites.js";
import type { ManagedCredentials } from "./managed-auth.js";
import type { BackendPool } from "./pool.js";
import { answersFor, membersFor } from "./namespaces.js";
import { RecentLists } from "./recent-lists.js";
import { type GroupMember, type Upstream } from "./upstream.js";

interface NamedPool {
  /** The group member; null for a pool that is the whole upstream. */
  member: GroupMember | null;
  pool: BackendPool;
}

function namedPools(upstream: Upstream): NamedPool[] {
  return upstream.kind === "pool" ? [{ member: null, pool: upstream.pool }] : upstream.members.map((member) => ({ member, pool: member.pool }));
}

/**
 * Tags held in a site's cached tag lists at most (each list also weighs one for its name, so empty ones count):
 * a few megabytes, where a bound on the number of lists alone let each hold MAX_NAMES tags per member.
 */
const MAX_CACHED_TAGS = 200_000;
/**
 * One registry's tag lists read at once, per process: each is read whole (up to MAX_TAG_LIST_BYTES) before it is
 * paged and is never shared, so a burst of list requests waits its turn instead of each holding that much.
 */
const MAX_TAG_READS = 8;

/** The client a tag list is read for, when the read is that client's alone (one registry's list). */
export interface ListClient {
  userAgent?: string;
  /** Told of each registry read: its origin and how long the whole read took (for metrics and the access log). */
  read?(backend: string, ms: number): void;
}

export class SiteLists {
  /**
   * Merged catalogs, per site. Each costs every member's whole catalog (up to MAX_NAMES names, following every
   * Link page), so one fetch serves the requests in flight and those of the next `lists.cacheFor`: a client
   * paging `/v2/_catalog?n=1`, or many looping on it, walks each member once per period, not once per page.
   * What a caller may see is decided by the caller's own request (the catalog needs `catalog`, docker search
   * filters by pull), never by whose request fetched the list.
   */
  readonly #catalogs: RecentLists<Site, string[]>;
  /** A group's merged tag lists, per site and repository; only asked for after pull was authorized. */
  readonly #tags = new Map<Site, RecentLists<string, string[] | null>>();
  #tagReads = 0;
  readonly #waitingForRead: (() => void)[] = [];

  constructor(
    private readonly agentFor: (url: URL) => http.Agent,
    private readonly logger: Logger,
    /** The registries the gateway runs get its token for them, no other registry does. */
    private readonly managed: ManagedCredentials | null = null,
    /** How long a fetched list is reused (lists.cacheFor); 0: only by requests arriving while it is fetched. */
    private readonly cacheMs = 0,
    /** Where a group member skipped for an error is counted (the process's metrics). */
    private readonly events: { groupPassedOver(site: string, member: string, reason: "error"): void } | null = null,
  ) {
    // One catalog per configured site at most, and a catalog is what every page of /v2/_catalog needs:
    // bounded by the configuration and by MAX_NAMES per member, not by a weight.
    this.#catalogs = new RecentLists(cacheMs, Number.MAX_SAFE_INTEGER, () => 1);
  }

  /** Every repository the site serves, sorted. */
  repositories(site: Site): Promise<string[]> {
    return this.#catalogs.get(site, () => this.#fetchRepositories(site));
  }

  async #fetchRepositories(site: Site): Promise<string[]> {
    const authorization = await this.authorizations(site, [{ type: "registry", name: "catalog", action: "*" }], null);
    const settled = await Promise.allSettled(
      site.upstreams.all().map(async (upstream) => {
        const answers = await this.fromMembers(site, namedPools(upstream), (source) => fetchRepositories(source), authorization);
        // A member lists only the names it may answer for: a cache's copy of a name pushTo owns is not the site's.
        return answers.flatMap(({ member, value }) =>
          value.filter((name) => site.upstreams.for(name) === upstream && (member === null || upstream.kind !== "group" || answersFor(upstream, member, name))),
        );
      }),
    );
    const lists = settled.flatMap((result) => (result.status === "fulfilled" ? [result.value] : []));
    if (lists.length === 0) throw new Error("no registry of this site answered with its catalog");
    return mergeSorted(lists);
  }

  /**
   * A repository's tags, sorted: across a group's members, or of one registry (a pool); null when no member
   * knows the repository. Rejects with ListTooLarge when no member answered and one listed more than the
   * gateway reads (catalog.ts MAX_NAMES, MAX_TAG_LIST_BYTES). `userAgent`: the asking client's, sent with the read.
   */
  tags(site: Site, upstream: Upstream, name: string, principal: Principal | null, client: ListClient = {}): Promise<string[] | null> {
    // One registry's list is read for each request and never kept: a tag pushed is listed at once, as when
    // the registry answered the list itself, and the registry sees one read per client request, with its
    // User-Agent, as it saw the request before (what its access log tells an operator stays true).
    if (upstream.kind === "pool") return this.#inTurn(() => this.#fetchTags(site, upstream, name, principal, client));
    let recent = this.#tags.get(site);
    if (!recent) this.#tags.set(site, (recent = new RecentLists(this.cacheMs, MAX_CACHED_TAGS, (tags) => 1 + (tags?.length ?? 0))));
    // The upstream is the one the site routes `name` to: the name alone is the key; a shared read is no one
    // client's, so it carries no User-Agent and reports no read.
    return recent.get(name, () => this.#fetchTags(site, upstream, name, principal, {}));
  }

  /** Runs `read` once fewer than MAX_TAG_READS run; a finished one hands its turn to the next waiting. */
  async #inTurn<T>(read: () => Promise<T>): Promise<T> {
    if (this.#tagReads < MAX_TAG_READS) this.#tagReads++;
    else await new Promise<void>((resolve) => this.#waitingForRead.push(resolve));
    try {
      return await read();
    } finally {
      const next = this.#waitingForRead.shift();
      if (next) next();
      else this.#tagReads--;
    }
  }

  async #fetchTags(site: Site, upstream: Upstream, name: string, principal: Principal | null, client: ListClient): Promise<string[] | null> {
    // Only the members that may answer for the name are asked: never a cache for a name pushTo owns.
    const pools = upstream.kind === "pool" ? namedPools(upstream) : membersFor(upstream, name).members.map((member) => ({ member, pool: member.pool }));
    if (pools.length === 0) return null;
    const authorization = await this.authorizations(site, [{ type: "repository", name, action: "pull" }], principal);
    const read = async (source: ListSource) => {
      const started = performance.now();
      try {
        return await fetchTags({ ...source, userAgent: client.userAgent }, name);
      } finally {
        client.read?.(source.backend.origin, performance.now() - started);
      }
    };
    const lists = await this.fromMembers(site, pools, read, authorization);
    const found = lists.map(({ value }) => value).filter((tags): tags is string[] => tags !== null);
    return found.length ? mergeSorted(found) : null;
  }

  /** The Authorization each registry gets for `accesses`: a managed one the gateway's token for it, others the site's backendAuth. */
  private async authorizations(site: Site, accesses: Access[], principal: Principal | null): Promise<(backend: URL) => string | undefined> {
    const [configured, managed] = await Promise.all([
      site.backendAuth?.authorizationFor(accesses, principal),
      this.managed?.token(accesses, principal),
    ]);
    return (backend) => (this.managed?.covers(backend) ? managed : configured);
  }

  /** One answer per member (a replica of each pool); failures are skipped unless every member fails. */
  private async fromMembers<T>(
    site: Site,
    pools: readonly NamedPool[],
    read: (source: ListSource) => Promise<T>,
    authorization: (backend: URL) => string | undefined,
  ): Promise<{ member: GroupMember | null; value: T }[]> {
    const settled = await Promise.allSettled(
      pools.map(({ pool }) => {
        const replica = pool.pick()!;
        return read({ backend: replica.url, agent: this.agentFor(replica.url), authorization: authorization(replica.url) });
      }),
    );
    const answers: { member: GroupMember | null; value: T }[] = [];
    settled.forEach((result, index) => {
      const { member, pool } = pools[index]!;
      if (result.status === "fulfilled") return answers.push({ member, value: result.value });
      this.logger.warn({ site: site.name, pool: pool.name, err: (result.reason as Error).message }, "a registry's list could not be read: left out");
      if (member !== null) this.events?.groupPassedOver(site.name, member.name, "error");
    });
    if (answers.length === 0) {
      // Too long to page is not an outage: say so rather than that nothing answered.
      const tooLarge = settled.find((result) => result.status === "rejected" && result.reason instanceof ListTooLarge);
      throw tooLarge ? (tooLarge as PromiseRejectedResult).reason : new Error("no registry of this site answered with its list");
    }
    return answers;
  }
}
