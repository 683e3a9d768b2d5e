// The route table: for each kind of route classify (registry/routes.ts) names, how its caller is
// established (handler.ts, Authentication) and which handler answers it. Adding an endpoint is one file in
// this folder and one line here (plus its path in routes.ts when it has a new one). The table covers every
// kind the classifier produces, so a route cannot reach the request path without saying how it is admitted.
//
// A handler is `(ctx, state, request) => Promise<void>`: the request's context (request-context.ts), the
// generation's PipelineState, and what the pipeline found (EndpointRequest: site, route, target, upstream,
// body, refuse). It runs only after every refusal of the pipeline was decided.
import type { RouteKind } from "../registry/routes.js";
import type { Endpoint } from "./handler.js";
import { catalog, tags } from "./lists.js";
import { manifest } from "./manifest.js";
import { ping } from "./ping.js";
import { proxy } from "./proxy.js";
import { referrers } from "./referrers.js";
import { search } from "./search.js";
import { token } from "./token.js";
import { browser } from "../web/handler.js";

/** "other" names no request: it is what auth uses for a request without a registry route. */
export type RoutedKind = Exclude<RouteKind, "other">;

export type RouteTable = Readonly<Record<RoutedKind, Endpoint>>;

export const ROUTE_TABLE: RouteTable = {
  ping: { authentication: "none", handler: ping },
  token: { authentication: "self", handler: token },
  search: { authentication: "identify", handler: search },
  catalog: { authentication: "admit", handler: catalog },
  tags: { authentication: "admit", handler: tags },
  base: { authentication: "admit", handler: proxy },
  manifest: { authentication: "admit", handler: manifest },
  blob: { authentication: "admit", handler: proxy },
  upload: { authentication: "admit", handler: proxy },
  referrers: { authentication: "admit", handler: referrers },
  browser: { authentication: "session", handler: browser },
};
