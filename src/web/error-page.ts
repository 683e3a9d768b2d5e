// Errors as pages: the browser routes answer HTML, never a registry's JSON error or a challenge.
import type { RequestContext } from "../request-context.js";
import { sendPage } from "./respond.js";
import { renderError } from "./views/index.js";
import { chromeOf, type Viewer } from "./viewer.js";

export type ErrorPage = (status: number, title: string, message: string, headers?: Record<string, string>) => void;

export function errorPageFor(ctx: RequestContext, viewer: Viewer): ErrorPage {
  return (status, title, message, headers = {}) => {
    if (status >= 400 && ctx.refusal === undefined) ctx.refusal = status === 404 ? "notFound" : status === 403 ? "denied" : status >= 500 ? "backendUnavailable" : "badRequest";
    sendPage(ctx.res, status, renderError({ chrome: chromeOf(viewer), status, title, message }), headers, ctx.method === "HEAD");
  };
}
