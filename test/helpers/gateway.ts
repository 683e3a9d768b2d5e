// Starts the gateway in-process on ephemeral loopback ports, and a small HTTPS client that talks to it
// under a test host name (SNI + Host) while connecting to 127.0.0.1.
import https from "node:https";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import type { IncomingHttpHeaders } from "node:http";
import { isIP } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { checkServerIdentity, type TLSSocket } from "node:tls";
import { gatewayConfig, type GatewayConfigInput } from "../../src/config/schema.js";
import { startGateway, type GatewayOptions, type RunningGateway } from "../../src/gateway.js";
import { createLogger } from "../../src/observe/log.js";

export interface TestGateway extends RunningGateway {
  port: number;
  dataDir: string;
  caPem: string;
  /** Every log line the gateway wrote, parsed. */
  logs: Record<string, unknown>[];
  request(host: string, options: GatewayRequest): Promise<GatewayResponse>;
  stop(): Promise<void>;
}

export interface GatewayRequest {
  method?: string;
  path: string;
  headers?: Record<string, string | string[]>;
  body?: Buffer | string;
  /** SNI to send; defaults to the host; null sends none. */
  servername?: string | null;
  /** Name the certificate must be valid for; defaults to the host. */
  expectCertFor?: string;
  /** Local address to connect from (another loopback address, e.g. 127.0.0.2, is another client IP). */
  localAddress?: string;
  /** A keep-alive agent to reuse connections; default none (a new connection per request). */
  agent?: https.Agent;
}

export interface GatewayResponse {
  status: number;
  /** Subject alternative names of the certificate the gateway presented. */
  peerNames: string;
  headers: IncomingHttpHeaders;
  rawHeaders: string[];
  body: Buffer;
  json(): any;
}

export async function startTestGateway(
  config: Omit<GatewayConfigInput, "listen" | "admin" | "dataDir"> & Partial<GatewayConfigInput>,
  options: GatewayOptions = {},
): Promise<TestGateway> {
  const dataDir = config.dataDir ?? (await mkdtemp(join(tmpdir(), "rg-gateway-")));
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split("\n")) if (line.trim()) logs.push(JSON.parse(line));
      done();
    },
  });
  const parsed = gatewayConfig.parse({
    listen: "127.0.0.1:0",
    admin: { listen: "127.0.0.1:0" },
    log: { level: "debug" },
    ...config,
    dataDir,
  });
  const gateway = await startGateway(parsed, createLogger(parsed.log, sink), options);
  const caPem = gateway.caFile ? await readFile(gateway.caFile, "utf8") : "";
  // The running gateway is an object with private state: extended in place, not copied.
  return Object.assign(gateway, {
    port: gateway.https.port,
    dataDir,
    caPem,
    logs,
    request: (host: string, options: GatewayRequest) => gatewayRequest(gateway.https.port, caPem, host, options),
    async stop() {
      await gateway.shutdown(1000);
      if (!config.dataDir) await rm(dataDir, { recursive: true, force: true });
    },
  });
}

export function gatewayRequest(port: number, caPem: string, host: string, options: GatewayRequest): Promise<GatewayResponse> {
  return new Promise((resolve, reject) => {
    // An address goes without SNI, as from Node's and curl's clients: Node 26 refuses one as servername (RFC 6066).
    const servername = options.servername === undefined ? (isIP(host) ? null : host) : options.servername;
    const req = https.request(
      {
        host: "127.0.0.1",
        port,
        method: options.method ?? "GET",
        path: options.path,
        ca: caPem,
        ...(servername === null ? {} : { servername }),
        // Verification against the test host name, whatever address we connected to.
        checkServerIdentity: (_name, cert) => checkServerIdentity(options.expectCertFor ?? host, cert),
        headers: { host: `${host}:${port}`, ...options.headers },
        agent: options.agent ?? false,
        ...(options.localAddress ? { localAddress: options.localAddress } : {}),
      },
      (res) => {
        const peerNames = (res.socket as TLSSocket).getPeerCertificate().subjectaltname ?? "";
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () => {
          const body = Buffer.concat(chunks);
          resolve({
            status: res.statusCode ?? 0,
            peerNames,
            headers: res.headers,
            rawHeaders: res.rawHeaders,
            body,
            json: () => JSON.parse(body.toString()),
          });
        });
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(options.body);
  });
}
