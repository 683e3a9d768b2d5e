// The request pipeline alone (createPipeline), on an HTTPS listener of its own on a loopback port: its
// PipelineState is built from a small configuration with the real pieces (sites, auth, rate limits,
// download caps), and what the pipeline reports is recorded: the finished requests, the auth failures,
// and with a recording route table, which handler ran.
import https from "node:https";
import { mkdtemp, rm } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildSecurity, type Security } from "../../src/auth/build.js";
import { SiteLists } from "../../src/backends/lists.js";
import { processCounters } from "../../src/cluster/shared.js";
import { gatewayConfig, type GatewayConfigInput } from "../../src/config/schema.js";
import type { Handler } from "../../src/endpoints/handler.js";
import { ROUTE_TABLE, type RouteTable } from "../../src/endpoints/table.js";
import { createLogger } from "../../src/observe/log.js";
import { createPipeline, type PipelineState } from "../../src/pipeline.js";
import { clientAddressResolver } from "../../src/proxy/client-ip.js";
import { trackConnections } from "../../src/proxy/client-connection.js";
import { ConnectionLimits } from "../../src/proxy/connections.js";
import { DownloadLimits } from "../../src/proxy/downloads.js";
import { Forwarder } from "../../src/proxy/forward.js";
import { sendJson } from "../../src/registry/errors.js";
import { CatalogSearch } from "../../src/registry/search.js";
import { MemoryLimiter } from "../../src/ratelimit/limiter.js";
import { createRateLimitStage } from "../../src/ratelimit/stage.js";
import type { FinishedRequest } from "../../src/request-context.js";
import { SiteMap } from "../../src/sites.js";
import { issueLeaf, loadOrCreateCa } from "../../src/tls/selfsigned.js";
import { gatewayRequest, type GatewayRequest, type GatewayResponse } from "./gateway.js";

export interface PipelineHarness {
  /** Read by every request as it starts: a test may swap a piece (and put it back). */
  state: PipelineState;
  port: number;
  caPem: string;
  /** Every finished request, as the observe stage saw it. */
  observed: FinishedRequest[];
  /** `site reason` of every auth failure the request path reported. */
  authFailures: string[];
  /** Tracks the listener's connections as the gateway's listeners do; no cap until configured. */
  connections: ConnectionLimits;
  request(host: string, options: GatewayRequest): Promise<GatewayResponse>;
  close(): Promise<void>;
}

export type PipelineConfig = Omit<GatewayConfigInput, "listen" | "admin" | "dataDir">;

export async function startPipeline(input: PipelineConfig, routes: RouteTable = ROUTE_TABLE): Promise<PipelineHarness> {
  const dataDir = await mkdtemp(join(tmpdir(), "rg-pipeline-"));
  const config = gatewayConfig.parse({ listen: "127.0.0.1:0", ...input, dataDir });
  const logger = createLogger({ level: "silent", format: "json" });
  let security: Security | null = null;
  let server: https.Server | null = null;
  // Counters in this process's memory, one per limit and one for failed logins, closed with the harness.
  const counters: MemoryLimiter[] = [];
  const counter = () => {
    const limiter = new MemoryLimiter();
    counters.push(limiter);
    return limiter;
  };
  const forwarder = new Forwarder({ idleTimeoutMs: config.timeouts.idle, keepAliveMs: config.timeouts.keepAlive, sendTimeoutMs: config.timeouts.send });
  const close = async () => {
    server?.closeAllConnections();
    await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
    forwarder.close();
    await security?.close();
    await Promise.all(counters.map((limiter) => limiter.close()));
    await rm(dataDir, { recursive: true, force: true });
  };
  try {
    security = await buildSecurity(config, logger, null, async () => counter());
    const sites = new SiteMap(config, security.bySite);
    const lists = new SiteLists((url) => forwarder.agentFor(url), logger, null, 0);
    const observed: FinishedRequest[] = [];
    const authFailures: string[] = [];
    const state: PipelineState = {
      sites,
      forwarder,
      affinity: processCounters.affinity({ perUser: config.limits.uploadsPerUser, idleMs: config.timeouts.uploadIdle }),
      lists,
      logger,
      observer: { requestDone: (request) => observed.push(request) },
      clientAddress: clientAddressResolver([]),
      rateLimit: await createRateLimitStage(sites.sites, null, counter),
      strictSni: config.tls.strictSni,
      search: new CatalogSearch((site) => lists.repositories(site)),
      managed: null,
      downloads: new DownloadLimits(config.limits),
      metrics: { authFailure: (site, reason) => authFailures.push(`${site} ${reason}`), groupPassedOver: () => {} },
    };
    const ca = await loadOrCreateCa(dataDir, 30);
    const leaf = await issueLeaf(ca, config.sites.flatMap((site) => site.hosts), 30);
    server = https.createServer({ cert: leaf.certPem, key: leaf.keyPem }, createPipeline(() => state, routes));
    const connections = new ConnectionLimits(Infinity, Infinity);
    trackConnections(server, (connection) => connections.track(connection));
    const listening = server;
    await new Promise<void>((resolve) => listening.listen(0, "127.0.0.1", resolve));
    const port = (listening.address() as AddressInfo).port;
    return { state, port, caPem: ca.certPem, observed, authFailures, connections, request: (host, options) => gatewayRequest(port, ca.certPem, host, options), close };
  } catch (err) {
    await close();
    throw err;
  }
}

/**
 * The real route table's authentication with handlers that only record that they ran (the route kind, in
 * `calls`) and answer 200; `hold`, when given, is awaited before answering (a download kept in flight).
 */
export function recordingRoutes(calls: string[], hold?: () => Promise<void>): RouteTable {
  const entries = Object.entries(ROUTE_TABLE).map(([kind, endpoint]) => [
    kind,
    {
      authentication: endpoint.authentication,
      handler: (async (ctx) => {
        calls.push(kind);
        if (hold) await hold();
        sendJson(ctx.res, 200, { handled: kind });
      }) satisfies Handler,
    },
  ]);
  return Object.fromEntries(entries) as RouteTable;
}
