// Deleting a tag. distribution 2.8 deletes manifests, not tags: the tag's digest is resolved and its
// manifest deleted, which removes every tag on that digest, so the confirmation names them first. Only a
// signed-in user with `delete` on the repository is offered it, and the POST checks everything again: its
// origin, the session's CSRF token, the rule, and which registry takes the repository's writes.
import type { PipelineState } from "../pipeline-state.js";
import type { RequestContext } from "../request-context.js";
import { formValues } from "../registry/target.js";
import { isValidRepositoryName } from "../registry/routes.js";
import { isValidDigest } from "../registry/digest.js";
import { RepositoryBackend } from "./backend.js";
import type { ErrorPage } from "./error-page.js";
import { readDigest } from "./image.js";
import { fromSameOrigin, readForm, redirect, sendPage } from "./respond.js";
import { browserUrls } from "./routes.js";
import { mapInTurns } from "./in-turns.js";
import { principalOf, MAX_TAGS_DESCRIBED } from "./tag-list.js";
import { renderDeleteConfirm } from "./views/index.js";
import { chromeOf, mayDelete, type Viewer } from "./viewer.js";

const TAG = /^[\w][\w.-]{0,127}$/;
const FORBIDDEN = "You may not delete tags of this repository.";

export async function confirmDelete(ctx: RequestContext, state: PipelineState, viewer: Viewer, rawQuery: string, fail: ErrorPage): Promise<void> {
  const repository = formValues(rawQuery, "repository")?.[0] ?? "";
  const tag = formValues(rawQuery, "tag")?.[0] ?? "";
  if (!isValidRepositoryName(repository) || !TAG.test(tag)) return fail(404, "Not found", "No such tag.");
  if (!viewer.session) return redirect(ctx.res, browserUrls.login(browserUrls.deleteConfirm(repository, tag)));
  if (!mayDelete(viewer, repository)) return fail(403, "Forbidden", FORBIDDEN);
  // The image the delete would remove: read where the delete goes.
  const backend = new RepositoryBackend(state, viewer.site, repository, principalOf(viewer)).writeSide();
  const digest = backend && (await readDigest(backend, tag));
  if (!backend || !digest) return fail(404, "Not found", `${repository}:${tag} does not exist.`);
  const also = await tagsOnDigest(state, viewer, backend, digest, tag);
  const model = { chrome: chromeOf(viewer), repository, tag, digest, alsoRemoved: also.tags, alsoRemovedComplete: also.complete, backUrl: browserUrls.tag(repository, tag) };
  sendPage(ctx.res, 200, renderDeleteConfirm(model), {}, ctx.method === "HEAD");
}

export async function deleteTag(ctx: RequestContext, state: PipelineState, viewer: Viewer, externalOrigin: string, fail: ErrorPage): Promise<void> {
  if (!fromSameOrigin(ctx.req, externalOrigin)) return fail(403, "Forbidden", "The delete form was sent from another site.");
  const form = await readForm(ctx.req);
  const { session, signer } = viewer;
  if (!form || !session || !signer || !signer.csrfMatches(session, form.get("csrf") ?? undefined)) {
    return fail(403, "Forbidden", "The form's security token is missing or wrong: reload the page and try again.");
  }
  const repository = form.get("repository") ?? "";
  const tag = form.get("tag") ?? "";
  const confirmed = form.get("digest") ?? "";
  if (!isValidRepositoryName(repository) || !TAG.test(tag)) return fail(404, "Not found", "No such tag.");
  if (!mayDelete(viewer, repository)) return fail(403, "Forbidden", FORBIDDEN);
  // Resolved where the DELETE goes, and only the image the user confirmed: a tag moved since then would
  // otherwise take another image, and its other tags, with it.
  const backend = new RepositoryBackend(state, viewer.site, repository, principalOf(viewer)).writeSide();
  const digest = backend && (await readDigest(backend, tag));
  if (!backend || !digest) return fail(404, "Not found", `${repository}:${tag} does not exist.`);
  if (!isValidDigest(confirmed) || digest !== confirmed) {
    return fail(409, "Tag changed", `${repository}:${tag} no longer names the image you confirmed: nothing was deleted. Open the tag again to see what it names now.`);
  }
  const answer = await backend.deleteManifest(digest);
  if (answer?.status !== 202) {
    state.logger.warn({ site: viewer.site.name, repository, tag, status: answer?.status }, "the registry refused a delete from the browser");
    return fail(502, "Not deleted", `The registry did not delete ${repository}:${tag} (it answered ${answer?.status ?? "nothing"}).`);
  }
  state.logger.info({ site: viewer.site.name, repository, tag, digest, user: session.user }, "tag deleted from the browser");
  redirect(ctx.res, `${browserUrls.repository(repository)}?deleted=${encodeURIComponent(tag)}`);
}

/**
 * The repository's other tags on `digest`, deleted with it: of the first MAX_TAGS_DESCRIBED, read within 15 s.
 * `complete` says whether every other tag was checked; when not, the page must not read as the whole list.
 */
async function tagsOnDigest(state: PipelineState, viewer: Viewer, backend: RepositoryBackend, digest: string, except: string): Promise<{ tags: string[]; complete: boolean }> {
  const { site } = viewer;
  const tags = await state.lists.tags(site, site.upstreams.for(backend.repository), backend.repository, principalOf(viewer)).catch(() => undefined);
  const all = (tags ?? []).filter((tag) => tag !== except);
  const others = all.slice(0, MAX_TAGS_DESCRIBED);
  const digests = await mapInTurns(others, 4, 15_000, (tag) => readDigest(backend, tag).catch(() => undefined));
  const complete = tags !== undefined && all.length === others.length && digests.every((found) => found !== undefined);
  return { tags: others.filter((_, index) => digests[index] === digest), complete };
}
