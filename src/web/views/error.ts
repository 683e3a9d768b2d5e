// Any page that could not be shown: what happened, in words, and a way on.
import { html } from "./html.js";
import { renderPage } from "./layout.js";
import { loginUrl } from "./urls.js";
import type { ErrorPageModel } from "../view-models.js";

export function renderError(model: ErrorPageModel): string {
  const { chrome } = model;
  const path = chrome.currentPath ?? "/";
  // Not signed in and refused: signing in is the likely way on.
  const signIn = chrome.user === null && (model.status === 401 || model.status === 403)
    ? html`<a class="button button-primary" href="${loginUrl(path)}">Sign in</a>`
    : null;
  const body = html`<div class="error-card">
<p class="error-status">Error ${model.status}</p>
<h1>${model.title}</h1>
<p>${model.message}</p>
<p class="actions">${signIn}<a class="button" href="/">Back to repositories</a></p>
</div>`;
  return renderPage({ chrome, title: model.title, path, body });
}
