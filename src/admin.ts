// The admin listener: plain HTTP, loopback by default. Liveness says the process answers; readiness
// says the HTTPS listener is up and every pool has a backend registry that answers at all, probed now (any
// HTTP status counts: a backend with its own auth answers 401 to an anonymous /v2/, and that is up); each
// backend's entry also carries its pool's view (health checks, requests outstanding). /metrics is the
// Prometheus text exposition, when metrics are enabled: these answer anyone who reaches the listener, and so
// does the status panel (status/handler.ts), which shows the same things read-only. POST requests are admin
// actions (admin-actions.ts) and need the admin token (admin-token.ts).
import { once } from "node:events";
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import { handleAdminAction, type AdminActions } from "./admin-actions.js";
import type { AdminCredential } from "./admin-token.js";
import { probeBackend, type BackendProbe } from "./backends/probe.js";
import { isLoopback } from "./config/rules.js";
import { sendError, sendJson } from "./registry/errors.js";
import { parseHostHeader } from "./sites.js";

/** The data plane's view: listening, and every backend of every pool as its health checks see it. */
export interface ReadinessSource {
  readiness(): Promise<{ listening: boolean; backends: readonly { pool: string; url: string; healthy: boolean; outstanding: number }[] }>;
}

/** What /metrics serves; GatewayMetrics is one. */
export interface MetricsExporter {
  readonly contentType: string;
  exposition(): Promise<string>;
}

/** Read-only pages beside the fixed endpoints (the status panel, status/handler.ts). */
export interface AdminPages {
  serves(path: string): boolean;
  handle(req: IncomingMessage, res: ServerResponse, path: string): Promise<void>;
}

const NO_STORE = { "Cache-Control": "no-store" };

/** One backend as /readyz reports it: the pool's view, and whether it answers GET /v2/ now. */
export type ProbedBackend = { pool: string; healthy: boolean; outstanding: number } & BackendProbe;

/** What /readyz answers (and the status panel shows): every backend probed now; ready when every pool has one that answers. */
export async function probeReadiness(readiness: ReadinessSource): Promise<{ ready: boolean; listening: boolean; backends: ProbedBackend[] }> {
  const { listening, backends: members } = await readiness.readiness();
  const probes = await Promise.all(members.map((member) => probeBackend(new URL(member.url))));
  const backends = members.map((member, index) => ({ pool: member.pool, ...probes[index]!, healthy: member.healthy, outstanding: member.outstanding }));
  const unserved = new Set(backends.map((b) => b.pool));
  for (const b of backends) if (b.reachable) unserved.delete(b.pool);
  return { ready: listening && unserved.size === 0, listening, backends };
}

export function createAdminServer(
  readiness: ReadinessSource,
  exporter: MetricsExporter | null = null,
  actions: AdminActions | null = null,
  allowedHosts: () => readonly string[] = () => [],
  /** What actions demand; null refuses every action. */
  credential: AdminCredential | null = null,
  /** GET /status and its assets; null: no status panel. */
  status: AdminPages | null = null,
): http.Server {
  const server = http.createServer((req, res) => {
    // DNS rebinding: a web page whose name resolves to 127.0.0.1 could read /metrics or POST /reload from
    // the user's browser. The browser sends that page's name as Host; only loopback names are answered.
    if (!isAdminHost(req.headers.host, allowedHosts())) {
      sendError(res, "misdirected", "the admin listener answers only Host localhost, a loopback address, or admin.hosts", { Connection: "close" });
      return;
    }
    const handled = req.method === "POST" ? handleAdminAction(req, res, actions, credential) : handleAdmin(req, res, readiness, exporter, status);
    void handled.catch(() => sendError(res, "internal", "admin request failed"));
  });
  // Node would answer Expect: 100-continue before the token is checked, and read the body announced. No admin
  // endpoint reads a body: the client is never invited, and the connection closes after the answer so the
  // body it may send anyway is not read as a next request.
  server.on("checkContinue", (req: IncomingMessage, res: ServerResponse) => {
    res.setHeader("Connection", "close");
    server.emit("request", req, res);
  });
  return server;
}

/** Opens the admin listener (apart from listeners.ts: a cluster's primary loads none of the request path). */
export async function listenAdmin(server: http.Server, address: { host: string; port: number }): Promise<void> {
  server.listen(address.port, address.host);
  try {
    await once(server, "listening");
  } catch (err) {
    throw new Error(`cannot listen for admin on ${address.host}:${address.port}: ${(err as NodeJS.ErrnoException).code ?? err}`, { cause: err });
  }
}

/** localhost, 127.0.0.0/8, ::1 (with any port), or a configured name. */
export function isAdminHost(header: string | undefined, allowed: readonly string[]): boolean {
  const host = parseHostHeader(header ?? "");
  if (!host) return false;
  return isLoopback(host.hostname) || allowed.includes(host.hostname);
}

async function handleAdmin(
  req: IncomingMessage,
  res: ServerResponse,
  readiness: ReadinessSource,
  exporter: MetricsExporter | null,
  status: AdminPages | null,
): Promise<void> {
  const path = (req.url ?? "/").split("?")[0]!;
  if (req.method !== "GET" && req.method !== "HEAD") {
    sendError(res, "badRequest", "the admin endpoints answer GET, and POST for actions");
    return;
  }
  if (status?.serves(path)) return status.handle(req, res, path);
  switch (path) {
    case "/healthz":
      return sendJson(res, 200, { status: "ok" }, NO_STORE);
    case "/readyz": {
      const { ready, listening, backends } = await probeReadiness(readiness);
      return sendJson(res, ready ? 200 : 503, { status: ready ? "ready" : "not ready", listening, backends }, NO_STORE);
    }
    case "/metrics": {
      if (!exporter) return void sendError(res, "notFound", "metrics are disabled (metrics.enabled: false)");
      // Exposition first: a cluster's primary knows the content type once it has loaded prom-client.
      const text = await exporter.exposition();
      return sendText(res, exporter.contentType, text);
    }
    default:
      sendError(res, "notFound", `no admin endpoint at ${path}`);
  }
}

function sendText(res: ServerResponse, contentType: string, text: string): void {
  res.writeHead(200, { "Content-Type": contentType, "Content-Length": Buffer.byteLength(text), "Cache-Control": "no-store" });
  res.end(res.req.method === "HEAD" ? undefined : text);
}
