// The bench's own HTTP(S) client: every name resolves to 127.0.0.1, TLS is verified against the CA the
// caller passes, bodies stream in (backpressure via pipeline) and small responses are collected.
import { createHash } from "node:crypto";
import http, { type IncomingHttpHeaders, type OutgoingHttpHeaders } from "node:http";
import https from "node:https";
import type { LookupFunction } from "node:net";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";

/** The host name every proxy is addressed by, like a real registry's DNS name. */
export const SITE_HOST = "bench.registry.test";
export const MiB = 1 << 20;

/** Something the bench talks to: a proxy in front of the registry, or the registry itself. */
export interface Endpoint {
  /** "gateway", "nginx", "caddy" or "direct". */
  name: string;
  /** `https://bench.registry.test:PORT`, or `http://127.0.0.1:PORT` for the registry itself. */
  origin: string;
  port: number;
  /** PEM of the CA that signed the endpoint's certificate; undefined for plain HTTP. */
  ca?: string;
  /** Path of that CA, for curl. */
  caFile?: string;
}

/** Like `curl --resolve`: the bench never asks DNS and never leaves loopback. */
export const loopbackLookup = ((_hostname: string, options: { all?: boolean }, callback: (...args: unknown[]) => void) => {
  if (options.all) callback(null, [{ address: "127.0.0.1", family: 4 }]);
  else callback(null, "127.0.0.1", 4);
}) as unknown as LookupFunction;

const agents = new Map<string, http.Agent>();

/** One keep-alive agent per origin, as a registry client (docker, containerd) would hold. */
function agentFor(url: URL, ca: string | undefined): http.Agent {
  let agent = agents.get(url.origin);
  if (!agent) {
    const options = { keepAlive: true, maxSockets: 8, lookup: loopbackLookup };
    agent = url.protocol === "https:" ? new https.Agent({ ...options, ca }) : new http.Agent(options);
    agents.set(url.origin, agent);
  }
  return agent;
}

export function closeAgents(): void {
  for (const agent of agents.values()) agent.destroy();
  agents.clear();
}

export interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  /** At most the first MiB of the body; the rest is read and dropped. */
  body: Buffer;
}

export interface SendOptions {
  headers?: OutgoingHttpHeaders;
  body?: Buffer | string | Readable;
  timeoutMs?: number;
  /** Instead of the shared keep-alive agent of the origin (a client from another local address, say). */
  agent?: http.Agent;
}

/** One request; `url` may be relative to the endpoint's origin (a relative Location, say). */
export function send(endpoint: Endpoint, method: string, url: string | URL, options: SendOptions = {}): Promise<Reply> {
  const target = new URL(url, endpoint.origin);
  const client = target.protocol === "https:" ? https : http;
  const { headers = {}, body, timeoutMs = 60_000, agent = agentFor(target, endpoint.ca) } = options;
  return new Promise<Reply>((resolve, reject) => {
    const req = client.request(
      target,
      { method, headers, agent, signal: AbortSignal.timeout(timeoutMs) },
      (res) => {
        const kept: Buffer[] = [];
        let keptBytes = 0;
        res.on("data", (chunk: Buffer) => {
          if (keptBytes < MiB) {
            kept.push(chunk);
            keptBytes += chunk.length;
          }
        });
        res.once("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(kept) }));
        res.once("error", reject);
      },
    );
    req.once("error", reject);
    if (body instanceof Readable) pipeline(body, req).catch(reject);
    else req.end(body);
  });
}

/** Throws with the status and body when a reply is not the expected one. */
export function expectStatus(reply: Reply, expected: number, what: string): Reply {
  if (reply.status !== expected) {
    const text = reply.body.subarray(0, 500).toString("utf8").replace(/\s+/g, " ");
    throw new Error(`${what}: expected HTTP ${expected}, got ${reply.status} ${text}`);
  }
  return reply;
}

export function locationOf(reply: Reply, what: string): string {
  const location = reply.headers.location;
  if (!location) throw new Error(`${what}: HTTP ${reply.status} without a Location header`);
  return location;
}

// ---- blob bodies -----------------------------------------------------------------------------------------

/**
 * Large bodies made on the fly from one random MiB: chunk i is that MiB with `label:i` written over its
 * first bytes, so every (label, size) pair is a distinct blob and the registry can never short-circuit
 * an upload it has seen before. Nothing the size of a blob is ever held in memory or written to disk.
 */
export class BlobSource {
  constructor(private readonly base: Buffer) {
    if (base.length !== MiB) throw new Error("BlobSource wants exactly one MiB of seed bytes");
  }

  *chunks(label: string, mebibytes: number): Generator<Buffer> {
    for (let i = 0; i < mebibytes; i++) {
      const chunk = Buffer.from(this.base); // a copy: a buffer handed to a socket must not change
      chunk.write(`${label}:${i}:`, 0, "latin1");
      yield chunk;
    }
  }

  stream(label: string, mebibytes: number): Readable {
    return Readable.from(this.chunks(label, mebibytes), { objectMode: false });
  }

  /** The digest of chunks(label, mebibytes), computed before a timed run so hashing is not timed. */
  digest(label: string, mebibytes: number): string {
    const hash = createHash("sha256");
    for (const chunk of this.chunks(label, mebibytes)) hash.update(chunk);
    return `sha256:${hash.digest("hex")}`;
  }
}
