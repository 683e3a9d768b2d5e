// Pieces several pages share: breadcrumbs, copyable commands, the delete entry point, empty states.
import { html, type Html, type HtmlValue } from "./html.js";
import { deleteConfirmUrl, repositoryUrl } from "./urls.js";

export interface Crumb {
  label: string;
  /** null for the current page (the last crumb). */
  url: string | null;
}

export function breadcrumbs(crumbs: Crumb[]): Html {
  const items = crumbs.map((crumb) =>
    crumb.url === null
      ? html`<li><span aria-current="page">${crumb.label}</span></li>`
      : html`<li><a href="${crumb.url}">${crumb.label}</a></li>`,
  );
  return html`<nav class="breadcrumbs" aria-label="Breadcrumb"><ol>${items}</ol></nav>`;
}

/** Repositories › a/b › (tag): the trail down to a repository, with `last` as the current page if given. */
export function repositoryCrumbs(repository: string, last: string | null): Html {
  const crumbs: Crumb[] = [{ label: "Repositories", url: "/" }];
  crumbs.push({ label: repository, url: last === null ? null : repositoryUrl(repository) });
  if (last !== null) crumbs.push({ label: last, url: null });
  return breadcrumbs(crumbs);
}

/**
 * A button that copies `text`; hidden until the script shows it, since without script it could do
 * nothing. `what` completes its accessible name ("Copy" + what).
 */
export function copyButton(text: string, what: string): Html {
  return html`<button type="button" class="button button-small copy-button" data-copy="${text}" hidden><span
class="copy-label">Copy</span><span class="visually-hidden"> ${what}</span></button>`;
}

/** A command shown as selectable text, with its copy button. */
export function commandLine(label: string, command: string, id: string): Html {
  return html`<div class="command">
<span class="command-label">${label}</span>
<code class="command-text" id="${id}">${command}</code>
${copyButton(command, `command: ${command}`)}
</div>`;
}

/**
 * The way to delete a tag: a link to the confirmation page, which holds the real (POST, CSRF-checked)
 * form. Shown only to users allowed to delete.
 */
export function deleteEntry(repository: string, tag: string, canDelete: boolean, label: HtmlValue): Html | null {
  if (!canDelete) return null;
  return html`<a class="button button-danger-quiet button-small delete" href="${deleteConfirmUrl(repository, tag)}">${label}</a>`;
}

export function emptyState(title: string, detail: HtmlValue): Html {
  return html`<div class="empty"><p class="empty-title">${title}</p><p class="muted">${detail}</p></div>`;
}
