// One request, top to bottom. TLS and SNI happened before this (tls/store.ts); each stage below either
// refuses with a registry error or hands on to the next, and every refusal is made here, before the
// handler runs:
//
//   0. connection + framing   a turn on the connection; over a connection cap → 503/429; HTTP version,
//                             repeated Host/Content-Length/Transfer-Encoding/Content-Type, bodies on
//                             GET/HEAD/DELETE → 400
//   1. resolve site           Host → site, or a registry error; SNI of another site → 421
//   2. classify               the target, read once and only if canonical, + method → registry route
//                             (kind, repository, accesses) → its endpoint (how it authenticates, which
//                             handler answers: endpoints/table.ts); anything unnamed is refused
//   3. authenticate           credentials → principal, or a 401 challenge          (site.auth)
//   4. authorize              principal × route accesses → allow, or 403/401 (site.auth); a write the
//                             site's registries cannot carry out as authorized → 403/405 (push-rules.ts);
//                             what the OCI spec refuses: a tag DELETE → 405, a malformed digest
//                             parameter → 400 (registry/oci-refusals.ts)
//   5. limit                  site : operation : principal-or-IP → allow, or 429   (site.limits); then
//                             concurrent downloads per client and user → 429
//   6. handler                the endpoint answers: the registry proxy (backends/dispatch.ts), /token,
//                             docker search, lists merged across registries           (src/endpoints/)
//   7. observe                always, whatever happened                            (observer)
import type { IncomingMessage, ServerResponse } from "node:http";
import { isIP } from "node:net";
import type { TLSSocket } from "node:tls";
import { pushRefusal } from "./backends/push-rules.js";
import type { Authentication, Endpoint, EndpointRequest } from "./endpoints/handler.js";
import { ROUTE_TABLE, type RouteTable } from "./endpoints/table.js";
import type { PipelineState } from "./pipeline-state.js";
import { REQUEST_ID_HEADER, requestIdFrom } from "./observe/request-id.js";
import { readBoundedBody } from "./proxy/bounded-body.js";
import { ConnectionLimits } from "./proxy/connections.js";
import { checkFraming, formMediaType } from "./proxy/framing.js";
import { abandon, awaitTurn } from "./proxy/pipelining.js";
import { sendError, type GatewayErrorKind } from "./registry/errors.js";
import { specRefusal } from "./registry/oci-refusals.js";
import { classify, type RegistryRoute } from "./registry/routes.js";
import { checkTarget, formValues } from "./registry/target.js";
import type { RequestContext } from "./request-context.js";
import type { HostHeader, Site, SiteMap } from "./sites.js";
import { isBrowserPath } from "./web/paths.js";

export type { PipelineMetrics, PipelineState, RequestObserver } from "./pipeline-state.js";

export type RequestHandler = (req: IncomingMessage, res: ServerResponse) => Promise<void>;

/** An urlencoded form naming a mount source is a few hundred bytes; a bigger one is not a registry client's. */
const MAX_FORM_BYTES = 64 * 1024;

/** A stage's verdict that the request goes no further. */
class Refusal {
  constructor(
    readonly kind: GatewayErrorKind,
    readonly message: string,
    readonly headers?: Record<string, string>,
  ) {}
}

