// Who is looking at a page, and what they may do: the session cookie's user (anonymous without a valid
// one: an expired or revoked session is simply no session), judged by the site's access rules. A site
// without auth is open to all: everyone reads everything there, and nobody signs in or deletes through the
// browser (there would be no session to bind a delete's CSRF token to).
import type { IncomingMessage } from "node:http";
import { pushRefusal } from "../backends/push-rules.js";
import type { Site } from "../sites.js";
import { sessionLifetimeMs } from "./settings.js";
import { sessionCookieValue } from "./cookie.js";
import { SessionSigner, type Session } from "./session.js";
import type { BrowserState } from "./state.js";
import type { PageChrome } from "./view-models.js";

export interface Viewer {
  site: Site;
  /** null: anonymous. */
  session: Session | null;
  /** null on a site without users, or while the session key cannot be had. */
  signer: SessionSigner | null;
  /** The site has users but the session key cannot be had: nobody can sign in just now. */
  signInUnavailable?: boolean;
  /** `host[:port]` as the browser addressed the gateway. */
  authority: string;
  browser: BrowserState;
}

export async function signerFor(site: Site, browser: BrowserState): Promise<SessionSigner | null> {
  const passwords = site.passwords;
  if (!site.auth || !passwords) return null;
  const key = await browser.sessionKeys.key();
  return new SessionSigner(key, site.name, sessionLifetimeMs(site.config), (user) => passwords.logins.users.fingerprint(user));
}

/** The session key could not be had (a fleet's Redis away) for a visitor who carries a session cookie. */
export class SessionsUnavailable extends Error {}

/**
 * Without the session key a visitor with no cookie is anonymous as ever (`signInUnavailable` set); one with
 * a cookie is not served as anonymous, which would look like being signed out: SessionsUnavailable.
 */
export async function viewerOf(req: IncomingMessage, site: Site, browser: BrowserState, authority: string): Promise<Viewer> {
  const cookie = sessionCookieValue(req.headers.cookie);
  let signer: SessionSigner | null;
  try {
    signer = await signerFor(site, browser);
  } catch (err) {
    if (cookie) throw new SessionsUnavailable((err as Error).message);
    return { site, session: null, signer: null, signInUnavailable: true, authority, browser };
  }
  const session = signer && cookie ? await signer.verify(cookie) : null;
  return { site, session, signer, authority, browser };
}

export function userOf(viewer: Viewer): string | null {
  return viewer.session?.user ?? null;
}

export function chromeOf(viewer: Viewer, notice: string | null = null): PageChrome {
  const { session, signer } = viewer;
  return {
    registryHost: viewer.authority,
    user: session?.user ?? null,
    csrfToken: session && signer ? signer.csrfToken(session) : null,
    assets: viewer.browser.assets().urls,
    notice,
  };
}

export function mayPull(viewer: Viewer, repository: string): boolean {
  const { auth } = viewer.site;
  return auth === null || auth.mayPull(userOf(viewer), repository);
}

/** Delete is offered to a signed-in user the rules allow it, on a registry that can carry it out. */
export function mayDelete(viewer: Viewer, repository: string): boolean {
  const { site, session } = viewer;
  if (!site.auth || !session || !site.passwords?.policy.repositoryActions(session.user, repository).has("delete")) return false;
  const route = { kind: "manifest" as const, repository, accesses: [] };
  return pushRefusal(site.upstreams, route, "DELETE") === null;
}

/** The gateway reads the registry with credentials of its own; a passthrough site's registry takes only its callers'. */
export function canRead(site: Site): boolean {
  return !site.passClientAuthorization;
}
