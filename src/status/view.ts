// The status panel as HTML: server-rendered, no inline script or style (the page's CSP forbids both), its
// stylesheet and refresh script served beside it (assets.ts). Without JavaScript the Refresh link reloads it.
import type { CertificateStatus, PoolStatus, SiteStatus, StatusModel } from "./model.js";
import { STATUS_CLASSES, type SiteTraffic, type TrafficStatus } from "./traffic.js";

export const STATUS_PATH = "/status";
export const STYLESHEET_PATH = "/status.css";
export const SCRIPT_PATH = "/status.js";
/** How often the script refreshes the page, in seconds. */
export const REFRESH_SECONDS = 10;

const ENTITIES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

/** Text for element content and attribute values alike. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ENTITIES[c]!);
}

export function renderStatusPage(model: StatusModel): string {
  const e = escapeHtml;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${model.ready ? "Ready" : "Not ready"} · registry-gateway status</title>
<link rel="stylesheet" href="${STYLESHEET_PATH}">
<script src="${SCRIPT_PATH}" defer></script>
</head>
<body data-refresh-seconds="${REFRESH_SECONDS}">
<header class="top">
<h1>registry-gateway <span class="muted">status</span></h1>
<p class="meta"><span class="badge ${model.ready ? "ok" : "bad"}" id="readiness">${model.ready ? "ready" : "not ready"}</span>
<span class="muted">as of <time datetime="${e(model.generatedAt)}" id="generated">${e(clock(model.generatedAt))}</time></span>
<a href="${STATUS_PATH}" id="refresh">Refresh</a> <a href="${STATUS_PATH}.json" class="muted">JSON</a></p>
</header>
<main id="status">
${section("Traffic", trafficSection(model.traffic))}
${section("Backends", poolsSection(model.pools))}
${section("Certificates", certificatesSection(model.certificates))}
${section("Sites", sitesSection(model.sites))}
</main>
</body>
</html>
`;
}

function section(title: string, body: string): string {
  return `<section><h2>${escapeHtml(title)}</h2>\n${body}\n</section>`;
}

function table(head: readonly string[], rows: readonly string[], numeric: ReadonlySet<number> = new Set()): string {
  const cells = head.map((h, i) => `<th${numeric.has(i) ? ' class="num"' : ""}>${escapeHtml(h)}</th>`).join("");
  return `<div class="scroll"><table><thead><tr>${cells}</tr></thead><tbody>\n${rows.join("\n")}\n</tbody></table></div>`;
}

function sitesSection(sites: readonly SiteStatus[]): string {
  const e = escapeHtml;
  const rows = sites.map(
    (s) => `<tr><td>${e(s.name)}</td><td>${list(s.hosts)}</td><td><span class="tag">${e(s.auth)}</span></td><td>${list(s.backends)}</td></tr>`,
  );
  return table(["Site", "Hosts", "Auth", "Backends"], rows);
}

function certificatesSection(certificates: readonly CertificateStatus[]): string {
  const e = escapeHtml;
  const label = { ok: "", due: " (due for renewal)", expired: " (expired)" };
  const rows = certificates.map(
    (c) =>
      `<tr class="cert-${c.state}"><td>${e(c.site)}</td><td>${list(c.hosts)}</td>` +
      `<td class="num"><span class="badge ${c.state === "ok" ? "ok" : c.state === "due" ? "warn" : "bad"}">${c.daysLeft} days</span>${e(label[c.state])}</td>` +
      `<td><time datetime="${e(c.notAfter)}">${e(c.notAfter.slice(0, 10))}</time></td><td>${e(c.issuer)}</td><td class="mono">${e(c.serial)}</td></tr>`,
  );
  return table(["Site", "Hosts", "Days left", "Expires", "Issuer", "Serial"], rows, new Set([2]));
}

function poolsSection(pools: readonly PoolStatus[]): string {
  if (!pools.length) return `<p class="muted">No backends.</p>`;
  const e = escapeHtml;
  const rows = pools.flatMap((pool) => {
    const state = pool.healthy === pool.total ? "ok" : pool.reachable > 0 ? "warn" : "bad";
    const head = `<tr class="pool"><td colspan="2">${e(pool.pool)}</td><td><span class="badge ${state}">${pool.healthy}/${pool.total} healthy</span></td><td>${pool.reachable}/${pool.total} reachable</td><td></td></tr>`;
    const members = pool.backends.map(
      (b) =>
        `<tr class="backend ${b.healthy ? "healthy" : "unhealthy"}"><td></td><td class="mono">${e(b.backend)}</td>` +
        `<td>${b.healthy ? "healthy" : '<span class="badge bad">unhealthy</span>'}</td><td>${e(b.answer)}</td><td class="num">${b.outstanding}</td></tr>`,
    );
    return [head, ...members];
  });
  return table(["Pool", "Backend", "Health checks", "GET /v2/ now", "Outstanding"], rows, new Set([4]));
}

function trafficSection(traffic: TrafficStatus): string {
  if (traffic.metrics === "disabled") return `<p class="muted">Metrics are disabled (metrics.enabled: false): no rates to show.</p>`;
  if (traffic.windowSeconds === null) return `<p class="muted">First reading taken: rates appear at the next refresh.</p>`;
  const head = ["Site", "Requests/s", ...STATUS_CLASSES, "429/s", "Refused logins/s"];
  const rows = traffic.sites.map((s) => trafficRow(s));
  const numeric = new Set(head.map((_, i) => i).filter((i) => i > 0));
  return `<p class="muted">Per second, over the last ${Math.round(traffic.windowSeconds)} s.</p>\n${table(head, rows, numeric)}`;
}

function trafficRow(s: SiteTraffic): string {
  const cell = (value: number, warn = false) => `<td class="num${value > 0 && warn ? " warn-text" : ""}${value === 0 ? " zero" : ""}">${rate(value)}</td>`;
  const classes = STATUS_CLASSES.map((c) => cell(s.requests[c], c === "5xx")).join("");
  return `<tr><td>${escapeHtml(s.site)}</td>${cell(s.requests.total)}${classes}${cell(s.rateLimited, true)}${cell(s.refusedLogins, true)}</tr>`;
}

function list(items: readonly string[]): string {
  return items.map((item) => `<span class="item">${escapeHtml(item)}</span>`).join(" ");
}

function rate(value: number): string {
  if (value === 0) return "0";
  return value < 10 ? value.toFixed(2) : value.toFixed(1);
}

function clock(iso: string): string {
  return `${iso.slice(0, 10)} ${iso.slice(11, 19)} UTC`;
}
