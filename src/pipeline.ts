// One request, top to bottom. TLS and SNI happened before this (tls/store.ts); each stage below either
// answers the client with a registry error or hands on to the next.
//
//   0. connection + framing   over a connection cap → 503/429; HTTP version, repeated Host/Content-Length/
//                             Transfer-Encoding/Content-Type, bodies on GET/HEAD/DELETE → 400
//   1. resolve site           Host → site, or a registry error; SNI of another site → 421
//   2. classify               the target, read once and only if canonical, + method → registry route
//                             (kind, repository, accesses); anything unnamed is refused
//   3. authenticate           credentials → principal, or a 401 challenge          (site.auth)
//   4. authorize              principal × route accesses → allow, or 403/401        (site.auth)
//   5. rate limit             site : operation : principal-or-IP → allow, or 429   (site.limits)
//   6. forward                the accepted target byte for byte, bodies streamed, to the backend the
//                             site's upstream picks (backends/dispatch.ts); lists spanning several
//                             registries, and docker search, are answered here
//   7. observe                always, whatever happened                            (observer)
import type { IncomingMessage, ServerResponse } from "node:http";
import { isIP } from "node:net";
import type { TLSSocket } from "node:tls";
import type { UploadAffinity } from "./backends/affinity.js";
import { dispatch } from "./backends/dispatch.js";
import type { SiteLists } from "./backends/lists.js";
import type { ManagedCredentials } from "./backends/managed-auth.js";
import type { Logger } from "./observe/log.js";
import { metrics } from "./observe/metrics.js";
import { REQUEST_ID_HEADER, requestIdFrom } from "./observe/request-id.js";
import type { ClientAddress } from "./proxy/client-ip.js";
import { ConnectionLimits } from "./proxy/connections.js";
import type { DownloadLimits } from "./proxy/downloads.js";
import type { Forwarder } from "./proxy/forward.js";
import { inviteBody } from "./proxy/continue.js";
import { checkFraming, formMediaType } from "./proxy/framing.js";
import { abandon, awaitTurn } from "./proxy/pipelining.js";
import type { EdgeContext } from "./proxy/headers.js";
import { paginate, readPageRequest } from "./registry/catalog.js";
import { sendError, sendJson, type GatewayErrorKind } from "./registry/errors.js";
import { classify } from "./registry/routes.js";
import type { CatalogSearch } from "./registry/search.js";
import { checkTarget, formValues } from "./registry/target.js";
import type { RateLimitStage } from "./ratelimit/stage.js";
import type { FinishedRequest, RequestContext } from "./request-context.js";
import type { SiteMap, Site } from "./sites.js";

/** Everything a request needs that is derived from configuration; replaced whole on reload. */
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
}

export interface RequestObserver {
  requestDone(request: FinishedRequest): void;
}

export type RequestHandler = (req: IncomingMessage, res: ServerResponse) => Promise<void>;

/** An urlencoded form naming a mount source is a few hundred bytes; a bigger one is not a registry client's. */
const MAX_FORM_BYTES = 64 * 1024;

