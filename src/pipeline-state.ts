// What the request path runs on: everything derived from one configuration (built in generation.ts,
// replaced whole on reload). Apart from pipeline.ts so that the endpoints, which read it too, do not import
// the pipeline that imports them.
import type { DispatchMetrics } from "./backends/dispatch.js";
import type { UploadAffinity } from "./backends/affinity.js";
import type { SiteLists } from "./backends/lists.js";
import type { Referrers } from "./referrers/referrers.js";
import type { ManagedCredentials } from "./backends/managed-auth.js";
import type { AuthFailureReason } from "./auth/types.js";
import type { Logger } from "./observe/log.js";
import type { ClientAddress } from "./proxy/client-ip.js";
import type { DownloadLimits } from "./proxy/downloads.js";
import type { Forwarder } from "./proxy/forward.js";
import type { CatalogSearch } from "./registry/search.js";
import type { RateLimitStage } from "./ratelimit/stage.js";
import type { FinishedRequest } from "./request-context.js";
import type { SiteMap } from "./sites.js";
import type { BrowserState } from "./web/state.js";

export interface PipelineState {
  sites: SiteMap;
  forwarder: Forwarder;
  /** Which replica holds each upload session (memory, or Redis shared by gateways). */
  affinity: UploadAffinity;
  /** Catalogs and tag lists merged across a site's registries. */
  lists: SiteLists;
  logger: Logger;
  /** Records each finished request (metrics, access log); null when nothing observes. */
  observer: RequestObserver | null;
  /** Socket peer, or X-Forwarded-For from a trusted proxy. */
  clientAddress: ClientAddress;
  /** Stage 5; null when no site has limits. */
  rateLimit: RateLimitStage | null;
  /** A Host naming another site than the TLS SNI is refused (tls.strictSni). */
  strictSni: boolean;
  /** docker search, from the backends' catalogs. */
  search: CatalogSearch;
  /** Tokens for the registries the gateway runs; null when no site forwards to one. */
  managed: ManagedCredentials | null;
  /** Concurrent blob and manifest GETs per client address and user (limits.downloadsPerClient / PerUser). */
  downloads: DownloadLimits;
  /** Where the request path counts what it refuses (the process's metrics). */
  metrics: PipelineMetrics;
  /** The referrers indexes the gateway keeps for registries without the API; none: every site passes. */
  referrers?: Referrers;
  /** The registry browser's session key source and assets; none: no site shows the browser. */
  browser?: BrowserState;
}

export interface RequestObserver {
  requestDone(request: FinishedRequest): void;
}

/** What the request path reports besides the observed request (observe/metrics.ts implements it). */
export interface PipelineMetrics extends DispatchMetrics {
  authFailure(site: string, reason: AuthFailureReason): void;
}
