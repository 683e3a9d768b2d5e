// `docker search HOST/term`: the v1 search API, which a v2 registry does not have (docker prints
// "Unexpected status code 404"). The gateway answers it from the site's catalog (merged across its
// registries and reused for lists.cacheFor, backends/lists.ts), fetched with the gateway's own backend
// credentials, and filtered to the repositories the caller may pull — a search never reveals a name the
// rules hide.
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

const DEFAULT_PAGE_SIZE = 25;
const MAX_PAGE_SIZE = 100;

export type RepositoriesOf = (site: Site) => Promise<string[]>;

export class CatalogSearch {
  constructor(private readonly repositoriesOf: RepositoriesOf) {}

  /** The page of results for `query` (the raw query string: q, n, page) that `user` may see. */
  async search(site: Site, user: string | null, rawQuery: string): Promise<SearchPage> {
    const params = new URLSearchParams(rawQuery);
    const term = (params.get("q") ?? "").trim().toLowerCase();
    const pageSize = clamp(Number(params.get("n") ?? DEFAULT_PAGE_SIZE), 1, MAX_PAGE_SIZE, DEFAULT_PAGE_SIZE);
    const page = clamp(Number(params.get("page") ?? 1), 1, Number.MAX_SAFE_INTEGER, 1);
    // Filtered here, per caller, after the shared (cached) catalog.
    const visible = (await this.repositoriesOf(site)).filter(
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
}

function clamp(value: number, min: number, max: number, fallback: number): number {
  return Number.isInteger(value) ? Math.min(max, Math.max(min, value)) : fallback;
}
