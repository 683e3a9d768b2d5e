// One request, top to bottom. TLS and SNI happened before this (tls/store.ts); each stage below either
// answers the client with a registry error or hands on to the next.
//
//   1. resolve site    Host → site, or a registry error
//   2. classify        method + path → registry route (kind, repository, accesses)
//   3. authenticate    credentials → principal, or a 401 challenge          (site.auth, issue #3)
//   4. authorize       principal × route accesses → allow, or 403/401        (site.auth, issue #3)
//   5. rate limit      site : operation : principal-or-IP → allow, or 429   (site.limits, issue #4)
//   6. forward         stream to the backend, fix response headers
//   7. observe         always, whatever happened                            (observer, issue #5)
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Principal } from "./auth/types.js";
import type { Logger } from "./observe/log.js";
import { metrics } from "./observe/metrics.js";
import { REQUEST_ID_HEADER, requestIdFrom } from "./observe/request-id.js";
import type { ClientAddress } from "./proxy/client-ip.js";
import type { Forwarder, ForwardOutcome } from "./proxy/forward.js";
import type { EdgeContext } from "./proxy/headers.js";
import { sendError, type GatewayErrorKind } from "./registry/errors.js";
import { classify, hasDotSegments, type RegistryRoute } from "./registry/routes.js";
import type { RateLimitStage } from "./ratelimit/stage.js";
import type { SiteMap, Site } from "./sites.js";

/** Everything a request needs that is derived from configuration; replaced whole on reload. */
export interface PipelineState {
  sites: SiteMap;
  forwarder: Forwarder;
  logger: Logger;
  /** Records each finished request (metrics, access log); null when nothing observes. */
  observer: RequestObserver | null;
  /** Socket peer, or X-Forwarded-For from a trusted proxy (issue #4). */
  clientAddress: ClientAddress;
  /** Stage 5; null when no site has limits. */
  rateLimit: RateLimitStage | null;
}

/** What is known about a request once it is over, for the observe stage. */
export interface RequestRecord {
  /** The client's X-Request-Id if sane, else generated; sent to the backend and back to the client. */
  requestId: string;
  method: string;
  /** Path and query as received. */
  url: string;
  clientIp: string;
  startedAt: number;
  durationMs: number;
  status: number;
  site?: Site;
  route?: RegistryRoute;
  /** Authenticated user name, when there is one. */
  user?: string;
  /** Why the gateway itself refused or failed the request, when it did. */
  refusal?: GatewayErrorKind;
  outcome?: ForwardOutcome;
}

export interface RequestObserver {
  requestDone(record: RequestRecord, req: IncomingMessage, res: ServerResponse): void;
}

export type RequestHandler = (req: IncomingMessage, res: ServerResponse) => Promise<void>;

export function createPipeline(currentState: () => PipelineState): RequestHandler {
  return async function handleRequest(req, res) {
    // Requests in flight keep the state they started with, even if a reload swaps it meanwhile.
    const state = currentState();
    const requestId = requestIdFrom(req.headers["x-request-id"]);
    // Set before any stage can answer, so gateway-made errors carry it too; forwarded as a request header.
    req.headers["x-request-id"] = requestId;
    res.setHeader(REQUEST_ID_HEADER, requestId);
    const record: RequestRecord = {
      requestId,
      method: req.method ?? "GET",
      url: req.url ?? "",
      clientIp: state.clientAddress(req),
      startedAt: performance.now(),
      durationMs: 0,
      status: 0,
    };
    const refuse = (kind: GatewayErrorKind, message: string, headers?: Record<string, string>) => {
      record.refusal = kind;
      sendError(res, kind, message, headers);
    };
    try {
      // 1. resolve site
      const lookup = state.sites.lookup(req.headers.host);
      if (!lookup.ok) {
        refuse(...hostRefusal(lookup.reason, lookup.hostname));
        return;
      }
      const site = (record.site = lookup.site);

      // 2. classify
      const target = parseRequestTarget(record.url);
      if (!target) {
        refuse("badRequest", "the request target must be an absolute path");
        return;
      }
      if (hasDotSegments(target.path)) {
        refuse("nameInvalid", "paths with . or .. segments are not accepted");
        return;
      }
      const route = (record.route = classify(record.method, target.path, target.query));
      const edge: EdgeContext = {
        externalOrigin: `https://${lookup.host.authority}`,
        authority: lookup.host.authority,
        clientIp: record.clientIp,
      };

      // 3. authenticate + 4. authorize (issue #3). A token-auth site's /token checks credentials itself (6.)
      const tokenEndpoint = route.kind === "token" ? (site.auth?.tokenEndpoint ?? null) : null;
      /** Who is asking: null when anonymous or when the site has no auth. record.user carries the name. */
      let principal: Principal | null = null;
      if (site.auth && !tokenEndpoint) {
        const admission = await site.auth.admit(req.headers.authorization, route, edge.externalOrigin);
        if (!admission.ok) {
          record.user = admission.user;
          metrics.authFailure(site.name, admission.reason);
          refuse(admission.error, admission.message, admission.challenge ? { "WWW-Authenticate": admission.challenge } : undefined);
          return;
        }
        principal = admission.principal;
        record.user = principal?.name;
      }

      // 5. rate limit (issue #4): only counted requests wait for a verdict; an admitted one is never cut later.
      const limiting = state.rateLimit?.check(site, route, record.method, { user: record.user, ip: record.clientIp });
      if (limiting) {
        const verdict = await limiting;
        if (verdict.kind === "refused") {
          refuse("tooManyRequests", verdict.message, verdict.headers);
          return;
        }
        if (verdict.kind === "unavailable") {
          refuse("unavailable", "rate limiting is unavailable; try again shortly", { "Retry-After": "1" });
          return;
        }
        edge.extraHeaders = verdict.headers;
      }

      // 6. forward (or answer /token of a token-auth site)
      if (tokenEndpoint) {
        const answered = await tokenEndpoint.handle(req, res, edge.externalOrigin);
        record.user = answered.user;
        if (answered.failure) {
          record.refusal = "unauthorized";
          metrics.authFailure(site.name, answered.failure);
        }
        return;
      }
      edge.passClientAuthorization = site.passClientAuthorization;
      if (site.backendAuth) edge.backendAuthorization = await site.backendAuth.authorizationFor(route.accesses, principal);
      record.outcome = await state.forwarder.forward(req, res, site.backend, edge);
    } catch (err) {
      state.logger.error({ err }, "request failed inside the gateway");
      record.refusal = "internal";
      if (!sendError(res, "internal", "internal gateway error")) res.destroy();
    } finally {
      // 7. observe
      record.status = res.headersSent ? res.statusCode : 0;
      record.durationMs = performance.now() - record.startedAt;
      state.observer?.requestDone(record, req, res);
    }
  };
}

function hostRefusal(reason: "missing" | "malformed" | "unknown", hostname?: string): [GatewayErrorKind, string] {
  switch (reason) {
    case "missing":
      return ["badRequest", "the request has no Host header"];
    case "malformed":
      return ["badRequest", "the Host header is not a valid host[:port]"];
    case "unknown":
      return ["unknownHost", `this gateway serves no registry at host "${hostname}"`];
  }
}

/** Origin-form targets only: absolute-form would make the gateway an open forward proxy. */
function parseRequestTarget(url: string): { path: string; query: URLSearchParams } | null {
  if (!url.startsWith("/")) return null;
  const q = url.indexOf("?");
  return q < 0
    ? { path: url, query: new URLSearchParams() }
    : { path: url.slice(0, q), query: new URLSearchParams(url.slice(q + 1)) };
}
