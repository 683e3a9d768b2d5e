// `/tag/<name>:<tag>`: one tag — how to pull it, what it is, what it is made of, and what points at it.
import { commandLine, deleteEntry, repositoryCrumbs } from "./components.js";
import { count, digestElement, formatBytes, platformName, timeElement } from "./format.js";
import { html, type Html } from "./html.js";
import { renderPage } from "./layout.js";
import { tagUrl } from "./urls.js";
import type { HistoryEntry, Layer, Platform, Referrer, TagDetailsModel } from "../view-models.js";

function section(id: string, title: string, content: Html): Html {
  return html`<section class="section" aria-labelledby="${id}"><h2 id="${id}">${title}</h2>${content}</section>`;
}

function none(text: string): Html {
  return html`<p class="muted">${text}</p>`;
}

function summary(model: TagDetailsModel): Html {
  return html`<dl class="facts">
<div><dt>Digest</dt><dd><code class="digest digest-full">${model.digest}</code></dd></div>
<div><dt>Media type</dt><dd><code>${model.mediaType}</code></dd></div>
<div><dt>Size</dt><dd>${formatBytes(model.size)}</dd></div>
<div><dt>Created</dt><dd>${timeElement(model.created)}</dd></div>
</dl>`;
}

function platformTable(platforms: Platform[]): Html {
  const rows = platforms.map((p) => html`<tr><th scope="row" data-label="Platform">${platformName(p)}</th><td
data-label="Digest">${digestElement(p.digest)}</td></tr>`);
  return html`<div class="table-scroll"><table class="data stack-on-small">
<caption>${count(platforms.length, "platform")} in this index</caption>
<thead><tr><th scope="col">Platform</th><th scope="col">Digest</th></tr></thead>
<tbody>${rows}</tbody></table></div>`;
}

function layerTable(layers: Layer[], of: Platform | null): Html {
  if (layers.length === 0) return none("This manifest has no layers.");
  const total = layers.reduce((sum, layer) => sum + layer.size, 0);
  const rows = layers.map((layer, i) => html`<tr><td data-label="#" class="numeric">${i + 1}</td><td
data-label="Digest">${digestElement(layer.digest)}</td><td data-label="Media type"><code class="wrap-anywhere">${layer.mediaType}</code></td><td
data-label="Size" class="numeric">${formatBytes(layer.size)}</td></tr>`);
  const platform = of === null ? "" : ` of ${platformName(of)}`;
  return html`<div class="table-scroll"><table class="data stack-on-small">
<caption>${count(layers.length, "layer")}${platform}, ${formatBytes(total)} compressed</caption>
<thead><tr><th scope="col" class="numeric">#</th><th scope="col">Digest</th><th scope="col">Media type</th><th scope="col" class="numeric">Size</th></tr></thead>
<tbody>${rows}</tbody></table></div>`;
}

function labelTable(labels: Record<string, string>): Html {
  const entries = Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  if (entries.length === 0) return none("The image config sets no labels.");
  const rows = entries.map(([key, value]) => html`<tr><th scope="row" data-label="Label"><code class="wrap-anywhere">${key}</code></th><td
data-label="Value" class="wrap-anywhere">${value}</td></tr>`);
  return html`<div class="table-scroll"><table class="data stack-on-small key-value">
<caption>${count(entries.length, "label")}</caption>
<thead><tr><th scope="col">Label</th><th scope="col">Value</th></tr></thead>
<tbody>${rows}</tbody></table></div>`;
}

function historyList(history: HistoryEntry[]): Html {
  if (history.length === 0) return none("The image config records no history.");
  const steps = history.map((entry) => html`<li class="${entry.emptyLayer ? "history-step empty-layer" : "history-step"}">
<div class="history-meta">${timeElement(entry.created)}<span class="chip">${entry.emptyLayer ? "no layer" : "layer"}</span></div>
<pre class="history-command"><code>${entry.createdBy === "" ? "(no command recorded)" : entry.createdBy}</code></pre>
</li>`);
  return html`<ol class="history">${steps}</ol>`;
}

function annotations(values: Record<string, string>): Html {
  const entries = Object.entries(values);
  if (entries.length === 0) return html`<span class="muted">none</span>`;
  return html`<dl class="annotations">${entries.map(([key, value]) => html`<div><dt>${key}</dt><dd>${value}</dd></div>`)}</dl>`;
}

function referrerTable(referrers: Referrer[]): Html {
  if (referrers.length === 0) return none("No signatures, SBOMs or attestations refer to this image.");
  const rows = referrers.map((r) => html`<tr class="referrer"><th scope="row" data-label="Artifact type"><code class="wrap-anywhere">${r.artifactType}</code></th><td
data-label="Digest">${digestElement(r.digest)}</td><td data-label="Size" class="numeric">${formatBytes(r.size)}</td><td
data-label="Annotations">${annotations(r.annotations)}</td></tr>`);
  return html`<div class="table-scroll"><table class="data stack-on-small">
<caption>${count(referrers.length, "referrer")}</caption>
<thead><tr><th scope="col">Artifact type</th><th scope="col">Digest</th><th scope="col" class="numeric">Size</th><th scope="col">Annotations</th></tr></thead>
<tbody id="referrers">${rows}</tbody></table></div>`;
}

function dangerZone(model: TagDetailsModel): Html | null {
  const entry = deleteEntry(model.repository, model.tag, model.canDelete, "Delete this tag…");
  if (entry === null) return null;
  return section("delete-heading", "Delete", html`<div class="danger-panel"><p>Deleting removes the tag from the registry for
everyone. You will be asked to confirm.</p>${entry}</div>`);
}

export function renderTagDetails(model: TagDetailsModel): string {
  const platforms = model.platforms.length === 0 ? null : section("platforms-heading", "Platforms", platformTable(model.platforms));
  const body = html`${repositoryCrumbs(model.repository, model.tag)}
<div class="page-heading"><h1 class="repo-title"><span class="title-repo">${model.repository}</span><span class="title-sep">:</span><span
class="title-tag">${model.tag}</span></h1></div>
<section class="panel" aria-label="Pull">
${commandLine("By tag", model.pullByTag, "pull-by-tag")}
${commandLine("By digest", model.pullByDigest, "pull-by-digest")}
</section>
${section("summary-heading", "Summary", summary(model))}
${platforms}
${section("layers-heading", "Layers", layerTable(model.layers, model.layersOf))}
${section("labels-heading", "Labels", labelTable(model.labels))}
${section("history-heading", "History", historyList(model.history))}
${section("referrers-heading", "Referrers", referrerTable(model.referrers))}
${dangerZone(model)}`;
  return renderPage({ chrome: model.chrome, title: `${model.repository}:${model.tag}`, path: tagUrl(model.repository, model.tag), body });
}
