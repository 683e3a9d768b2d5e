// The start page: the site's repositories the viewer may pull, searched by substring, 100 a page. The list
// is the one /v2/_catalog and docker search read (backends/lists.ts: merged across the site's registries,
// fetched once per lists.cacheFor), filtered per viewer here, never fetched per viewer.
import type { PipelineState } from "../pipeline-state.js";
import { formValues } from "../registry/target.js";
import { browserUrls } from "./routes.js";
import type { RepositoryListModel } from "./view-models.js";
import { chromeOf, mayPull, type Viewer } from "./viewer.js";

export const REPOSITORIES_PER_PAGE = 100;
/** Search text longer than any repository name finds nothing anyway. */
const MAX_QUERY_LENGTH = 256;

/** null: the registry's catalog could not be read. */
export async function repositoryList(state: PipelineState, viewer: Viewer, rawQuery: string): Promise<RepositoryListModel | null> {
  const query = (formValues(rawQuery, "q")?.[0] ?? "").trim().slice(0, MAX_QUERY_LENGTH);
  const last = formValues(rawQuery, "last")?.[0] ?? "";
  const names = await state.lists.repositories(viewer.site).catch(() => null);
  if (names === null) return null;
  const needle = query.toLowerCase();
  const visible = names.filter((name) => name.includes(needle) && mayPull(viewer, name));
  // The catalog is sorted: `last` is where the previous page ended, as in the registry API's paging.
  const start = last === "" ? 0 : visible.findIndex((name) => name > last);
  const page = start < 0 ? [] : visible.slice(start, start + REPOSITORIES_PER_PAGE);
  const more = start >= 0 && start + REPOSITORIES_PER_PAGE < visible.length;
  const search = query === "" ? "" : `q=${encodeURIComponent(query)}`;
  return {
    chrome: chromeOf(viewer),
    query,
    repositories: page.map((name) => ({ name, url: browserUrls.repository(name) })),
    nextPageUrl: more ? `/?${search ? `${search}&` : ""}last=${encodeURIComponent(page[page.length - 1]!)}` : null,
    firstPageUrl: last === "" ? null : `/${search ? `?${search}` : ""}`,
  };
}
