// The contract between the pipeline and the endpoints. The pipeline (pipeline.ts) resolves the site,
// classifies the request, authenticates and authorizes it and applies the limits; every refusal up to
// there is its own. An endpoint's handler runs only after all of that passed, and answers the request:
// the registry proxy, the token endpoint, docker search, the merged lists.
import type { PipelineState } from "../pipeline-state.js";
import type { GatewayErrorKind } from "../registry/errors.js";
import type { RegistryRoute } from "../registry/routes.js";
import type { RequestContext } from "../request-context.js";
import type { Site } from "../sites.js";
import type { Upstream } from "../backends/upstream.js";

/**
 * How the pipeline establishes who is asking before the handler runs:
 *   none      nobody needs to be known (the v1 ping): no authentication, and no rate limit to count it
 *   self      the handler checks credentials itself (the token endpoint); refused on a site without one
 *   identify  anyone may ask, anonymous included; bad credentials are refused, and the handler shows the
 *             caller only what it may see (docker search)
 *   admit     credentials × the route's accesses must be allowed, and the route must be one the site's
 *             registries can carry out (mount sources, a group's push rules)
 *   session   the registry browser: the handler reads its session cookie (anonymous without one) and
 *             never answers with a challenge, so a browser never shows its password dialog
 */
export type Authentication = "none" | "self" | "identify" | "admit" | "session";

export type Refuse = (kind: GatewayErrorKind, message: string, headers?: Record<string, string>) => void;

/** What the pipeline found out about an admitted request, for its handler. */
export interface EndpointRequest {
  readonly site: Site;
  readonly route: RegistryRoute;
  /** The accepted target (registry/target.ts), the one reading every stage used and the one forwarded. */
  readonly target: { readonly path: string; readonly rawQuery: string };
  /** `host[:port]` as the client addressed us. */
  readonly authority: string;
  /** `https://` + authority: where the client reaches the gateway (token realm, Location rewriting). */
  readonly externalOrigin: string;
  /** The registry serving the route's repository (the site's own for routes without one). */
  readonly upstream: Upstream;
  /** The client announced a body. */
  readonly hasBody: boolean;
  /** The body, when the pipeline read it (a mount form); otherwise it is still to be streamed. */
  readonly body?: Buffer;
  /** Stage 5's RateLimit headers for the response, as a flat [name, value, …] list. */
  rateLimitHeaders?: readonly string[];
  /** Answers with a registry error, and closes the connection while the announced body is unread. */
  readonly refuse: Refuse;
}

/**
 * Answers one request. Called once per request, after every stage of the pipeline passed; it writes the
 * response (or refuses through `request.refuse`) and records what the observer should know in `ctx`
 * (user, refusal, outcome). A rejection is answered by the pipeline as an internal error.
 */
export type Handler = (ctx: RequestContext, state: PipelineState, request: EndpointRequest) => Promise<void>;

export interface Endpoint {
  authentication: Authentication;
  handler: Handler;
}