/** `routes`: which endpoint answers each kind of route (tests inject their own). */
export function createPipeline(currentState: () => PipelineState, routes: RouteTable = ROUTE_TABLE): RequestHandler {
  return async function handleRequest(req, res) {
    // A request keeps the generation it started on (its pipeline state), whatever a reload swaps in meanwhile.
    const state = currentState();
    const ctx = startContext(req, res, state);
    const answer = new Answer(ctx);
    try {
      // 0. a turn on the connection, the connection caps, framing
      if (!(await awaitTurn(req, res))) return abandonTurn(ctx);
      const framing = checkConnection(req);
      if (framing instanceof Refusal) return answer.refuse(framing);
      answer.bodyUnread = framing.hasBody;
      // 1. resolve site
      const resolved = resolveSite(state, req);
      if (resolved instanceof Refusal) return answer.refuse(resolved);
      ctx.site = resolved.site;
      // 2. classify: one reading of the target, the one forwarded, and the endpoint that answers it
      const classified = await classifyRequest(ctx, framing.hasBody, routes);
      if (classified instanceof Refusal) return answer.refuse(classified);
      if (classified.body) answer.bodyUnread = false;
      const { endpoint } = classified;
      const request = endpointRequest(resolved, classified, framing.hasBody, answer);
      ctx.route = request.route;
      // 3. authenticate + 4. authorize
      const denied = await authorize(ctx, state, request, endpoint.authentication);
      if (denied) return answer.refuse(denied);
      // 5. limit: only counted requests wait for a verdict; an admitted one is never cut later
      const limited = await limit(ctx, state, request, endpoint.authentication);
      if (limited) return answer.refuse(limited);
      // 6. handler
      await endpoint.handler(ctx, state, request);
    } catch (err) {
      state.logger.error({ err }, "request failed inside the gateway");
      ctx.refusal = "internal";
      if (!sendError(res, "internal", "internal gateway error", { Connection: "close" })) res.destroy();
    } finally {
      // 7. observe
      ctx.status = res.headersSent ? res.statusCode : 0;
      ctx.durationMs = performance.now() - ctx.startedAt;
      state.observer?.requestDone(ctx);
    }
  };
}

function startContext(req: IncomingMessage, res: ServerResponse, state: PipelineState): RequestContext {
  const requestId = requestIdFrom(req.headers["x-request-id"]);
  // Set before any stage can answer, so gateway-made errors carry it too; the forwarder sends it upstream.
  res.setHeader(REQUEST_ID_HEADER, requestId);
  return {
    req,
    res,
    requestId,
    method: req.method ?? "GET",
    url: req.url ?? "",
    clientIp: state.clientAddress(req),
    startedAt: performance.now(),
    principal: null,
    durationMs: 0,
    status: 0,
  };
}

/** Writes the pipeline's refusals, and the handlers' (EndpointRequest.refuse). */
class Answer {
  /**
   * The client announced a body; until it is read (then the request is complete), a refusal must also end
   * the connection.
   */
  bodyUnread = true;

  constructor(private readonly ctx: RequestContext) {}

  readonly refuse = (refusal: Refusal): void => this.refuseWith(refusal.kind, refusal.message, refusal.headers);

  readonly refuseWith = (kind: GatewayErrorKind, message: string, headers?: Record<string, string>): void => {
    this.ctx.refusal = kind;
    const { req, res } = this.ctx;
    // An unread body would be parsed as the next request on this connection: close it instead.
    sendError(res, kind, message, this.bodyUnread && !req.complete ? { ...headers, Connection: "close" } : headers);
  };
}

/** Pipelined behind a response that closed the connection: never forwarded, never answered. */
function abandonTurn(ctx: RequestContext): void {
  ctx.refusal = "badRequest";
  abandon(ctx.req, ctx.res);
}

// ---------------------------------------------------------------- 0. connection + framing

function checkConnection(req: IncomingMessage): { hasBody: boolean } | Refusal {
  const overCap = ConnectionLimits.refusalFor(req.socket);
  if (overCap) return new Refusal(overCap.kind, overCap.message, { "Retry-After": "1", Connection: "close" });
  const framing = checkFraming(req);
  return framing.ok ? framing : new Refusal("badRequest", framing.message, { Connection: "close" });
}

// ---------------------------------------------------------------- 1. resolve site

/** By Host; the TLS server name must not name another site. */
function resolveSite(state: PipelineState, req: IncomingMessage): { site: Site; host: HostHeader } | Refusal {
  const lookup = state.sites.lookup(req.headers.host);
  if (!lookup.ok) return hostRefusal(lookup.reason, lookup.hostname);
  if (state.strictSni && !sniMatches(state.sites, req, lookup.site)) {
    return new Refusal("misdirected", `this connection's TLS server name is not for ${lookup.host.hostname}: connect with that name`);
  }
  return lookup;
}

