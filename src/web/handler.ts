// The registry browser's endpoint: every browser path (paths.ts) of a site comes here after the pipeline's
// framing and site checks, and is answered with a page. The pipeline asks no credentials of it
// (authentication "session"): the session cookie is read here, and a visitor without one is anonymous.
import type { Handler } from "../endpoints/handler.js";
import type { PipelineState } from "../pipeline-state.js";
import type { RequestContext } from "../request-context.js";
import type { EndpointRequest } from "../endpoints/handler.js";
import { repositoryList } from "./catalog-view.js";
import { confirmDelete, deleteTag } from "./delete.js";
import { errorPageFor, type ErrorPage } from "./error-page.js";
import { showLogin, signIn, signOut } from "./login.js";
import { sendAsset, sendPage } from "./respond.js";
import { isValidTag, routeBrowser, type BrowserPage } from "./routes.js";
import { formValues } from "../registry/target.js";
import { tagDetails } from "./tag-details.js";
import { tagList } from "./tag-list.js";
import { renderRepositoryList, renderTagDetails, renderTagList } from "./views/index.js";
import { browserEnabled } from "./settings.js";
import { canRead, mayPull, SessionsUnavailable, viewerOf, type Viewer } from "./viewer.js";
import type { BrowserState } from "./state.js";

export const browser: Handler = async (ctx, state, request) => {
  const { site, target } = request;
  const browserState = state.browser;
  // A site without the browser answers its paths as before it had one.
  if (!browserState || !browserEnabled(site.config)) return request.refuse("notFound", "no registry operation has this path");
  let assets;
  try {
    assets = browserState.assets();
  } catch (err) {
    state.logger.error({ site: site.name, err: (err as Error).message }, "the registry browser's assets cannot be read");
    return request.refuse("unavailable", "the registry browser is not available on this gateway");
  }
  const routing = routeBrowser(ctx.method, target.path);
  if (routing.ok && routing.page.page === "asset") {
    const asset = assets.lookup(target.path);
    if (asset) return sendAsset(ctx.res, asset.body, asset.contentType, ctx.method === "HEAD");
  }
  const viewer = await sessionViewer(ctx, state, request);
  if (!viewer) return;
  ctx.user = viewer.session?.user;
  ctx.principal = viewer.session ? { name: viewer.session.user } : null;
  const fail = errorPageFor(ctx, viewer);
  if (!routing.ok) {
    if (routing.status === 405) return fail(405, "Method not allowed", "This page does not take that request.", { Allow: routing.allow });
    return fail(404, "Not found", "There is no such page.");
  }
  try {
    await answer(ctx, state, request, viewer, routing.page, fail);
  } catch (err) {
    // The registry failed or answered nonsense: a page saying so, not the pipeline's JSON error.
    state.logger.warn({ site: site.name, path: target.path, err: (err as Error).message }, "a browser page could not be made");
    if (!ctx.res.headersSent) fail(502, "Registry unavailable", "The registry did not answer as expected.");
    else ctx.res.destroy();
  }
};

/** Browser states whose session key could not be had: warned about once, until the key is had again. */
const keyWarned = new WeakSet<BrowserState>();

/**
 * The viewer of a page; undefined when the page has been answered already: a session cookie while the
 * session key cannot be had gets a page saying sign-in is unavailable, not the pipeline's JSON error.
 */
async function sessionViewer(ctx: RequestContext, state: PipelineState, request: EndpointRequest): Promise<Viewer | undefined> {
  const browserState = state.browser!;
  const { site } = request;
  let viewer: Viewer;
  try {
    viewer = await viewerOf(ctx.req, site, browserState, request.authority);
  } catch (err) {
    if (!(err instanceof SessionsUnavailable)) throw err;
    viewer = { site, session: null, signer: null, signInUnavailable: true, authority: request.authority, browser: browserState };
    warnKeyUnavailable(state, site.name, browserState, err.message);
    errorPageFor(ctx, viewer)(503, "Sign-in unavailable", "Sign-in is unavailable right now: try again in a moment.", { "Retry-After": "30" });
    return undefined;
  }
  if (viewer.signInUnavailable) warnKeyUnavailable(state, site.name, browserState, "the session key cannot be read");
  else if (viewer.signer) keyWarned.delete(browserState);
  return viewer;
}

