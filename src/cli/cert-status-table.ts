// `cert status` for people: one row per site and host, then notes for rows that need attention.
import type { HostCertificateInfo } from "../tls/cert-info.js";

const COLUMNS = ["SITE", "HOST", "SOURCE", "ISSUER", "SERIAL", "NOT BEFORE", "NOT AFTER", "DAYS LEFT", "SANS"] as const;

export function formatCertificateStatus(rows: readonly HostCertificateInfo[]): string {
  const cells = rows.map((row) => {
    const c = row.certificate;
    return [
      row.site,
      row.host,
      row.fallback ? `${row.source} (generated fallback)` : row.source,
      c ? shortName(c.issuer) : "-",
      c?.serial ?? "-",
      c ? minute(c.notBefore) : "-",
      c ? minute(c.notAfter) : "-",
      c ? String(c.daysLeft) : "-",
      c ? c.sans.join(", ") : "-",
    ];
  });
  const widths = COLUMNS.map((title, i) => Math.max(title.length, ...cells.map((row) => row[i]!.length)));
  const line = (values: readonly string[]) =>
    values
      .map((value, i) => (i === values.length - 1 ? value : value.padEnd(widths[i]!)))
      .join("  ")
      .trimEnd();
  return [line(COLUMNS), ...cells.map(line), ...notes(rows)].join("\n");
}

function notes(rows: readonly HostCertificateInfo[]): string[] {
  const lines: string[] = [];
  for (const row of rows) {
    const where = `${row.site} / ${row.host}`;
    if (row.problem) lines.push(`! ${where}: ${row.problem} (${row.file})`);
    if (row.fallback) lines.push(`! ${where}: no ACME certificate stored yet; the generated one is served until it arrives`);
    if (row.certificate && !row.certificate.coversHost) lines.push(`! ${where}: the certificate does not cover this host`);
    if (row.certificate && row.certificate.daysLeft < 0) lines.push(`! ${where}: the certificate has expired`);
    if (row.renewAt) lines.push(`  ${where}: ACME renewal due ${minute(row.renewAt)}`);
  }
  return lines.length ? ["", ...lines] : [];
}

/** The CN of a distinguished name as Node prints it ("CN=…\nO=…"), else the whole name on one line. */
function shortName(dn: string): string {
  const parts = dn.split("\n");
  const cn = parts.find((part) => part.startsWith("CN="));
  return cn ? cn.slice(3) : parts.join(", ");
}

function minute(date: Date): string {
  return `${date.toISOString().slice(0, 16).replace("T", " ")}Z`;
}
