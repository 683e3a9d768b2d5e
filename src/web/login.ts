// Signing in and out. A sign-in is a password check like any other of the gateway's (auth/logins.ts): the
// same failed-login throttle per user, address and network, the same hashing threads. It answers with a
// page, never a WWW-Authenticate challenge, so the browser never shows its own password dialog.
import { refusalBeforeCheck } from "../auth/logins.js";
import type { PipelineState } from "../pipeline-state.js";
import type { RequestContext } from "../request-context.js";
import { clearedSessionCookie, sessionCookie } from "./cookie.js";
import { fromSameOrigin, readForm, redirect, sendPage } from "./respond.js";
import { safeNext } from "./routes.js";
import { formValues } from "../registry/target.js";
import { renderLogin } from "./views/index.js";
import { chromeOf, type Viewer } from "./viewer.js";
import type { ErrorPage } from "./error-page.js";

/** A user name or password longer than this is no one's (the hashing side refuses long passwords too). */
const MAX_FIELD_LENGTH = 1024;

const NO_USERS = "This registry has no users: there is nothing to sign in to.";

export function showLogin(ctx: RequestContext, viewer: Viewer, rawQuery: string, fail: ErrorPage): void {
  if (!viewer.signer) return fail(404, "Not found", NO_USERS);
  const next = safeNext(formValues(rawQuery, "next")?.[0]);
  sendPage(ctx.res, 200, renderLogin({ chrome: chromeOf(viewer), error: null, next, username: "" }), {}, ctx.method === "HEAD");
}

export async function signIn(ctx: RequestContext, state: PipelineState, viewer: Viewer, externalOrigin: string, fail: ErrorPage): Promise<void> {
  const { site, signer } = viewer;
  if (!site.passwords || !signer) return fail(404, "Not found", NO_USERS);
  if (!fromSameOrigin(ctx.req, externalOrigin)) return fail(403, "Forbidden", "The sign-in form was sent from another site.");
  const form = await readForm(ctx.req);
  if (!form) return fail(400, "Bad request", "The sign-in form could not be read.");
  const username = form.get("username") ?? "";
  const password = form.get("password") ?? "";
  const next = safeNext(form.get("next") ?? undefined);
  const again = (status: number, error: string, headers: Record<string, string> = {}) =>
    sendPage(ctx.res, status, renderLogin({ chrome: chromeOf(viewer), error, next, username: username.slice(0, MAX_FIELD_LENGTH) }), headers);
  if (username === "" || username.length > MAX_FIELD_LENGTH || password.length > MAX_FIELD_LENGTH) return again(401, "Wrong user name or password");
  ctx.user = username;
  const check = await site.passwords.logins.check(username, password, ctx.clientIp);
  if (!check.ok) {
    const refused = refusalBeforeCheck(check);
    ctx.refusal = refused ? refused.error : "unauthorized";
    state.metrics.authFailure(site.name, refused ? refused.reason : "invalid_credentials");
    if (!refused) return again(401, "Wrong user name or password");
    return again(refused.error === "tooManyRequests" ? 429 : 503, `${refused.message[0]!.toUpperCase()}${refused.message.slice(1)}.`, refused.headers);
  }
  const issued = await signer.issue(username, check.fingerprint);
  if (!issued) return again(401, "Wrong user name or password");
  ctx.principal = { name: username };
  redirect(ctx.res, next, { "Set-Cookie": sessionCookie(issued.token, Math.floor(signer.lifetimeMs / 1000)) });
}

/** Ends the session in this browser. The cookie is signed, not stored: it ends when it expires or the password changes. */
export async function signOut(ctx: RequestContext, viewer: Viewer, externalOrigin: string, fail: ErrorPage): Promise<void> {
  if (!fromSameOrigin(ctx.req, externalOrigin)) return fail(403, "Forbidden", "The sign-out form was sent from another site.");
  const form = await readForm(ctx.req);
  const { session, signer } = viewer;
  if (session && signer && !signer.csrfMatches(session, form?.get("csrf") ?? undefined)) {
    return fail(403, "Forbidden", "The form's security token is missing or wrong: reload the page and try again.");
  }
  redirect(ctx.res, "/", { "Set-Cookie": clearedSessionCookie() });
}
