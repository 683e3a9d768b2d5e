// `GET /v2/<name>/referrers/<digest>` (OCI distribution spec v1.1) for a registry that lacks it: the
// subject's index the gateway keeps under the fallback tag (referrers/store.ts), filtered by `artifactType`.
// A subject nobody referred to has an empty index: 200, never 404. A site set to `pass`, or a registry that
// answers the API itself, gets the request forwarded as any other.
import { indexBackendFor, type IndexBackend } from "../referrers/index-backend.js";
import { filterByArtifactType, serializeIndex } from "../referrers/index-document.js";
import type { Referrers } from "../referrers/referrers.js";
import { API_VERSION, API_VERSION_HEADER } from "../registry/errors.js";
import { OCI_INDEX } from "../registry/manifest.js";
import { formValues } from "../registry/target.js";
import type { PipelineState } from "../pipeline-state.js";
import type { RequestContext } from "../request-context.js";
import type { EndpointRequest, Handler } from "./handler.js";
import { proxy } from "./proxy.js";

export const referrers: Handler = async (ctx, state, request) => {
  const kept = await keptReferrers(ctx, state, request);
  if (!kept) return proxy(ctx, state, request);
  const types = formValues(request.target.rawQuery, "artifactType");
  if (types === null) return request.refuse("badRequest", "the query has an invalid percent-escape");
  const wanted = types.filter((type) => type !== "");
  const { repository, reference } = request.route;
  let index;
  try {
    index = await kept.referrers.store.read(kept.backend, repository!, reference!);
  } catch (err) {
    state.logger.warn({ site: request.site.name, repository, err: (err as Error).message }, "the referrers index could not be read");
    return request.refuse("backendUnavailable", "the registry did not give the referrers index");
  }
  const body = serializeIndex(filterByArtifactType(index, wanted));
  const headers: Record<string, string | number> = { "Content-Type": OCI_INDEX, "Content-Length": body.length, [API_VERSION_HEADER]: API_VERSION };
  if (wanted.length > 0) headers["OCI-Filters-Applied"] = "artifactType";
  ctx.res.writeHead(200, headers);
  ctx.res.end(body);
};

/** The index store and the registry holding the route's repository, when the gateway keeps its referrers. */
export async function keptReferrers(
  ctx: RequestContext,
  state: PipelineState,
  request: EndpointRequest,
): Promise<{ referrers: Referrers; backend: IndexBackend } | null> {
  const { site, upstream, route } = request;
  // A client gone while the pipeline decided gets nothing sent for it, not even the gateway's own reads
  // (forwarding then answers it as gone).
  if (ctx.res.destroyed || ctx.req.socket.destroyed) return null;
  const referrers = state.referrers;
  // A passthrough site's backend takes only its callers' credentials: the gateway has no right of its own there.
  if (!referrers || site.config.referrers === "pass" || site.passClientAuthorization || route.repository === undefined) return null;
  const backend = indexBackendFor(upstream, route.repository, { agentFor: (url) => state.forwarder.agentFor(url), backendAuth: site.backendAuth, managed: state.managed });
  if (!backend) return null;
  return (await referrers.emulates(site.config.referrers, backend, route.repository)) ? { referrers, backend } : null;
}
