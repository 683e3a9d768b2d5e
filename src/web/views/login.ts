// `/login`: the sign-in form. It posts back to /login; `next` says where to go afterwards.
import { html } from "./html.js";
import { renderPage } from "./layout.js";
import { loginUrl } from "./urls.js";
import type { LoginModel } from "../view-models.js";

export function renderLogin(model: LoginModel): string {
  const { chrome } = model;
  const error = model.error === null ? null : html`<p class="alert error" role="alert" id="login-error">${model.error}</p>`;
  const csrf = chrome.csrfToken === null ? null : html`<input type="hidden" name="csrf" value="${chrome.csrfToken}">`;
  const body = html`<div class="auth-card">
<h1>Sign in</h1>
<p class="muted">to <strong>${chrome.registryHost}</strong> with your registry account.</p>
${error}
<form class="stack" method="post" action="/login">
<input type="hidden" name="next" value="${model.next}">
${csrf}
<div class="field">
<label for="username">User name</label>
<input id="username" name="username" type="text" value="${model.username}" autocomplete="username" autocapitalize="none"
 spellcheck="false" required${model.username === "" ? html` autofocus` : null}${model.error === null ? null : html` aria-describedby="login-error"`}>
</div>
<div class="field">
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required${model.username === "" ? null : html` autofocus`}>
</div>
<button type="submit" class="button button-primary button-block">Sign in</button>
</form>
<p class="muted small">Anonymous users see only what the registry lets everyone pull.</p>
</div>`;
  return renderPage({ chrome, title: "Sign in", path: loginUrl(model.next), body, hideSignIn: true });
}
