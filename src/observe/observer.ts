// The observe stage: every finished request becomes metric observations and one access-log line.
import type { IncomingMessage, ServerResponse } from "node:http";
import type { RequestObserver } from "../pipeline.js";
import type { FinishedRequest } from "../request-context.js";
import { ACCESS_LOG_MESSAGE, loggablePath, roundMs, type AccessLogEntry } from "./access-log.js";
import type { Logger } from "./log.js";
import { UNKNOWN_SITE, type GatewayMetrics } from "./metrics.js";

export interface ObserverOptions {
  /** null: requests are not counted (metrics.enabled: false). */
  metrics: GatewayMetrics | null;
  /** null: no access log (log.access: false). */
  accessLog: Logger | null;
}

/** null when there is nothing to observe, so the pipeline skips the stage entirely. */
export function createRequestObserver({ metrics, accessLog }: ObserverOptions): RequestObserver | null {
  if (!metrics && !accessLog) return null;
  return {
    requestDone(record: FinishedRequest): void {
      const outcome = record.outcome;
      const site = record.site?.name ?? UNKNOWN_SITE;
      const operation = record.route?.kind ?? "other";
      const bytesIn = outcome?.requestBytes ?? 0;
      const bytesOut = outcome?.responseBytes ?? gatewayBodyBytes(record.req, record.res);
      metrics?.recordRequest({
        site,
        operation,
        method: record.method,
        status: record.status,
        durationMs: record.durationMs,
        bytesIn,
        bytesOut,
        backend: outcome?.backend,
        upstreamMs: outcome?.upstreamMs,
        upstreamFailure: outcome?.upstreamFailure,
      });
      if (accessLog) {
        const entry: AccessLogEntry = {
          requestId: record.requestId,
          site,
          operation,
          method: record.method,
          path: loggablePath(record.url),
          status: record.status,
          bytesIn,
          bytesOut,
          durationMs: roundMs(record.durationMs),
          upstreamMs: outcome?.upstreamMs === undefined ? undefined : roundMs(outcome.upstreamMs),
          user: record.user,
          clientIp: record.clientIp,
          refusal: record.refusal,
          upstreamFailure: outcome?.upstreamFailure,
        };
        accessLog.info(entry, ACCESS_LOG_MESSAGE);
      }
    },
  };
}

/**
 * Body bytes of a response the gateway wrote itself (registry errors): their Content-Length, which
 * sendError always sets. Responses relayed from a backend are counted in the forwarder instead.
 */
function gatewayBodyBytes(req: IncomingMessage, res: ServerResponse): number {
  if (req.method === "HEAD" || !res.headersSent) return 0;
  const length = Number(res.getHeader("content-length"));
  return Number.isFinite(length) ? length : 0;
}
