// Method + path of a browser request → the page it asks for. The path already passed the target check
// (registry/target.ts: no escapes, no dot segments), so names read here are read as the registry reads them.
import { isValidRepositoryName } from "../registry/routes.js";
import { deleteConfirmUrl, loginUrl, repositoryUrl, tagUrl } from "./views/urls.js";

export type BrowserPage =
  | { page: "repositories" }
  | { page: "repository"; repository: string }
  | { page: "tag"; repository: string; tag: string }
  | { page: "login" }
  | { page: "signIn" }
  | { page: "logout" }
  | { page: "deleteConfirm" }
  | { page: "delete" }
  | { page: "asset" };

export type BrowserRouting = { ok: true; page: BrowserPage } | { ok: false; status: 404 } | { ok: false; status: 405; allow: string };

/** distribution's reference.TagRegexp. */
const TAG = /^[\w][\w.-]{0,127}$/;

export function isValidTag(tag: string): boolean {
  return TAG.test(tag);
}

export function routeBrowser(method: string, path: string): BrowserRouting {
  const read = method === "GET" || method === "HEAD";
  const get = (page: BrowserPage): BrowserRouting => (read ? { ok: true, page } : { ok: false, status: 405, allow: "GET, HEAD" });
  const post = (page: BrowserPage): BrowserRouting => (method === "POST" ? { ok: true, page } : { ok: false, status: 405, allow: "POST" });
  if (path === "/") return get({ page: "repositories" });
  if (path === "/logout") return post({ page: "logout" });
  if (path === "/login") return read ? { ok: true, page: { page: "login" } } : post({ page: "signIn" });
  if (path === "/delete") return read ? { ok: true, page: { page: "deleteConfirm" } } : post({ page: "delete" });
  if (path.startsWith("/assets/")) return get({ page: "asset" });
  if (path.startsWith("/repo/")) {
    const repository = path.slice("/repo/".length);
    return isValidRepositoryName(repository) ? get({ page: "repository", repository }) : { ok: false, status: 404 };
  }
  if (path.startsWith("/tag/")) {
    const reference = path.slice("/tag/".length);
    const colon = reference.lastIndexOf(":");
    const repository = reference.slice(0, colon);
    const tag = reference.slice(colon + 1);
    return colon > 0 && isValidRepositoryName(repository) && TAG.test(tag) ? get({ page: "tag", repository, tag }) : { ok: false, status: 404 };
  }
  return { ok: false, status: 404 };
}

/** Where a page links: the same URL builders the views use, so a link and its route never disagree. */
export const browserUrls = { repository: repositoryUrl, tag: tagUrl, login: loginUrl, deleteConfirm: deleteConfirmUrl };

/**
 * Where to go after signing in: a path on this site only. Anything else (another origin, `//host`, `/\host`,
 * which browsers read as another host) is the start page, so the form cannot be an open redirect.
 */
export function safeNext(next: string | undefined): string {
  if (next === undefined || !/^\/(?![/\\])[\x21-\x7e]*$/.test(next)) return "/";
  return next;
}
