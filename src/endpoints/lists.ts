// `GET /v2/_catalog` and `GET /v2/<name>/tags/list` answered by the gateway: the catalog of a site with prefix
// routes or a group (merged across its registries), and every tag list. Tags are paged here with `n`, `last`
// and a Link for every site, whatever the registry does with them (distribution 2.8 ignores both and answers
// its tags unsorted): the registry's whole list is read (bounded, registry/catalog.ts) and paged
// (backends/lists.ts, registry/catalog.ts). A catalog one registry holds whole is that registry's to answer.
import type { ServerResponse } from "node:http";
import type { ListClient } from "../backends/lists.js";
import { ListTooLarge, MAX_NAMES, MAX_TAG_LIST_BYTES, paginate, readPageRequest } from "../registry/catalog.js";
import { sendJson } from "../registry/errors.js";
import type { EndpointRequest, Handler } from "./handler.js";
import { proxy } from "./proxy.js";

export const catalog: Handler = (ctx, state, request) => {
  if (!request.site.upstreams.mergesCatalog) return proxy(ctx, state, request);
  return answerMerged(request, ctx.res, () => state.lists.repositories(request.site), (items) => ({ repositories: items }));
};

export const tags: Handler = async (ctx, state, request) => {
  const { upstream, route, site } = request;
  // A passthrough site's registry checks the client's own credentials, and answers a 401 challenge the client
  // must see: the gateway reads lists with credentials of its own, so that list stays the registry's answer.
  if (site.passClientAuthorization) return proxy(ctx, state, request);
  const client: ListClient = {
    userAgent: ctx.req.headers["user-agent"],
    // The registry's time is reported as a forwarded request's is (metrics, access log).
    read: (backend, upstreamMs) => (ctx.outcome = { status: 0, backend, upstreamMs, clientAborted: false, requestBytes: 0 }),
  };
  const list = () => state.lists.tags(site, upstream, route.repository!, ctx.principal, client);
  await answerMerged(request, ctx.res, list, (items) => ({ name: route.repository, tags: items }));
  if (ctx.outcome) ctx.outcome.status = ctx.res.statusCode;
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
  const names = await list().catch((err: unknown) => (err instanceof ListTooLarge ? err : undefined));
  if (names instanceof ListTooLarge) {
    return request.refuse(
      "listTooLarge",
      `the registry lists more tags than the gateway pages (${MAX_NAMES} tags, ${MAX_TAG_LIST_BYTES} bytes): its tags cannot be listed through the gateway`,
    );
  }
  if (names === undefined) return request.refuse("backendUnavailable", "no backend registry of this site answered with its list");
  if (names === null) return request.refuse("notFound", "repository name not known to registry");
  const { items, link } = paginate(names, page, request.target.path);
  sendJson(res, 200, bodyOf(items), link ? { Link: link } : {});
}
