// How acme-client talks to ACME servers. acme-client sends every request through ONE axios instance
// shared by the whole process (`acme.axios`), so anything set on it affects every ACME server this
// process uses. This module is the only place that touches it, and keeps each change scoped:
// - trust: a CA file is trusted only for the origin of the directory that named it (an interceptor picks
//   an agent per request URL), never installed as `defaults.httpsAgent`, where a private CA would become
//   trusted for Let's Encrypt too;
// - retries and timeouts: acme-client retries network errors, 429 and 5xx with growing pauses (5 attempts,
//   ~75 s in all), and axios waits forever by default. The manager has its own backoff with jitter, so a
//   few quick retries and a per-request timeout are enough, and keep a stuck server from holding a lock.
import { readFile } from "node:fs/promises";
import https from "node:https";
import * as tls from "node:tls";
import * as acme from "acme-client";

export interface AcmeTransportSettings {
  /** Retries of one request on network errors, 429 and 5xx. */
  retryAttempts: number;
  /** Seconds between retries when the server gives no Retry-After (multiplied by the attempt number). */
  retryDelaySeconds: number;
  requestTimeoutMs: number;
}

export const DEFAULT_TRANSPORT: AcmeTransportSettings = { retryAttempts: 3, retryDelaySeconds: 2, requestTimeoutMs: 30_000 };

interface AcmeSettings {
  retryMaxAttempts: number;
  retryDefaultDelay: number;
}

const agentsByOrigin = new Map<string, https.Agent>();
let interceptorInstalled = false;

/** Applies the settings process-wide (the last caller wins: they are the same for every manager). */
export function configureAcmeTransport(settings: AcmeTransportSettings = DEFAULT_TRANSPORT): void {
  const defaults = acme.axios.defaults as typeof acme.axios.defaults & { acmeSettings: AcmeSettings };
  defaults.acmeSettings.retryMaxAttempts = settings.retryAttempts;
  defaults.acmeSettings.retryDefaultDelay = settings.retryDelaySeconds;
  defaults.timeout = settings.requestTimeoutMs;
  if (interceptorInstalled) return;
  interceptorInstalled = true;
  acme.axios.interceptors.request.use((config) => {
    const agent = config.url ? agentsByOrigin.get(originOf(config.url)) : undefined;
    if (agent) config.httpsAgent = agent;
    return config;
  });
}

/** Trusts `caFile` (besides the system roots) for requests to the directory's origin. */
export async function trustAcmeServer(directoryUrl: string, caFile: string): Promise<void> {
  let caPem: string;
  try {
    caPem = await readFile(caFile, "utf8");
  } catch (error) {
    throw new Error(`cannot read tls.caFile ${caFile}: ${(error as Error).message}`);
  }
  if (!caPem.includes("-----BEGIN CERTIFICATE-----")) throw new Error(`tls.caFile ${caFile} holds no PEM certificate`);
  // Keep-alive saves a TLS handshake on each of an order's dozen requests; idle sockets do not keep the
  // process alive (Node unrefs them) and the timeout closes them. An agent replaced by a reload is left to
  // finish the requests it carries.
  agentsByOrigin.set(originOf(directoryUrl), new https.Agent({ keepAlive: true, timeout: 30_000, ca: [...tls.rootCertificates, caPem] }));
}

/**
 * acme-client turns a request that never got a response (refused, TLS failure, timeout) into
 * "Cannot read properties of undefined (reading 'config')" once its retries run out. Asking the
 * directory once more, directly, recovers the real reason.
 */
export async function explainAcmeError(error: unknown, directoryUrl: string): Promise<Error> {
  const original = error instanceof Error ? error : new Error(String(error));
  if (!/reading 'config'/.test(original.message)) return original;
  const reason = await probe(directoryUrl);
  return new Error(`cannot reach the ACME server ${directoryUrl}: ${reason}`, { cause: original });
}

function probe(url: string): Promise<string> {
  return new Promise((resolve) => {
    const request = https.get(url, { agent: agentsByOrigin.get(originOf(url)) ?? https.globalAgent, timeout: 10_000 }, (response) => {
      response.resume();
      resolve(`it answers HTTP ${response.statusCode} now, but an earlier request got no response`);
    });
    request.on("timeout", () => request.destroy(new Error("no answer within 10 s")));
    request.on("error", (err: NodeJS.ErrnoException) => {
      const hint = /certificate|self.signed|issuer/i.test(err.message) ? " (set tls.caFile to trust a private ACME server)" : "";
      resolve(`${err.code ? `${err.code}: ` : ""}${err.message}${hint}`);
    });
  });
}

function originOf(url: string): string {
  return new URL(url).origin;
}