function hostRefusal(reason: "missing" | "malformed" | "unknown", hostname?: string): Refusal {
  switch (reason) {
    case "missing":
      return new Refusal("badRequest", "the request has no Host header");
    case "malformed":
      return new Refusal("badRequest", "the Host header is not a valid host[:port]");
    case "unknown":
      return new Refusal("unknownHost", `this gateway serves no registry at host "${hostname}"`);
  }
}

/**
 * True when the connection sent no SNI, or an IP address as SNI (RFC 6066 forbids it, and it names no
 * site: wrk and other clients connecting by address send one), or an SNI that resolves to the same site.
 */
function sniMatches(sites: SiteMap, req: IncomingMessage, site: Site): boolean {
  const servername = (req.socket as TLSSocket).servername;
  if (typeof servername !== "string" || servername === "" || isIP(servername) !== 0) return true;
  const bySni = sites.lookup(servername);
  return bySni.ok && bySni.site === site;
}

// ---------------------------------------------------------------- 2. classify

interface Classified {
  route: RegistryRoute;
  endpoint: Endpoint;
  target: { path: string; rawQuery: string };
  body?: Buffer;
}

async function classifyRequest(ctx: RequestContext, hasBody: boolean, routes: RouteTable): Promise<Classified | Refusal> {
  const target = checkTarget(ctx.url);
  if (!target.ok) return new Refusal(target.kind, target.reason);
  // The registry browser's pages are no registry route: its handler reads their forms and the session itself.
  if (isBrowserPath(target.path)) return { route: { kind: "browser", accesses: [] }, endpoint: routes.browser, target };
  const form = await readMountForm(ctx.req, target.path, hasBody);
  if (!form.ok) return new Refusal("badRequest", form.message);
  const mountFrom = ctx.method === "POST" ? mountSources(target.rawQuery, form.body) : [];
  if (mountFrom === null) return new Refusal("badRequest", "the query or form has an invalid percent-escape");
  const classification = classify(ctx.method, target.path, mountFrom);
  if (!classification.ok) {
    const { kind, message, allow } = classification;
    return new Refusal(kind, message, allow ? { Allow: allow } : undefined);
  }
  const { route } = classification;
  const endpoint = route.kind === "other" ? undefined : routes[route.kind];
  if (!endpoint) return new Refusal("notFound", "no registry operation has this path");
  return { route, endpoint, target, body: form.body };
}

type MountForm = { ok: true; body?: Buffer } | { ok: false; message: string };

/**
 * distribution reads `mount`/`from` with r.FormValue: from an urlencoded body as well as the query. Such a
 * body is read here (bounded), so the gateway authorizes what the backend will read, and then forwarded
 * as read. Form bodies anywhere else are refused: no registry client sends them, and Go would read them.
 */
async function readMountForm(req: IncomingMessage, path: string, hasBody: boolean): Promise<MountForm> {
  const mediaType = formMediaType(req.headers["content-type"]);
  // /token is the gateway's own endpoint: its password-grant form is read there and never forwarded.
  if (mediaType === null || !hasBody || path === "/token") return { ok: true };
  const uploadStart = req.method === "POST" && path.startsWith("/v2/") && path.endsWith("/blobs/uploads/");
  if (!uploadStart || mediaType !== "application/x-www-form-urlencoded") {
    return { ok: false, message: "form bodies are only accepted as an urlencoded upload start" };
  }
  // Read before authorization (it names what the request touches), so bounded before the client is invited.
  const body = await readBoundedBody(req, MAX_FORM_BYTES);
  return body === null ? { ok: false, message: `the form is larger than ${MAX_FORM_BYTES} bytes` } : { ok: true, body };
}

