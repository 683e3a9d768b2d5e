// One request, top to bottom. TLS and SNI happened before this (tls/store.ts); each stage below either
// answers the client with a registry error or hands on to the next.
//
//   1. resolve site    Host → site, or a registry error
//   2. classify        method + path → registry route (kind, repository, accesses)
//   3. authenticate    (issue #3)
//   4. authorize       (issue #3)
//   5. rate limit      (issue #4)
//   6. forward         stream to the backend, fix response headers
//   7. observe         always, whatever happened
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Logger } from "./observe/log.js";
import type { Forwarder, ForwardOutcome } from "./proxy/forward.js";
import type { EdgeContext } from "./proxy/headers.js";
import { sendError } from "./registry/errors.js";
import { classify, hasDotSegments, type RegistryRoute } from "./registry/routes.js";
import type { SiteMap, Site } from "./sites.js";

/** Everything a request needs that is derived from configuration; replaced whole on reload. */
export interface PipelineState {
  sites: SiteMap;
  forwarder: Forwarder;
  logger: Logger;
}

interface RequestRecord {
  site?: Site;
  route?: RegistryRoute;
  status: number;
  outcome?: ForwardOutcome;
}

export type RequestHandler = (req: IncomingMessage, res: ServerResponse) => Promise<void>;

export function createPipeline(currentState: () => PipelineState): RequestHandler {
  return async function handleRequest(req, res) {
    // Requests in flight keep the state they started with, even if a reload swaps it meanwhile.
    const state = currentState();
    const started = performance.now();
    const record: RequestRecord = { status: 0 };
    try {
      // 1. resolve site
      const lookup = state.sites.lookup(req.headers.host);
      if (!lookup.ok) {
        record.status = rejectHost(res, lookup.reason, lookup.hostname);
        return;
      }
      record.site = lookup.site;

      // 2. classify
      const target = parseRequestTarget(req.url ?? "");
      if (!target) {
        record.status = reject(res, "badRequest", "the request target must be an absolute path");
        return;
      }
      if (hasDotSegments(target.path)) {
        record.status = reject(res, "nameInvalid", "paths with . or .. segments are not accepted");
        return;
      }
      record.route = classify(req.method ?? "GET", target.path, target.query);

      // 6. forward
      const edge: EdgeContext = {
        externalOrigin: `https://${lookup.host.authority}`,
        authority: lookup.host.authority,
        clientIp: clientAddress(req),
      };
      record.outcome = await state.forwarder.forward(req, res, lookup.site.backend, edge);
      record.status = record.outcome.status;
    } catch (err) {
      state.logger.error({ err }, "request failed inside the gateway");
      if (!sendError(res, "internal", "internal gateway error")) res.destroy();
      record.status = 500;
    } finally {
      // 7. observe
      state.logger.debug(
        {
          site: record.site?.name,
          route: record.route?.kind,
          method: req.method,
          status: record.status,
          ms: Math.round(performance.now() - started),
          upstreamFailure: record.outcome?.upstreamFailure,
          clientAborted: record.outcome?.clientAborted,
        },
        "request",
      );
    }
  };
}

function reject(res: ServerResponse, kind: Parameters<typeof sendError>[1], message: string): number {
  sendError(res, kind, message);
  return res.statusCode;
}

function rejectHost(res: ServerResponse, reason: "missing" | "malformed" | "unknown", hostname?: string): number {
  switch (reason) {
    case "missing":
      return reject(res, "badRequest", "the request has no Host header");
    case "malformed":
      return reject(res, "badRequest", "the Host header is not a valid host[:port]");
    case "unknown":
      return reject(res, "unknownHost", `this gateway serves no registry at host "${hostname}"`);
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

function clientAddress(req: IncomingMessage): string {
  const address = req.socket.remoteAddress ?? "";
  return address.startsWith("::ffff:") ? address.slice(7) : address;
}
