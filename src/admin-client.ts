// How the CLI reaches a running gateway: a POST to its admin listener, at the address the configuration
// names, with the admin token the same configuration leads to (admin-token.ts). A refused connection means
// no gateway runs with that configuration.
import http from "node:http";
import { readAdminToken } from "./admin-token.js";
import type { GatewayConfig } from "./config/schema.js";

export type AdminAnswer<T> =
  | { running: true; status: number; body: T; /** Why no token was sent, when none was. */ tokenProblem?: string }
  | { running: false; address: string };

// An ACME order behind `cert rotate` may take minutes (validation, the CA's queue).
const ACTION_TIMEOUT_MS = 15 * 60_000;

export async function postAdminAction<T>(config: Pick<GatewayConfig, "admin" | "dataDir">, path: string, timeoutMs = ACTION_TIMEOUT_MS): Promise<AdminAnswer<T>> {
  // Read lazily and never fatal here: without a running gateway (`cert rotate` then works on disk) none is needed.
  const credential = await readAdminToken(config);
  const headers: Record<string, string> = "token" in credential ? { Authorization: `Bearer ${credential.token}` } : {};
  const answer = await post<T>(config, path, headers, timeoutMs);
  return answer.running && "problem" in credential ? { ...answer, tokenProblem: credential.problem } : answer;
}

function post<T>(config: Pick<GatewayConfig, "admin">, path: string, headers: Record<string, string>, timeoutMs: number): Promise<AdminAnswer<T>> {
  const { host, port } = config.admin.listen;
  // A listener on every interface is reached through loopback.
  const target = host === "0.0.0.0" ? "127.0.0.1" : host === "::" ? "::1" : host;
  const address = `${target.includes(":") ? `[${target}]` : target}:${port}`;
  return new Promise((resolve, reject) => {
    const request = http.request({ host: target, port, method: "POST", path, headers, agent: false, timeout: timeoutMs }, (response) => {
      let text = "";
      response.setEncoding("utf8").on("data", (chunk: string) => (text += chunk));
      response.on("end", () => {
        try {
          resolve({ running: true, status: response.statusCode ?? 0, body: JSON.parse(text) as T });
        } catch {
          reject(new Error(`the admin listener at ${address} answered ${response.statusCode} with something that is not JSON: ${text.slice(0, 200)}`));
        }
      });
    });
    request.on("timeout", () => request.destroy(new Error(`no answer from the admin listener at ${address} within ${timeoutMs / 1000} s`)));
    request.on("error", (error: NodeJS.ErrnoException) => {
      if (error.code === "ECONNREFUSED") resolve({ running: false, address });
      else reject(new Error(`cannot reach the admin listener at ${address}: ${error.message}`));
    });
    request.end();
  });
}