/** Every `from` in the query and the form; null when either has an invalid escape. */
function mountSources(rawQuery: string, form: Buffer | undefined): string[] | null {
  const fromQuery = formValues(rawQuery, "from");
  const fromForm = form ? formValues(form.toString("latin1"), "from") : [];
  return fromQuery && fromForm ? [...fromForm, ...fromQuery] : null;
}

function endpointRequest(resolved: { site: Site; host: HostHeader }, classified: Classified, hasBody: boolean, answer: Answer): EndpointRequest {
  const { site, host } = resolved;
  const { route, target, body } = classified;
  return {
    site,
    route,
    target,
    authority: host.authority,
    externalOrigin: `https://${host.authority}`,
    upstream: site.upstreams.for(route.repository),
    hasBody,
    body,
    refuse: answer.refuseWith,
  };
}

// ---------------------------------------------------------------- 3 + 4. authenticate, authorize

async function authorize(ctx: RequestContext, state: PipelineState, request: EndpointRequest, authentication: Authentication): Promise<Refusal | null> {
  const { site, route } = request;
  switch (authentication) {
    case "none":
      return null;
    case "self":
      return site.auth?.tokenEndpoint ? null : new Refusal("notFound", "this site issues no tokens");
    case "session":
      return null;
    case "identify":
      return site.auth ? admitCaller(ctx, state, request, "identify") : null;
    case "admit": {
      const refused = site.auth ? await admitCaller(ctx, state, request, "admit") : null;
      if (refused) return refused;
      const unservable = pushRefusal(site.upstreams, route, ctx.method);
      if (unservable) return new Refusal(unservable.kind, unservable.message);
      const unspecified = specRefusal(site.config, route, ctx.method, request.target.rawQuery, request.body);
      return unspecified && new Refusal(unspecified.kind, unspecified.message, unspecified.headers);
    }
  }
}

/** identify: anyone may ask (anonymous included), only bad credentials are refused; admit: the route's accesses. */
async function admitCaller(ctx: RequestContext, state: PipelineState, request: EndpointRequest, how: "identify" | "admit"): Promise<Refusal | null> {
  const { site, route, externalOrigin } = request;
  const auth = site.auth!;
  const { authorization } = ctx.req.headers;
  const admission =
    how === "identify" ? await auth.identify(authorization, externalOrigin, ctx.clientIp) : await auth.admit(authorization, route, externalOrigin, ctx.clientIp);
  if (!admission.ok) {
    ctx.user = admission.user;
    state.metrics.authFailure(site.name, admission.reason);
    const headers: Record<string, string> = { ...admission.headers };
    if (admission.challenge) headers["WWW-Authenticate"] = admission.challenge;
    return new Refusal(admission.error, admission.message, headers);
  }
  ctx.principal = admission.principal;
  ctx.user = admission.principal?.name;
  return null;
}

// ---------------------------------------------------------------- 5. limit

async function limit(ctx: RequestContext, state: PipelineState, request: EndpointRequest, authentication: Authentication): Promise<Refusal | null> {
  // Answered without knowing anything of the caller, and costing nothing: not counted.
  if (authentication === "none") return null;
  const { site, route } = request;
  const limiting = state.rateLimit?.check(site, route, ctx.method, { user: ctx.user, ip: ctx.clientIp });
  if (limiting) {
    const verdict = await limiting;
    if (verdict.kind === "refused") return new Refusal("tooManyRequests", verdict.message, verdict.headers);
    if (verdict.kind === "unavailable") return new Refusal("unavailable", "rate limiting is unavailable; try again shortly", { "Retry-After": "1" });
    request.rateLimitHeaders = verdict.headers;
  }
  // Downloads in flight per client address and user: each holds a backend connection and buffers until read.
  const tooManyDownloads = state.downloads.admit(ctx.method, route, { ip: ctx.clientIp, user: ctx.user }, ctx.res);
  return tooManyDownloads ? new Refusal("tooManyRequests", tooManyDownloads.message, tooManyDownloads.headers) : null;
}
