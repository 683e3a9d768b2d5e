// `/` and `/?q=`: the search form and one page of repositories. The script swaps #repository-results
// with the same element from a fetched page as the user types, so this markup is its contract too.
import { emptyState } from "./components.js";
import { count } from "./format.js";
import { html, type Html } from "./html.js";
import { renderPage } from "./layout.js";
import { sitePath } from "./urls.js";
import type { RepositoryListModel, RepositorySummary } from "../view-models.js";

function repositoryItem(repository: RepositorySummary): Html {
  const slash = repository.name.lastIndexOf("/");
  const namespace = slash < 0 ? "" : repository.name.slice(0, slash + 1);
  const leaf = repository.name.slice(slash + 1);
  return html`<li><a class="repo-link repository" href="${sitePath(repository.url)}"><span class="repo-namespace">${namespace}</span><span
class="repo-leaf">${leaf}</span></a></li>`;
}

function pager(model: RepositoryListModel): Html | null {
  if (model.firstPageUrl === null && model.nextPageUrl === null) return null;
  const first = model.firstPageUrl === null ? null : html`<a class="button first" href="${sitePath(model.firstPageUrl)}">First page</a>`;
  const next = model.nextPageUrl === null ? null : html`<a class="button next" rel="next" id="next-page" href="${sitePath(model.nextPageUrl)}">Next page</a>`;
  return html`<nav class="pager" aria-label="Pages">${first}${next}</nav>`;
}

function status(model: RepositoryListModel): string {
  const shown = count(model.repositories.length, "repository", "repositories");
  const more = model.nextPageUrl === null ? "" : " on this page";
  return model.query === "" ? `${shown}${more}` : `${shown} matching “${model.query}”${more}`;
}

function results(model: RepositoryListModel): Html {
  if (model.repositories.length === 0) {
    const empty = model.query === ""
      ? emptyState("No repositories yet", html`Push an image, e.g. <code>docker push ${model.chrome.registryHost}/team/app:1.0</code>, and it appears here.`)
      : emptyState(`Nothing matches “${model.query}”`, "Try a shorter search or part of a name.");
    return html`<div id="repository-results">${empty}${pager(model)}</div>`;
  }
  return html`<div id="repository-results">
<ul class="repo-list" id="repositories">${model.repositories.map(repositoryItem)}</ul>
${pager(model)}
</div>`;
}

export function renderRepositoryList(model: RepositoryListModel): string {
  const body = html`<div class="page-heading"><h1>Repositories</h1></div>
<form class="search" method="get" action="/" role="search">
<label for="repository-search">Search repositories</label>
<div class="search-row">
<input id="repository-search" type="search" name="q" value="${model.query}" autocomplete="off" spellcheck="false"
 autocapitalize="none" placeholder="Name or part of a name" data-live-search>
<button type="submit" class="button button-primary">Search</button>
</div>
</form>
<p class="result-status muted" id="result-status" aria-live="polite">${status(model)}</p>
${results(model)}`;
  const path = model.query === "" ? "/" : `/?${new URLSearchParams({ q: model.query }).toString()}`;
  return renderPage({ chrome: model.chrome, title: model.query === "" ? "Repositories" : `Search: ${model.query}`, path, body });
}
