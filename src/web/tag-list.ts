// A repository's page: its tags, newest version first, each with digest, size, creation time and
// platforms. The tag list is the one the registry API answers (backends/lists.ts); each tag shown costs a
// manifest read and, unless its digest was described before, its config (an index: its children's
// manifests and one config), so a page describes TAGS_PER_PAGE tags, a few at a time, within a deadline.
import { ListTooLarge } from "../registry/catalog.js";
import type { PipelineState } from "../pipeline-state.js";
import { sortVersionsNewestFirst } from "./version-sort.js";
import { RepositoryBackend } from "./backend.js";
import { readSummary } from "./image.js";
import { mapInTurns } from "./in-turns.js";
import { browserUrls } from "./routes.js";
import type { TagListModel, TagSummary } from "./view-models.js";
import { chromeOf, mayDelete, userOf, type Viewer } from "./viewer.js";

/** The most tags of a repository the delete confirmation reads for those sharing a digest. */
export const MAX_TAGS_DESCRIBED = 100;
export const TAGS_PER_PAGE = 25;
const CONCURRENT_READS = 4;
/**
 * How long a page spends reading tags: each read has its own timeout, but a registry answering each one
 * just in time would otherwise hold the page for minutes. Reads still running then are aborted, and the
 * tags not read by then are left off the page.
 */
const READING_BUDGET_MS = 15_000;
/** The referrers API's fallback tags (`sha256-<hex>`): shown on their subject's page as its referrers. */
const FALLBACK_TAG = /^sha256-[0-9a-f]{64}$/;

export type TagListing = { ok: true; model: TagListModel } | { ok: false; problem: "unknown" | "tooLarge" | "unavailable" };

/** `page` counts from 1; a page past the last shows no tags. */
export async function tagList(state: PipelineState, viewer: Viewer, repository: string, notice: string | null, page = 1): Promise<TagListing> {
  const { site } = viewer;
  const principal = principalOf(viewer);
  const listed = await state.lists.tags(site, site.upstreams.for(repository), repository, principal).catch((err: unknown) => (err instanceof ListTooLarge ? err : undefined));
  if (listed instanceof ListTooLarge) return { ok: false, problem: "tooLarge" };
  if (listed === undefined) return { ok: false, problem: "unavailable" };
  if (listed === null) return { ok: false, problem: "unknown" };
  const sorted = sortVersionsNewestFirst(listed.filter((tag) => !FALLBACK_TAG.test(tag)));
  const names = sorted.slice((page - 1) * TAGS_PER_PAGE, page * TAGS_PER_PAGE);
  const deadline = AbortSignal.timeout(READING_BUDGET_MS);
  const backend = new RepositoryBackend(state, site, repository, principal).until(deadline);
  const described = await mapInTurns(names, CONCURRENT_READS, READING_BUDGET_MS, async (tag): Promise<TagSummary | null> => {
    const image = await readSummary(backend, tag, state.browser!.summaries).catch(() => null);
    if (!image) return null;
    const { digest, size, created, platforms } = image;
    return { name: tag, digest, size, created, platforms, url: browserUrls.tag(repository, tag) };
  });
  const tags = described.filter((tag): tag is TagSummary => tag !== null && tag !== undefined);
  const nextPageUrl = sorted.length > page * TAGS_PER_PAGE ? `${browserUrls.repository(repository)}?page=${page + 1}` : null;
  return { ok: true, model: { chrome: chromeOf(viewer, notice), repository, tags, canDelete: mayDelete(viewer, repository), nextPageUrl } };
}

export function principalOf(viewer: Viewer): { name: string } | null {
  const user = userOf(viewer);
  return user === null ? null : { name: user };
}
