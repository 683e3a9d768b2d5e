// Minimal pages standing in for the registry browser's views until the real ones are merged: each returns a
// complete HTML document with every model value escaped, enough for the request side and its tests.
import type { DeleteConfirmModel, ErrorPageModel, LoginModel, PageChrome, RepositoryListModel, TagDetailsModel, TagListModel } from "../view-models.js";

function esc(value: string | number): string {
  return String(value).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function page(chrome: PageChrome, title: string, body: string): string {
  const signedIn =
    chrome.user === null
      ? `<a href="/login">Sign in</a>`
      : `<span class="user">${esc(chrome.user)}</span><form method="post" action="/logout"><input type="hidden" name="csrf" value="${esc(chrome.csrfToken ?? "")}"><button type="submit">Sign out</button></form>`;
  const notice = chrome.notice === null ? "" : `<p class="notice">${esc(chrome.notice)}</p>`;
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title><link rel="stylesheet" href="${esc(chrome.assets.css)}"><script src="${esc(chrome.assets.js)}" defer></script></head><body><header><a href="/">${esc(chrome.registryHost)}</a> ${signedIn}</header>${notice}<main>${body}</main></body></html>`;
}

export function renderRepositoryList(model: RepositoryListModel): string {
  const items = model.repositories.map((r) => `<li><a class="repository" href="${esc(r.url)}">${esc(r.name)}</a></li>`).join("");
  const next = model.nextPageUrl ? `<a class="next" href="${esc(model.nextPageUrl)}">Next</a>` : "";
  const first = model.firstPageUrl ? `<a class="first" href="${esc(model.firstPageUrl)}">First</a>` : "";
  const search = `<form method="get" action="/"><input name="q" value="${esc(model.query)}"></form>`;
  return page(model.chrome, "Repositories", `${search}<ul id="repositories">${items}</ul>${first}${next}`);
}

export function renderTagList(model: TagListModel): string {
  const rows = model.tags
    .map((t) => `<li><a class="tag" href="${esc(t.url)}">${esc(t.name)}</a> <code>${esc(t.digest)}</code> ${esc(t.size)}</li>`)
    .join("");
  return page(model.chrome, model.repository, `<h1>${esc(model.repository)}</h1><ul id="tags">${rows}</ul>`);
}

export function renderTagDetails(model: TagDetailsModel): string {
  const del = model.canDelete
    ? `<a class="delete" href="/delete?repository=${encodeURIComponent(model.repository)}&amp;tag=${encodeURIComponent(model.tag)}">Delete</a>`
    : "";
  const referrers = model.referrers.map((r) => `<li class="referrer">${esc(r.artifactType)} ${esc(r.digest)}</li>`).join("");
  return page(
    model.chrome,
    `${model.repository}:${model.tag}`,
    `<h1>${esc(model.repository)}:${esc(model.tag)}</h1><code id="pull-by-tag">${esc(model.pullByTag)}</code><code id="pull-by-digest">${esc(model.pullByDigest)}</code><ul id="referrers">${referrers}</ul>${del}`,
  );
}

export function renderLogin(model: LoginModel): string {
  const error = model.error === null ? "" : `<p class="error">${esc(model.error)}</p>`;
  return page(
    model.chrome,
    "Sign in",
    `${error}<form method="post" action="/login"><input type="hidden" name="next" value="${esc(model.next)}"><input name="username" value="${esc(model.username)}"><input name="password" type="password"><button type="submit">Sign in</button></form>`,
  );
}

export function renderError(model: ErrorPageModel): string {
  return page(model.chrome, model.title, `<h1>${esc(model.status)} ${esc(model.title)}</h1><p>${esc(model.message)}</p>`);
}

export function renderDeleteConfirm(model: DeleteConfirmModel): string {
  const also = model.alsoRemoved.map((tag) => `<li>${esc(tag)}</li>`).join("");
  return page(
    model.chrome,
    "Delete",
    `<p>Delete ${esc(model.repository)}:${esc(model.tag)} (${esc(model.digest)})?</p><ul id="also-removed">${also}</ul><form method="post" action="/delete"><input type="hidden" name="repository" value="${esc(model.repository)}"><input type="hidden" name="tag" value="${esc(model.tag)}"><input type="hidden" name="csrf" value="${esc(model.chrome.csrfToken ?? "")}"><button type="submit">Delete</button></form><a href="${esc(model.backUrl)}">Cancel</a>`,
  );
}