export function createPipeline(currentState: () => PipelineState): RequestHandler {
  return async function handleRequest(req, res) {
    // A request keeps the generation it started on (its pipeline state), whatever a reload swaps in meanwhile.
    const state = currentState();
    const requestId = requestIdFrom(req.headers["x-request-id"]);
    // Set before any stage can answer, so gateway-made errors carry it too; the forwarder sends it upstream.
    res.setHeader(REQUEST_ID_HEADER, requestId);
    const ctx: RequestContext = {
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
    /** The client announced a body; until it is read, a refusal must also end the connection. */
    let unreadBody = true;
    const refuse = (kind: GatewayErrorKind, message: string, headers?: Record<string, string>) => {
      ctx.refusal = kind;
      // An unread body would be parsed as the next request on this connection: close it instead.
      sendError(res, kind, message, unreadBody && !req.complete ? { ...headers, Connection: "close" } : headers);
    };
    try {
      // 0. connection cap, turn on the connection, and framing
      if (!(await awaitTurn(req, res))) {
        // Pipelined behind a response that closed the connection: never forwarded, never answered.
        ctx.refusal = "badRequest";
        abandon(req, res);
        return;
      }
      const overCap = ConnectionLimits.refusalFor(req.socket);
      if (overCap) {
        refuse(overCap.kind, overCap.message, { "Retry-After": "1", Connection: "close" });
        return;
      }
      const framing = checkFraming(req);
      if (!framing.ok) {
        refuse("badRequest", framing.message, { Connection: "close" });
        return;
      }
      unreadBody = framing.hasBody;

      // 1. resolve site: by Host, and the TLS server name must not name another one
      const lookup = state.sites.lookup(req.headers.host);
      if (!lookup.ok) {
        refuse(...hostRefusal(lookup.reason, lookup.hostname));
        return;
      }
      const site = (ctx.site = lookup.site);
      if (state.strictSni && !sniMatches(state.sites, req, site)) {
        refuse("misdirected", `this connection's TLS server name is not for ${lookup.host.hostname}: connect with that name`);
        return;
      }

      // 2. classify: one reading of the target, the one forwarded
      const target = checkTarget(ctx.url);
      if (!target.ok) {
        refuse(target.kind, target.reason);
        return;
      }
      const form = await readMountForm(req, target.path, framing.hasBody);
      if (!form.ok) {
        refuse("badRequest", form.message);
        return;
      }
      if (form.body) unreadBody = false;
      const mountFrom = ctx.method === "POST" ? mountSources(target.rawQuery, form.body) : [];
      if (mountFrom === null) {
        refuse("badRequest", "the query or form has an invalid percent-escape");
        return;
      }
      const classification = classify(ctx.method, target.path, mountFrom);
      if (!classification.ok) {
        refuse(classification.kind, classification.message, classification.allow ? { Allow: classification.allow } : undefined);
        return;
      }
      const route = (ctx.route = classification.route);
      const tokenEndpoint = route.kind === "token" ? (site.auth?.tokenEndpoint ?? null) : null;
      if (route.kind === "token" && !tokenEndpoint) {
        refuse("notFound", "this site issues no tokens");
        return;
      }
      const externalOrigin = `https://${lookup.host.authority}`;

      // docker search (v1): its ping needs nothing; the search itself is answered at stage 6.
      if (route.kind === "ping") {
        // Standalone: docker then sends its stored credentials with the search.
        sendJson(res, 200, {}, { "X-Docker-Registry-Standalone": "true" });
        return;
      }
      // 3. authenticate + 4. authorize. A token-auth site's /token checks credentials itself (6.)
      if (site.auth && !tokenEndpoint) {
        // docker search: anyone may ask (anonymous included); the answer shows each caller what it may pull.
        const admission =
          route.kind === "search"
            ? await site.auth.identify(req.headers.authorization, externalOrigin, ctx.clientIp)
            : await site.auth.admit(req.headers.authorization, route, externalOrigin, ctx.clientIp);
        if (!admission.ok) {
          ctx.user = admission.user;
          metrics.authFailure(site.name, admission.reason);
          const headers: Record<string, string> = { ...admission.headers };
          if (admission.challenge) headers["WWW-Authenticate"] = admission.challenge;
          refuse(admission.error, admission.message, headers);
          return;
        }
        ctx.principal = admission.principal;
        ctx.user = admission.principal?.name;
      }

      // 5. rate limit: only counted requests wait for a verdict; an admitted one is never cut later.
      let rateLimitHeaders: readonly string[] | undefined;
      const limiting = state.rateLimit?.check(site, route, ctx.method, { user: ctx.user, ip: ctx.clientIp });
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
        rateLimitHeaders = verdict.headers;
      }

      // 6. forward (or answer /token of a token-auth site, or docker search)
      if (tokenEndpoint) {
        const answered = await tokenEndpoint.handle(req, res, externalOrigin, ctx.clientIp);
        ctx.user = answered.user;
        if (answered.refusal) ctx.refusal = answered.refusal;
        if (answered.failure) metrics.authFailure(site.name, answered.failure);
        return;
      }
      if (route.kind === "search") {
        const page = await state.search.search(site, ctx.user ?? null, target.rawQuery).catch(() => null);
        if (page) sendJson(res, 200, page);
        else refuse("backendUnavailable", "the backend registry's catalog could not be read");
        return;
      }
      const upstream = site.upstreams.for(route.repository);
      // A mount is executed by the target's registry, from ITS repository of that name: the gateway checked
      // pull on the name as the site serves it, so a source served by another registry is refused (a client
      // then uploads the layer instead), never read from a repository the site does not serve.
      const strayMount = route.mountFrom?.find((from) => site.upstreams.for(from) !== upstream);
      if (strayMount !== undefined) {
        refuse("denied", `cannot mount from ${strayMount}: it is served by another registry than ${route.repository}; upload the blob instead`);
        return;
      }
      // A catalog over several registries, or a group's tags: merged and paginated here.
      const mergedList =
        route.kind === "catalog" && site.upstreams.mergesCatalog ? "catalog" : route.kind === "tags" && upstream.kind === "group" ? "tags" : null;
      if (mergedList) {
        const page = readPageRequest(target.rawQuery);
        if (!page.ok) {
          refuse("paginationInvalid", page.message);
          return;
        }
        const list =
          mergedList === "catalog"
            ? await state.lists.repositories(site).catch(() => undefined)
            : await state.lists.tags(site, upstream, route.repository!, ctx.principal).catch(() => undefined);
        if (list === undefined) refuse("backendUnavailable", "no backend registry of this site answered with its list");
        else if (list === null) refuse("notFound", "repository name not known to registry");
        else {
          const { items, link } = paginate(list, page, target.path);
          const body = mergedList === "catalog" ? { repositories: items } : { name: route.repository, tags: items };
          sendJson(res, 200, body, link ? { Link: link } : {});
        }
        return;
      }
      // Downloads in flight per client address and user: each holds a backend connection and buffers until read.
      const tooManyDownloads = state.downloads.admit(ctx.method, route, { ip: ctx.clientIp, user: ctx.user }, res);
      if (tooManyDownloads) {
        refuse("tooManyRequests", tooManyDownloads.message, tooManyDownloads.headers);
        return;
      }
      const edge: EdgeContext = {
        requestId,
        externalOrigin,
        authority: lookup.host.authority,
        clientIp: ctx.clientIp,
        extraHeaders: rateLimitHeaders,
        passClientAuthorization: site.passClientAuthorization,
        backendAuthorization: site.backendAuth
          ? await site.backendAuth.authorizationFor(route.backendAccesses ?? route.accesses, ctx.principal)
          : undefined,
        managedAuthorization: await state.managed?.authorizationFor(upstream, route.backendAccesses ?? route.accesses, ctx.principal),
      };
      // Admitted; dispatch invites a client waiting on Expect: 100-continue only once it forwards (it may still refuse).
      const invite = framing.hasBody ? () => inviteBody(req) : undefined;
      const dispatched = await dispatch(
        upstream,
        { req, res, method: ctx.method, route, edge, body: form.body, hasBody: framing.hasBody, site: site.name, user: ctx.principal?.name, invite },
        { forwarder: state.forwarder, affinity: state.affinity, metrics },
      );
      if (dispatched.ok) ctx.outcome = dispatched.outcome;
      else refuse(dispatched.kind, dispatched.message);
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
  if (Number(req.headers["content-length"] ?? 0) > MAX_FORM_BYTES) return { ok: false, message: `the form is larger than ${MAX_FORM_BYTES} bytes` };
  inviteBody(req);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_FORM_BYTES) return { ok: false, message: `the form is larger than ${MAX_FORM_BYTES} bytes` };
    chunks.push(chunk);
  }
  return { ok: true, body: Buffer.concat(chunks) };
}

/** Every `from` in the query and the form; null when either has an invalid escape. */
function mountSources(rawQuery: string, form: Buffer | undefined): string[] | null {
  const fromQuery = formValues(rawQuery, "from");
  const fromForm = form ? formValues(form.toString("latin1"), "from") : [];
  return fromQuery && fromForm ? [...fromForm, ...fromQuery] : null;
}
