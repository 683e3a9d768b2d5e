// Every registry route a backend answers: the accepted target, byte for byte, to the backend the site's
// upstream picks (backends/dispatch.ts), with the headers the edge adds (proxy/headers.ts) and the
// backend credentials the site sends for exactly the route's accesses.
import { dispatch } from "../backends/dispatch.js";
import { inviteBody } from "../proxy/continue.js";
import type { EdgeContext } from "../proxy/headers.js";
import type { ResponseHead } from "../proxy/round-trip.js";
import type { RequestContext } from "../request-context.js";
import type { PipelineState } from "../pipeline-state.js";
import type { EndpointRequest, Handler } from "./handler.js";

/** What a handler that looked at the request first adds to its forwarding. */
export interface Forwarding {
  /** The body it read, forwarded as read. */
  body?: Buffer;
  /** Runs on the backend's answer before the client hears it; may add response headers to `edge.extraHeaders`. */
  beforeAnswer?: (head: ResponseHead, edge: EdgeContext) => Promise<void>;
}

export const proxy: Handler = (ctx, state, request) => forward(ctx, state, request);

export async function forward(ctx: RequestContext, state: PipelineState, request: EndpointRequest, forwarding: Forwarding = {}): Promise<void> {
  const { req, res } = ctx;
  const { site, route, upstream } = request;
  const accesses = route.backendAccesses ?? route.accesses;
  const edge: EdgeContext = {
    requestId: ctx.requestId,
    externalOrigin: request.externalOrigin,
    authority: request.authority,
    clientIp: ctx.clientIp,
    extraHeaders: request.rateLimitHeaders,
    passClientAuthorization: site.passClientAuthorization,
    backendAuthorization: site.backendAuth ? await site.backendAuth.authorizationFor(accesses, ctx.principal) : undefined,
    managedAuthorization: await state.managed?.authorizationFor(upstream, accesses, ctx.principal),
  };
  // Admitted; dispatch invites a client waiting on Expect: 100-continue only once it forwards (it may still refuse).
  const invite = request.hasBody ? () => inviteBody(req) : undefined;
  const { beforeAnswer } = forwarding;
  const dispatched = await dispatch(
    upstream,
    {
      req,
      res,
      method: ctx.method,
      route,
      edge,
      body: forwarding.body ?? request.body,
      hasBody: request.hasBody,
      site: site.name,
      user: ctx.principal?.name,
      invite,
      checkRanges: site.config.uploadRanges === "check",
      beforeAnswer: beforeAnswer && ((head) => beforeAnswer(head, edge)),
    },
    { forwarder: state.forwarder, affinity: state.affinity, metrics: state.metrics },
  );
  if (dispatched.ok) ctx.outcome = dispatched.outcome;
  else request.refuse(dispatched.kind, dispatched.message, dispatched.headers);
}
