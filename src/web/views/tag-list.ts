// `/repo/<name>`: a repository's tags, newest version first, one row each with what tells them apart.
import { commandLine, copyButton, deleteEntry, emptyState, repositoryCrumbs } from "./components.js";
import { count, digestElement, formatBytes, platformName, timeElement } from "./format.js";
import { html, join, type Html } from "./html.js";
import { renderPage } from "./layout.js";
import { pullCommand, repositoryUrl, sitePath } from "./urls.js";
import type { TagListModel, TagSummary } from "../view-models.js";

function platforms(tag: TagSummary): Html {
  if (tag.platforms.length === 0) return html`<span class="muted">single platform</span>`;
  const names = tag.platforms.map((platform) => html`<span class="chip">${platformName(platform)}</span>`);
  return html`<span class="chips">${join(names, " ")}</span>`;
}

function tagRow(model: TagListModel, tag: TagSummary): Html {
  const pull = pullCommand(model.chrome.registryHost, model.repository, tag.name);
  return html`<tr>
<th scope="row" data-label="Tag"><a class="tag-link tag" href="${sitePath(tag.url)}">${tag.name}</a></th>
<td data-label="Digest">${digestElement(tag.digest)}</td>
<td data-label="Size" class="numeric">${formatBytes(tag.size)}</td>
<td data-label="Created">${timeElement(tag.created)}</td>
<td data-label="Platforms">${platforms(tag)}</td>
<td class="row-actions">${copyButton(pull, `pull command for ${tag.name}`)}${deleteEntry(model.repository, tag.name, model.canDelete, html`Delete<span class="visually-hidden"> ${tag.name}</span>`)}</td>
</tr>`;
}

function tagTable(model: TagListModel): Html {
  return html`<div class="table-scroll">
<table class="data stack-on-small">
<caption>${count(model.tags.length, "tag")}, newest version first</caption>
<thead><tr><th scope="col">Tag</th><th scope="col">Digest</th><th scope="col" class="numeric">Size</th><th scope="col">Created</th><th
scope="col">Platforms</th><th scope="col"><span class="visually-hidden">Actions</span></th></tr></thead>
<tbody id="tags">
${model.tags.map((tag) => tagRow(model, tag))}
</tbody>
</table>
</div>`;
}

export function renderTagList(model: TagListModel): string {
  const example = model.tags[0]?.name ?? "TAG";
  const content = model.tags.length === 0
    ? emptyState("No tags", "This repository has no tags; its images may have been deleted.")
    : tagTable(model);
  const next = model.nextPageUrl ? html`<p class="actions"><a class="button next-page" href="${sitePath(model.nextPageUrl)}" rel="next">Next page</a></p>` : null;
  const body = html`${repositoryCrumbs(model.repository, null)}
<div class="page-heading"><h1 class="repo-title">${model.repository}</h1></div>
<section class="panel" aria-label="Pull">
${commandLine("Pull", pullCommand(model.chrome.registryHost, model.repository, example), "pull-example")}
</section>
${content}
${next}`;
  return renderPage({ chrome: model.chrome, title: model.repository, path: repositoryUrl(model.repository), body });
}
