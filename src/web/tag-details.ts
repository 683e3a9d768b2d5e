// A tag's page: its image (platforms, layers, labels, history), the `docker pull` commands, and what refers
// to it (signatures, SBOMs, attestations): the index the gateway keeps where it emulates the referrers API
// (referrers/), or the registry's own API.
import type { PipelineState } from "../pipeline-state.js";
import type { EndpointRequest } from "../endpoints/handler.js";
import { keptReferrers } from "../endpoints/referrers.js";
import { parseIndex, type ReferrersIndex } from "../referrers/index-document.js";
import { OCI_INDEX } from "../registry/manifest.js";
import type { RequestContext } from "../request-context.js";
import { RepositoryBackend } from "./backend.js";
import { readImage } from "./image.js";
import { principalOf } from "./tag-list.js";
import type { Referrer, TagDetailsModel } from "./view-models.js";
import { chromeOf, mayDelete, type Viewer } from "./viewer.js";

/** A referrers index lists a few entries per signature scheme; more are not shown. */
const MAX_REFERRERS = 256;
const INDEX_BYTES = 1024 * 1024;

/** null: the registry does not have the tag. */
export async function tagDetails(ctx: RequestContext, state: PipelineState, request: EndpointRequest, viewer: Viewer, repository: string, tag: string): Promise<TagDetailsModel | null> {
  const backend = new RepositoryBackend(state, viewer.site, repository, principalOf(viewer));
  const image = await readImage(backend, tag);
  if (!image) return null;
  const index = await referrersOf(ctx, state, request, backend, image.digest).catch(() => null);
  const referrers: Referrer[] = (index?.manifests ?? []).slice(0, MAX_REFERRERS).map((entry) => ({
    artifactType: entry.artifactType ?? "",
    digest: entry.digest,
    size: entry.size,
    annotations: entry.annotations ?? {},
  }));
  const pull = `docker pull ${viewer.authority}/${repository}`;
  return {
    chrome: chromeOf(viewer),
    repository,
    tag,
    digest: image.digest,
    mediaType: image.mediaType,
    size: image.size,
    created: image.created,
    pullByTag: `${pull}:${tag}`,
    pullByDigest: `${pull}@${image.digest}`,
    platforms: image.platforms,
    layers: image.layers,
    layersOf: image.layersOf,
    labels: image.labels,
    history: image.history,
    referrers,
    canDelete: mayDelete(viewer, repository),
  };
}

async function referrersOf(ctx: RequestContext, state: PipelineState, request: EndpointRequest, backend: RepositoryBackend, digest: string): Promise<ReferrersIndex | null> {
  const { site } = request;
  const asReferrers: EndpointRequest = { ...request, route: { kind: "referrers", repository: backend.repository, reference: digest, accesses: [] }, upstream: site.upstreams.for(backend.repository) };
  const kept = await keptReferrers(ctx, state, asReferrers);
  if (kept) return kept.referrers.store.read(kept.backend, backend.repository, digest);
  const answer = await backend.get(`referrers/${digest}`, OCI_INDEX, INDEX_BYTES);
  return answer.status === 200 ? parseIndex(answer.body) : null;
}
