// `/delete?repository=&tag=`: the last step before a tag is deleted. The form posts the CSRF token
// of the session; without one (no session) there is nothing to confirm with, so no form is shown.
import { breadcrumbs } from "./components.js";
import { digestElement } from "./format.js";
import { html, type Html } from "./html.js";
import { renderPage } from "./layout.js";
import { deleteConfirmUrl, repositoryUrl, sitePath, tagUrl } from "./urls.js";
import type { DeleteConfirmModel } from "../view-models.js";

function alsoRemoved(model: DeleteConfirmModel): Html | null {
  const unchecked = model.alsoRemovedComplete
    ? null
    : html`<p class="alert" role="alert">Not every other tag of this repository could be checked: tags not listed here may point at this image and would be deleted with it.</p>`;
  if (model.alsoRemoved.length === 0) return unchecked;
  const tags = model.alsoRemoved.map((tag) => html`<li><code>${model.repository}:${tag}</code></li>`);
  return html`<p>The registry deletes by digest, so these tags of the same image are deleted too:</p>
<ul class="also-removed">${tags}</ul>${unchecked}`;
}

function confirmForm(model: DeleteConfirmModel): Html {
  const back = html`<a class="button" href="${sitePath(model.backUrl)}">Cancel</a>`;
  if (model.chrome.csrfToken === null) {
    return html`<p class="alert" role="alert">Sign in to delete tags.</p><p class="actions">${back}</p>`;
  }
  return html`<form method="post" action="/delete" class="actions">
<input type="hidden" name="repository" value="${model.repository}">
<input type="hidden" name="tag" value="${model.tag}">
<input type="hidden" name="digest" value="${model.digest}">
<input type="hidden" name="csrf" value="${model.chrome.csrfToken}">
<button type="submit" class="button button-danger">Delete ${model.repository}:${model.tag}</button>
${back}
</form>`;
}

export function renderDeleteConfirm(model: DeleteConfirmModel): string {
  const crumbs = breadcrumbs([
    { label: "Repositories", url: "/" },
    { label: model.repository, url: repositoryUrl(model.repository) },
    { label: model.tag, url: tagUrl(model.repository, model.tag) },
    { label: "Delete", url: null },
  ]);
  const body = html`${crumbs}
<div class="danger-panel confirm">
<h1>Delete this tag?</h1>
<p><strong class="wrap-anywhere">${model.repository}:${model.tag}</strong> (${digestElement(model.digest)}) will be deleted from the
registry. This cannot be undone.</p>
${alsoRemoved(model)}
${confirmForm(model)}
</div>`;
  const path = deleteConfirmUrl(model.repository, model.tag);
  return renderPage({ chrome: model.chrome, title: `Delete ${model.repository}:${model.tag}`, path, body });
}
