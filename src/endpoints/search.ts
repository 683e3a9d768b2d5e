// `GET /v1/search` (docker search): answered from the site's catalog (registry/search.ts), filtered to what
// the caller, identified by the pipeline (anonymous included), may pull.
import { sendJson } from "../registry/errors.js";
import type { Handler } from "./handler.js";

export const search: Handler = async (ctx, state, request) => {
  const page = await state.search.search(request.site, ctx.user ?? null, request.target.rawQuery).catch(() => null);
  if (page) sendJson(ctx.res, 200, page);
  else request.refuse("backendUnavailable", "the backend registry's catalog could not be read");
};
