// The admin listener's actions, reached by the `reload` and `cert rotate` commands (admin-client.ts):
//   POST /reload                  re-read the configuration file and swap it in (same as SIGHUP)
//   POST /cert/rotate[?site=HOST] new certificates, served at once to new handshakes
// Both answer JSON with `ok`; the HTTP status is 200 when ok, else 422. Both need the admin token
// (admin-token.ts) as `Authorization: Bearer …`: without it, 401 and nothing happens.
import type { IncomingMessage, ServerResponse } from "node:http";
import type { AdminCredential } from "./admin-token.js";
import { API_VERSION, API_VERSION_HEADER, sendError } from "./registry/errors.js";
import type { RotationOutcome } from "./tls/rotation.js";

export type ReloadOutcome =
  | { ok: true; sites: string[]; /** Changed keys only a restart applies. */ warnings: string[] }
  | { ok: false; errors: string[] };

export interface AdminActions {
  reload(): Promise<ReloadOutcome>;
  rotateCertificates(site: string | undefined): Promise<RotationOutcome>;
}

export async function handleAdminAction(
  req: IncomingMessage,
  res: ServerResponse,
  actions: AdminActions | null,
  credential: AdminCredential | null,
): Promise<void> {
  req.resume(); // no body is expected; drain whatever came
  // Browsers send Origin with every cross-site POST, the CLI and curl do not: a web page the operator
  // happens to have open cannot make the gateway reload or order certificates.
  if (req.headers.origin !== undefined) return void sendError(res, "denied", "admin actions are not accepted from browsers");
  const url = new URL(req.url ?? "/", "http://admin");
  if (!actions) return void sendError(res, "notFound", "this admin listener has no actions");
  // Any local user can reach a loopback port: the token is what says the caller is the gateway's operator.
  if (!credential?.accepts(req.headers.authorization)) {
    return void sendError(res, "unauthorized", "admin actions need the admin token as Authorization: Bearer <token>", {
      "WWW-Authenticate": 'Bearer realm="registry-gateway admin"',
    });
  }
  switch (url.pathname) {
    case "/reload":
      return answer(res, await actions.reload());
    case "/cert/rotate":
      return answer(res, await actions.rotateCertificates(url.searchParams.get("site") ?? undefined));
    default:
      sendError(res, "notFound", `no admin action at POST ${url.pathname}`);
  }
}

function answer(res: ServerResponse, outcome: { ok: boolean }): void {
  const text = JSON.stringify(outcome);
  res.writeHead(outcome.ok ? 200 : 422, {
    "Content-Type": "application/json; charset=utf-8",
    "Content-Length": Buffer.byteLength(text),
    "Cache-Control": "no-store",
    [API_VERSION_HEADER]: API_VERSION,
  });
  res.end(text);
}
