// The status panel's stylesheet and refresh script, served by the admin listener itself (the page's CSP
// allows only same-origin files). The script only makes the page refresh itself in place: the page works
// without it.

export const STATUS_CSS = `
:root { color-scheme: light dark; --bg: #f7f8fa; --card: #fff; --text: #1d2430; --muted: #6b7482; --line: #e3e6ea;
  --ok: #1f7a3d; --ok-bg: #e3f4e8; --warn: #8a5a00; --warn-bg: #fdf0d2; --bad: #b3261e; --bad-bg: #fbe3e1; --accent: #2456c7; }
@media (prefers-color-scheme: dark) {
  :root { --bg: #14171c; --card: #1c2027; --text: #e6e9ee; --muted: #98a1ae; --line: #2c323b;
    --ok: #7ad59a; --ok-bg: #1d3a27; --warn: #f0c46a; --warn-bg: #3d3117; --bad: #ff8a80; --bad-bg: #43201e; --accent: #8fb0ff; }
}
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--text); font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
.top { display: flex; flex-wrap: wrap; align-items: baseline; justify-content: space-between; gap: 4px 16px; padding: 16px 24px; border-bottom: 1px solid var(--line); background: var(--card); }
h1 { margin: 0; font-size: 18px; font-weight: 600; }
h2 { margin: 0 0 10px; font-size: 15px; font-weight: 600; }
.meta { margin: 0; display: flex; flex-wrap: wrap; align-items: center; gap: 10px; }
main { max-width: 1200px; margin: 0 auto; padding: 16px 24px 32px; display: grid; gap: 16px; }
section { min-width: 0; background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 14px 16px; }
.scroll { overflow-x: auto; }
table { width: 100%; border-collapse: collapse; }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid var(--line); vertical-align: top; white-space: nowrap; }
th { font-weight: 600; color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .03em; }
tbody tr:last-child td { border-bottom: 0; }
.num { text-align: right; font-variant-numeric: tabular-nums; }
.mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12.5px; }
.muted, .zero { color: var(--muted); }
.item { display: inline-block; margin: 0 6px 2px 0; white-space: nowrap; }
td:has(.item) { white-space: normal; min-width: 9em; }
.tag { display: inline-block; padding: 0 6px; border: 1px solid var(--line); border-radius: 4px; font-size: 12px; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 999px; font-size: 12px; font-weight: 600; }
.badge.ok { color: var(--ok); background: var(--ok-bg); }
.badge.warn { color: var(--warn); background: var(--warn-bg); }
.badge.bad { color: var(--bad); background: var(--bad-bg); }
.warn-text { color: var(--warn); font-weight: 600; }
tr.pool td { font-weight: 600; padding-top: 10px; }
tr.unhealthy td { background: var(--bad-bg); }
a { color: var(--accent); }
body.stale #generated { color: var(--bad); }
@media (max-width: 600px) { .top, main { padding-left: 12px; padding-right: 12px; } th, td { padding: 5px 6px; } }
`;

/** Replaces the page's main part and header every few seconds; on a failed refresh the time turns red (stale). */
export const STATUS_JS = `"use strict";
(function () {
  var seconds = Number(document.body.getAttribute("data-refresh-seconds")) || 10;
  function swap(html) {
    var next = new DOMParser().parseFromString(html, "text/html");
    ["status", "readiness", "generated"].forEach(function (id) {
      var now = document.getElementById(id), fresh = next.getElementById(id);
      if (now && fresh) now.replaceWith(fresh);
    });
    document.title = next.title;
    document.body.classList.remove("stale");
  }
  function refresh() {
    if (document.hidden) return;
    fetch(location.pathname, { cache: "no-store", headers: { Accept: "text/html" } })
      .then(function (res) { if (!res.ok) throw new Error(String(res.status)); return res.text(); })
      .then(swap)
      .catch(function () { document.body.classList.add("stale"); });
  }
  setInterval(refresh, seconds * 1000);
  document.addEventListener("visibilitychange", refresh);
})();
`;
