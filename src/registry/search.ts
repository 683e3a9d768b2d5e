// `docker search HOST/term`: the v1 search API, which a v2 registry does not have (docker prints
// "Unexpected status code 404"). The gateway answers it from the backend's catalog, fetched with the
// gateway's own backend credentials, cached briefly per site, and filtered to the repositories the caller
// may pull — a search never reveals a name the rules hide.
import http, { type IncomingMessage } from "node:http";
import https from "node:https";
import type { Site } from "../sites.js";

export interface SearchResult {
  name: string;
  description: string;
  star_count: number;
  is_official: boolean;
  is_automated: boolean;
}

export interface SearchPage {
  num_results: number;
  num_pages: number;
  page: number;
  page_size: number;
  query: string;
  results: SearchResult[];
}

/** A catalog this long is already more than any search page needs; beyond it the rest is not read. */
const MAX_REPOSITORIES = 100_000;
const CATALOG_PAGE = 1000;
const DEFAULT_PAGE_SIZE = 25;
const MAX_PAGE_SIZE = 100;
const CATALOG_TIMEOUT_MS = 10_000;

export type AgentFor = (backend: URL) => http.Agent;

export class CatalogSearch {
  private readonly cache = new Map<Site, { expiresAt: number; repositories: Promise<string[]> }>();

  constructor(
    private readonly agentFor: AgentFor,
    private readonly ttlMs = 10_000,
  ) {}

  /** The page of results for `query` (the raw query string: q, n, page) that `user` may see. */
  async search(site: Site, user: string | null, rawQuery: string): Promise<SearchPage> {
    const params = new URLSearchParams(rawQuery);
    const term = (params.get("q") ?? "").trim().toLowerCase();
    const pageSize = clamp(Number(params.get("n") ?? DEFAULT_PAGE_SIZE), 1, MAX_PAGE_SIZE, DEFAULT_PAGE_SIZE);
    const page = clamp(Number(params.get("page") ?? 1), 1, Number.MAX_SAFE_INTEGER, 1);
    const visible = (await this.repositories(site)).filter(
      (name) => name.includes(term) && (site.auth === null || site.auth.mayPull(user, name)),
    );
    const results = visible.slice((page - 1) * pageSize, page * pageSize).map((name) => ({
      name,
      description: "",
      star_count: 0,
      is_official: false,
      is_automated: false,
    }));
    return {
      num_results: visible.length,
      num_pages: Math.max(1, Math.ceil(visible.length / pageSize)),
      page,
      page_size: pageSize,
      query: params.get("q") ?? "",
      results,
    };
  }

  private repositories(site: Site): Promise<string[]> {
    const cached = this.cache.get(site);
    if (cached && cached.expiresAt > Date.now()) return cached.repositories;
    const repositories = this.fetchCatalog(site).then((names) => [...new Set(names)].sort());
    const entry = { expiresAt: Date.now() + this.ttlMs, repositories };
    this.cache.set(site, entry);
    // A failure is not remembered: the next search asks again (unless a newer fetch already replaced it).
    repositories.catch(() => {
      if (this.cache.get(site) === entry) this.cache.delete(site);
    });
    return repositories;
  }

  private async fetchCatalog(site: Site): Promise<string[]> {
    const authorization = site.backendAuth
      ? await site.backendAuth.authorizationFor([{ type: "registry", name: "catalog", action: "*" }], null)
      : undefined;
    const names: string[] = [];
    let next: string | null = `/v2/_catalog?n=${CATALOG_PAGE}`;
    // Pages are bounded too: a backend repeating an empty page with the same Link must not loop forever.
    for (let pages = 0; next && names.length < MAX_REPOSITORIES && pages <= MAX_REPOSITORIES / CATALOG_PAGE; pages++) {
      const { body, link } = await this.getJson(site.backend, next, authorization);
      const page = (body as { repositories?: unknown }).repositories;
      if (!Array.isArray(page)) throw new Error("the backend's catalog has no repositories list");
      names.push(...page.filter((name): name is string => typeof name === "string"));
      next = nextLink(link);
    }
    return names;
  }

  private getJson(backend: URL, path: string, authorization: string | undefined): Promise<{ body: unknown; link: string | undefined }> {
    const client = backend.protocol === "https:" ? https : http;
    return new Promise((resolve, reject) => {
      const request = client.get(
        new URL(path, backend),
        { agent: this.agentFor(backend), headers: authorization ? { authorization } : {}, timeout: CATALOG_TIMEOUT_MS },
        (response: IncomingMessage) => {
          const chunks: Buffer[] = [];
          response.on("data", (chunk: Buffer) => chunks.push(chunk));
          response.on("error", reject);
          response.on("end", () => {
            if (response.statusCode !== 200) return reject(new Error(`the backend's catalog answered ${response.statusCode}`));
            try {
              const link = response.headers.link;
              resolve({ body: JSON.parse(Buffer.concat(chunks).toString("utf8")), link: Array.isArray(link) ? link.join(", ") : link });
            } catch (err) {
              reject(err as Error);
            }
          });
        },
      );
      request.on("timeout", () => request.destroy(new Error("the backend's catalog did not answer in time")));
      request.on("error", reject);
    });
  }
}

/** `</v2/_catalog?last=x&n=1000>; rel="next"` → the path, or null. Only same-origin paths are followed. */
function nextLink(link: string | undefined): string | null {
  const match = link ? /<(\/v2\/_catalog\?[^>]*)>\s*;\s*rel="?next"?/.exec(link) : null;
  return match ? match[1]! : null;
}

function clamp(value: number, min: number, max: number, fallback: number): number {
  return Number.isInteger(value) ? Math.min(max, Math.max(min, value)) : fallback;
}