function warnKeyUnavailable(state: PipelineState, site: string, browserState: BrowserState, reason: string): void {
  if (keyWarned.has(browserState)) return;
  keyWarned.add(browserState);
  state.logger.warn({ site, err: reason }, "browser sign-in is unavailable: the session key cannot be had");
}

async function answer(ctx: RequestContext, state: PipelineState, request: EndpointRequest, viewer: Viewer, page: BrowserPage, fail: ErrorPage): Promise<void> {
  const { rawQuery } = request.target;
  const headOnly = ctx.method === "HEAD";
  switch (page.page) {
    case "asset":
      return fail(404, "Not found", "There is no such file.");
    case "login":
    case "signIn":
      if (viewer.signInUnavailable) return fail(503, "Sign-in unavailable", "Sign-in is unavailable right now: try again in a moment.", { "Retry-After": "30" });
  }
  switch (page.page) {
    case "login":
      return showLogin(ctx, viewer, rawQuery, fail);
    case "signIn":
      return signIn(ctx, state, viewer, request.externalOrigin, fail);
    case "logout":
      return signOut(ctx, viewer, request.externalOrigin, fail);
  }
  if (!canRead(viewer.site)) return fail(501, "Not available", "This site's registry takes only its clients' own credentials: the gateway cannot read it for you.");
  switch (page.page) {
    case "repositories": {
      const model = await repositoryList(state, viewer, rawQuery);
      if (!model) return fail(502, "Registry unavailable", "The registry's list of repositories could not be read.");
      return sendPage(ctx.res, 200, renderRepositoryList(model), {}, headOnly);
    }
    case "repository": {
      if (!mayPull(viewer, page.repository)) return notVisible(viewer, fail);
      // Only a tag name: any other text would be a stranger's words in the page's notice, on the real origin.
      const deleted = formValues(rawQuery, "deleted")?.[0];
      const listing = await tagList(state, viewer, page.repository, deleted && isValidTag(deleted) ? `Tag ${deleted} deleted` : null, pageNumber(rawQuery));
      if (listing.ok) return sendPage(ctx.res, 200, renderTagList(listing.model), {}, headOnly);
      if (listing.problem === "unknown") return fail(404, "Not found", `There is no repository ${page.repository}.`);
      return fail(502, "Registry unavailable", listing.problem === "tooLarge" ? "The repository has more tags than the gateway reads." : "The registry's list of tags could not be read.");
    }
    case "tag": {
      if (!mayPull(viewer, page.repository)) return notVisible(viewer, fail);
      const model = await tagDetails(ctx, state, request, viewer, page.repository, page.tag).catch(() => undefined);
      if (model === undefined) return fail(502, "Registry unavailable", "The registry did not answer for this tag.");
      if (model === null) return fail(404, "Not found", `There is no tag ${page.repository}:${page.tag}.`);
      return sendPage(ctx.res, 200, renderTagDetails(model), {}, headOnly);
    }
    case "deleteConfirm":
      return confirmDelete(ctx, state, viewer, rawQuery, fail);
    case "delete":
      return deleteTag(ctx, state, viewer, request.externalOrigin, fail);
  }
}

/** `?page=N` of a paged list: 1 when absent or not a plain positive number. */
function pageNumber(rawQuery: string): number {
  const given = formValues(rawQuery, "page")?.[0] ?? "";
  return /^[1-9]\d{0,5}$/.test(given) ? Number(given) : 1;
}

/** A repository the viewer may not pull is not shown to exist: the same page as one that does not. */
function notVisible(viewer: Viewer, fail: ErrorPage): void {
  fail(404, "Not found", viewer.session ? "There is no such repository." : "There is no such repository, or you need to sign in to see it.");
}
