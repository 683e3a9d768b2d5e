// `GET /v1/_ping`: what docker search asks before its search. It needs nothing and says nothing about the
// registries behind the site.
import { sendJson } from "../registry/errors.js";
import type { Handler } from "./handler.js";

export const ping: Handler = async (ctx) => {
  // Standalone: docker then sends its stored credentials with the search.
  sendJson(ctx.res, 200, {}, { "X-Docker-Registry-Standalone": "true" });
};
