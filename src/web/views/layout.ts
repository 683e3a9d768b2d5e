// The document around every page: head with the hashed assets, a header naming the registry with the
// account controls, the notice, and a footer. No inline script or style anywhere, so a strict CSP
// (`script-src 'self'; style-src 'self'`) holds.
import { html, type Html, type HtmlValue } from "./html.js";
import { loginUrl } from "./urls.js";
import type { PageChrome } from "../view-models.js";

export interface Page {
  chrome: PageChrome;
  /** The page's own title; the registry host is appended. */
  title: string;
  /** This page's path and query, where "Sign in" returns to. */
  path: string;
  body: HtmlValue;
  /** The sign-in page itself shows no "Sign in" link. */
  hideSignIn?: boolean;
}

const LOGO = html`<svg class="brand-mark" viewBox="0 0 24 24" aria-hidden="true" focusable="false">
<path d="M3 7.5 12 3l9 4.5v9L12 21l-9-4.5z" fill="none" stroke="currentColor" stroke-width="1.8" stroke-linejoin="round"/>
<path d="M3 7.5 12 12l9-4.5M12 12v9" fill="none" stroke="currentColor" stroke-width="1.8" stroke-linejoin="round"/>
</svg>`;

function account(chrome: PageChrome, path: string, hideSignIn: boolean): Html {
  if (chrome.user !== null) {
    const logout = chrome.csrfToken === null ? null : html`<form class="inline-form" method="post" action="/logout">
<input type="hidden" name="csrf" value="${chrome.csrfToken}">
<button type="submit" class="button button-quiet">Sign out</button>
</form>`;
    return html`<span class="account-user user"><span class="visually-hidden">Signed in as </span>${chrome.user}</span>${logout}`;
  }
  if (hideSignIn) return html``;
  return html`<a class="button button-quiet" href="${loginUrl(path)}">Sign in</a>`;
}

function notice(text: string | null): Html | null {
  return text === null ? null : html`<p class="notice" role="status">${text}</p>`;
}

/** A complete HTML5 document. */
export function renderPage(page: Page): string {
  const { chrome } = page;
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<meta name="referrer" content="same-origin">
<title>${page.title} · ${chrome.registryHost}</title>
<link rel="stylesheet" href="${chrome.assets.css}">
<script src="${chrome.assets.js}" defer></script>
</head>
<body>
<a class="skip-link" href="#main">Skip to content</a>
<header class="site-header">
<div class="wrap header-row">
<a class="brand" href="/">${LOGO}<span class="brand-host">${chrome.registryHost}</span></a>
<nav class="account" aria-label="Account">${account(chrome, chrome.currentPath ?? page.path, page.hideSignIn ?? false)}</nav>
</div>
</header>
<main id="main" class="wrap" tabindex="-1">
${notice(chrome.notice)}
${page.body}
</main>
<footer class="site-footer">
<div class="wrap">Registry browser for <strong>${chrome.registryHost}</strong></div>
</footer>
<p class="visually-hidden" id="live-status" role="status" aria-live="polite"></p>
</body>
</html>
`.text;
}
