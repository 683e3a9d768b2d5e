// `/token` of a token-auth site (auth/token-endpoint.ts): it checks the credentials itself, so the
// pipeline lets it through unauthenticated (authentication "self") and it reports who got a token, or why
// none was given.
import type { Handler } from "./handler.js";

export const token: Handler = async (ctx, state, request) => {
  const endpoint = request.site.auth?.tokenEndpoint;
  // The pipeline refuses /token on a site that issues no tokens; getting here without one is a bug.
  if (!endpoint) throw new Error(`the token handler ran for site ${request.site.name}, which issues no tokens`);
  const answered = await endpoint.handle(ctx.req, ctx.res, request.externalOrigin, ctx.clientIp);
  ctx.user = answered.user;
  if (answered.refusal) ctx.refusal = answered.refusal;
  if (answered.failure) state.metrics.authFailure(request.site.name, answered.failure);
};
