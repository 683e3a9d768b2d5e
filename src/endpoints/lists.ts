// `GET /v2/_catalog` and `GET /v2/<name>/tags/list` where the answer spans several registries: the catalog
// of a site with prefix routes or a group, a group's tags. The members' lists are merged and paginated here
// (backends/lists.ts, registry/catalog.ts); a list one registry holds whole is that registry's to answer.
import type { ServerResponse } from "node:http";
import { paginate, readPageRequest } from "../registry/catalog.js";
import { sendJson } from "../registry/errors.js";
import type { EndpointRequest, Handler } from "./handler.js";
import { proxy } from "./proxy.js";

export const catalog: Handler = (ctx, state, request) => {
  if (!request.site.upstreams.mergesCatalog) return proxy(ctx, state, request);
  return answerMerged(request, ctx.res, () => state.lists.repositories(request.site), (items) => ({ repositories: items }));
};

export const tags: Handler = (ctx, state, request) => {
  const { upstream, route } = request;
  if (upstream.kind !== "group") return proxy(ctx, state, request);
  const list = () => state.lists.tags(request.site, upstream, route.repository!, ctx.principal);
  return answerMerged(request, ctx.res, list, (items) => ({ name: route.repository, tags: items }));
};

/** `list` resolves to null when no member knows the repository, and rejects when none answered. */
async function answerMerged(
  request: EndpointRequest,
  res: ServerResponse,
  list: () => Promise<string[] | null>,
  bodyOf: (items: string[]) => Record<string, unknown>,
): Promise<void> {
  const page = readPageRequest(request.target.rawQuery);
  if (!page.ok) return request.refuse("paginationInvalid", page.message);
  const names = await list().catch(() => undefined);
  if (names === undefined) return request.refuse("backendUnavailable", "no backend registry of this site answered with its list");
  if (names === null) return request.refuse("notFound", "repository name not known to registry");
  const { items, link } = paginate(names, page, request.target.path);
  sendJson(res, 200, bodyOf(items), link ? { Link: link } : {});
}
