// Commands that act on a running gateway through its admin listener (the address is the configuration's
// admin.listen): `reload`, `cert rotate`; and `cert status`, which reads the disk and needs no gateway.
import type { Command } from "commander";
import type { ReloadOutcome } from "../admin-actions.js";
import { postAdminAction } from "../admin-client.js";
import { adminTokenSource } from "../admin-token.js";
import type { GatewayConfig } from "../config/schema.js";
import { certificateStatus, fleetServed } from "../tls/cert-info.js";
import type { ServedReport } from "../tls/tls-store.js";
import { tlsStoreKind } from "../tls/tls-stores.js";
import type { RotatedCertificate, RotationOutcome } from "../tls/rotation.js";
import { formatCertificateStatus } from "./cert-status-table.js";

type LoadConfig = (file: string) => Promise<GatewayConfig>;

/** What the admin listener answers when it refuses a request itself (registry error format). */
interface AdminError {
  errors?: ({ message?: string } | string)[];
}

export function registerReloadCommand(program: Command, loadConfig: LoadConfig): void {
  program
    .command("reload")
    .description(
      "make the gateway running with this configuration re-read its configuration file (like SIGHUP); prints the " +
        "errors and exits non-zero if the new configuration cannot be applied (the running one then stays)",
    )
    .requiredOption("-c, --config <file>", "configuration file (YAML); its admin.listen says where the gateway is")
    .action(async ({ config: file }: { config: string }) => {
      const config = await loadConfig(file);
      const answer = await postOrExit<Partial<ReloadOutcome>>(config, "/reload");
      if (!answer.running) exitWith(`no gateway answers at ${answer.address} (admin.listen of ${file}): nothing to reload`);
      const outcome = answer.body;
      if (outcome.ok === true) {
        console.log(`reloaded: sites ${(outcome.sites ?? []).join(", ")}`);
        for (const key of outcome.warnings ?? []) console.error(`warning: ${key} changed, but only a restart applies it`);
        return;
      }
      const errors = adminErrors(outcome as AdminError);
      console.error("reload failed; the gateway keeps serving its current configuration:");
      for (const line of errors) console.error(line);
      process.exit(1);
    });
}

export function registerCertCommands(cert: Command, loadConfig: LoadConfig): void {
  cert
    .command("status")
    .description("per site and host: source, issuer, SANs, serial, validity and days left (read from the data directory or the shared TLS store, with what each gateway serves; the gateway need not run)")
    .requiredOption("-c, --config <file>", "configuration file (YAML)")
    .option("--json", "print JSON instead of a table")
    .action(async ({ config: file, json }: { config: string; json?: boolean }) => {
      const config = await loadConfig(file);
      const rows = await certificateStatus(config);
      if (tlsStoreKind(config) === "files") return console.log(json ? JSON.stringify(rows, null, 2) : formatCertificateStatus(rows));
      // A fleet: the store's certificates, and what each gateway reports it serves.
      const gateways = await fleetServed(config);
      if (json) return console.log(JSON.stringify({ certificates: rows, gateways }, null, 2));
      console.log(formatCertificateStatus(rows));
      console.log(formatFleetServed(gateways));
    });

  cert
    .command("rotate")
    .description(
      "new certificates: ACME re-issues, generated issues a new leaf, files are re-read. A running gateway (found " +
        "through its admin listener) serves them to new handshakes at once, without dropping connections; without " +
        "one, the data directory is updated for the next start",
    )
    .requiredOption("-c, --config <file>", "configuration file (YAML)")
    .option("--site <host>", "only this site (its name or one of its hosts)")
    .action(async ({ config: file, site }: { config: string; site?: string }) => {
      const config = await loadConfig(file);
      const query = site ? `?site=${encodeURIComponent(site)}` : "";
      const answer = await postOrExit<Partial<RotationOutcome>>(config, `/cert/rotate${query}`);
      let outcome: RotationOutcome;
      if (answer.running) {
        if (!Array.isArray(answer.body.certificates)) exitWith(adminErrors(answer.body as AdminError).join("\n"));
        outcome = answer.body as RotationOutcome;
        if (outcome.errors.length === 0) {
          console.log(`rotated by the running gateway (admin listener ${addressOf(config)}); new handshakes get the new certificates`);
        }
      } else {
        console.log(`no gateway answers at ${answer.address}: rotating in ${config.dataDir}; the next start serves the result`);
        const { rotateOnDisk } = await import("../tls/offline-rotation.js");
        outcome = await rotateOnDisk(config, site);
      }
      for (const error of outcome.errors) console.error(error);
      for (const result of outcome.certificates) (result.outcome === "failed" ? console.error : console.log)(describe(result));
      if (!outcome.ok) process.exit(1);
    });
}

function formatFleetServed(gateways: readonly ServedReport[]): string {
  if (gateways.length === 0) return "\nno gateway reports what it serves (none running, or none reached the shared store lately)";
  const lines = ["", "served by each gateway of the fleet:"];
  for (const gateway of gateways) {
    for (const certificate of gateway.certificates) lines.push(`  ${gateway.gateway}  ${certificate.site}  serial ${certificate.serial}  expires ${certificate.notAfter}  (reported ${gateway.at})`);
  }
  return lines.join("\n");
}

function describe(result: RotatedCertificate): string {
  const serials =
    result.outcome === "rotated"
      ? `serial ${result.previousSerial ?? "(none)"} -> ${result.serial}, expires ${result.notAfter}`
      : `serial ${result.serial ?? "(none)"}`;
  return `${result.site} (${result.source}): ${result.outcome}, ${serials}: ${result.message}`;
}

async function postOrExit<T>(config: GatewayConfig, path: string) {
  let answer: Awaited<ReturnType<typeof postAdminAction<T>>>;
  try {
    answer = await postAdminAction<T>(config, path);
  } catch (error) {
    return exitWith((error as Error).message);
  }
  if (answer.running && answer.status === 401) {
    const why = answer.tokenProblem ?? `the token from ${adminTokenSource(config)} is not the one the running gateway was started with (it reads it at start)`;
    exitWith(`the admin listener at ${addressOf(config)} refused the admin token: ${why}`);
  }
  return answer;
}

/** Error lines of a failed action (strings) or of a refused request (registry errors). */
function adminErrors(body: AdminError): string[] {
  const messages = (body.errors ?? []).map((error) => (typeof error === "string" ? error : (error.message ?? ""))).filter(Boolean);
  return messages.length ? messages : [`unexpected answer from the admin listener: ${JSON.stringify(body)}`];
}

function addressOf(config: GatewayConfig): string {
  const { host, port } = config.admin.listen;
  return `${host.includes(":") ? `[${host}]` : host}:${port}`;
}

function exitWith(message: string): never {
  console.error(message);
  process.exit(1);
}
