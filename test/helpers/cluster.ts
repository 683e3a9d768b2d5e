// The gateway as a cluster (`workers: N` > 1), run as users run it: `node dist/main.js serve` in a child
// process whose primary forks the workers. Helpers to find the workers (their pids, which one served a
// request) and to talk HTTPS to them over fresh or kept-alive connections.
import { execFile } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import https from "node:https";
import type { IncomingHttpHeaders } from "node:http";
import { checkServerIdentity, type PeerCertificate, type TLSSocket } from "node:tls";
import { promisify } from "node:util";
import { startGatewayProcess, type GatewayProcess } from "./cli.js";
import { waitFor } from "./process.js";

const execFileAsync = promisify(execFile);

export interface ClusterProcess extends GatewayProcess {
  /** Parsed JSON log lines with `msg` equal to `message`, in order. */
  lines(message: string): Record<string, any>[];
}

/**
 * Starts `serve --config FILE` and waits for the primary's "gateway ready" (logged once every worker has
 * started). Keeps many output lines: the access log of every worker goes to the same stdout.
 */
export async function startClusterProcess(configPath: string, { timeoutMs = 90_000, keepLines = 50_000 } = {}): Promise<ClusterProcess> {
  const gateway = await startGatewayProcess(configPath, {}, { timeoutMs, keepLines });
  return { ...gateway, lines: (message) => gateway.logs().filter((l) => l.msg === message) };
}

/** Writes `lines` as DIR/gateway.yaml and starts the gateway on it; also the generated CA clients trust. */
export async function startClusterWithConfig(dir: string, lines: readonly string[]): Promise<{ gateway: ClusterProcess; ca: string }> {
  const path = join(dir, "gateway.yaml");
  await writeFile(path, `${lines.join("\n")}\n`);
  const gateway = await startClusterProcess(path);
  return { gateway, ca: gateway.caFile ? await readFile(gateway.caFile, "utf8") : "" };
}

/** The node processes the primary forked (its cluster workers), by pid. */
export async function workerPids(primaryPid: number): Promise<number[]> {
  let stdout = "";
  try {
    ({ stdout } = await execFileAsync("ps", ["--ppid", String(primaryPid), "-o", "pid=,cmd="]));
  } catch (err) {
    // ps exits 1 when no process matched.
    if ((err as { code?: number }).code !== 1) throw err;
  }
  return stdout
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line.includes("dist/main.js"))
    .map((line) => Number(line.split(/\s+/, 1)[0]))
    .sort((a, b) => a - b);
}

/** The worker number whose access log line carries `requestId` (the X-Request-Id the test sent). */
export function workerOfRequest(gateway: ClusterProcess, requestId: string, timeoutMs = 10_000): Promise<number> {
  return waitFor(
    () => {
      const line = gateway.lines("request").find((l) => l.requestId === requestId);
      return line ? (line.worker as number) : undefined;
    },
    { timeoutMs, what: `the access log line of request ${requestId}` },
  );
}

export interface HttpsAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  /** Serial of the certificate presented on the connection (upper-case hex). */
  serial: string;
  /** Issuer CN of that certificate. */
  issuer: string;
  /** Subject alternative names of that certificate. */
  names: string;
  socket: TLSSocket;
}

export interface HttpsCall {
  port: number;
  ca: string;
  host: string;
  method?: string;
  path: string;
  headers?: Record<string, string>;
  body?: Buffer | string;
  /** A keep-alive agent (one connection per agent with maxSockets 1); default: a fresh connection. */
  agent?: https.Agent;
  timeoutMs?: number;
  /** Name the certificate must be valid for; defaults to the host. */
  expectCertFor?: string;
}

/** One request, answered in full; rejects on a connection error or after timeoutMs. */
export function httpsCall(call: HttpsCall): Promise<HttpsAnswer> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: "127.0.0.1",
        port: call.port,
        method: call.method ?? "GET",
        path: call.path,
        servername: call.host,
        ca: call.ca,
        agent: call.agent ?? false,
        headers: { host: `${call.host}:${call.port}`, ...call.headers },
        // Node verifies the certificate against servername by itself. A request with a checkServerIdentity of
        // its own never shares a keep-alive connection on Node 24+ (the agent keys its pool by it), so one is
        // passed only to expect another name.
        ...(call.expectCertFor ? { checkServerIdentity: (_name: string, cert: PeerCertificate) => checkServerIdentity(call.expectCertFor!, cert) } : {}),
        timeout: call.timeoutMs ?? 20_000,
      },
      (res) => {
        const socket = res.socket as TLSSocket;
        const certificate = socket.getPeerCertificate();
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks),
            serial: certificate.serialNumber,
            issuer: String(certificate.issuer?.CN ?? ""),
            names: certificate.subjectaltname ?? "",
            socket,
          }),
        );
        res.on("error", reject);
      },
    );
    req.on("timeout", () => req.destroy(new Error(`no answer within ${call.timeoutMs ?? 20_000} ms`)));
    req.on("error", reject);
    req.end(call.body);
  });
}
