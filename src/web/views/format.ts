// Sizes, dates, digests and platforms as people read them.
import { html, type Html } from "./html.js";
import type { Platform } from "../view-models.js";

const UNITS = ["KiB", "MiB", "GiB", "TiB", "PiB"];

/** Bytes in binary units with three significant digits at most: `512 B`, `1.5 KiB`, `23.4 MiB`, `118 MiB`. */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes) || bytes < 0) return "unknown";
  if (bytes < 1024) return `${Math.round(bytes)} B`;
  let value = bytes;
  let unit = -1;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  const digits = value >= 100 ? 0 : value >= 10 ? 1 : 2;
  return `${Number(value.toFixed(digits))} ${UNITS[unit]}`;
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/** `5 Jan 2024, 09:07 UTC`, the same on every server whatever its locale and zone. */
function formatDate(date: Date): string {
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${date.getUTCDate()} ${MONTHS[date.getUTCMonth()]} ${date.getUTCFullYear()}, ` +
    `${pad(date.getUTCHours())}:${pad(date.getUTCMinutes())} UTC`;
}

/** A `<time>` for an ISO 8601 string; text that is not a date shows as given, and null as "unknown". */
export function timeElement(iso: string | null): Html {
  if (iso === null) return html`<span class="muted">unknown</span>`;
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return html`${iso}`;
  return html`<time datetime="${date.toISOString()}">${formatDate(date)}</time>`;
}

/** `sha256:0123456789ab` — enough to tell digests apart on a page; the full one is in the title. */
function shortDigest(digest: string): string {
  const colon = digest.indexOf(":");
  return colon < 0 ? digest.slice(0, 12) : digest.slice(0, colon + 13);
}

export function digestElement(digest: string): Html {
  const short = shortDigest(digest);
  if (short === digest) return html`<code class="digest">${digest}</code>`;
  return html`<code class="digest" title="${digest}">${short}…</code>`;
}

/** `linux/arm64/v8`, as `--platform` takes it. */
export function platformName(platform: Platform): string {
  return [platform.os, platform.architecture, platform.variant].filter((part) => part).join("/");
}

/** "1 tag", "3 tags". */
export function count(n: number, singular: string, plural = `${singular}s`): string {
  return `${n} ${n === 1 ? singular : plural}`;
}
