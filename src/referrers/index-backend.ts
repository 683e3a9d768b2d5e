// The gateway's own requests for a repository's referrers index: reading and writing the fallback tag, and
// asking once whether the registry answers the referrers API itself. They carry the gateway's credentials
// (a token it mints for exactly the accesses it needs, or none for a backend without auth), never the
// caller's: the caller was authorized for its own request, and the index is the gateway's to keep.
import http, { type IncomingMessage } from "node:http";
import https from "node:https";
import type { Access } from "../registry/routes.js";
import type { BackendAuth } from "../auth/types.js";
import type { ManagedCredentials } from "../backends/managed-auth.js";
import type { BackendPool } from "../backends/pool.js";
import type { Upstream } from "../backends/upstream.js";
import { MAX_MANIFEST_BYTES } from "../registry/manifest.js";

/** One exchange of the gateway's own with a registry, headers and body. */
const EXCHANGE_TIMEOUT_MS = 10_000;

export interface BackendAnswer {
  status: number;
  contentType: string;
  body: Buffer;
}

export interface IndexBackend {
  /** Names the registry: index locks and what was detected are per registry. */
  readonly id: string;
  get(path: string, accept: string): Promise<BackendAnswer>;
  put(path: string, body: Buffer, contentType: string): Promise<BackendAnswer>;
}

export interface IndexBackendDeps {
  agentFor(url: URL): http.Agent;
  backendAuth: BackendAuth | null;
  managed: ManagedCredentials | null;
}

/**
 * Where `repository`'s index is kept: the pool pushes go to (a group's pushTo), or null when the upstream
 * takes no pushes, where no index can be written.
 */
export function indexBackendFor(upstream: Upstream, repository: string, deps: IndexBackendDeps): IndexBackend | null {
  const pool: BackendPool | undefined = upstream.kind === "pool" ? upstream.pool : upstream.pushTo?.pool;
  if (!pool) return null;
  const authorization = async (backend: URL, actions: Access["action"][]) => {
    const accesses = actions.map((action): Access => ({ type: "repository", name: repository, action }));
    if (deps.managed?.covers(backend)) return deps.managed.token(accesses, null);
    return deps.backendAuth?.authorizationFor(accesses, null);
  };
  const send = async (method: string, path: string, headers: Record<string, string>, actions: Access["action"][], body?: Buffer) => {
    const member = pool.pick()!;
    const auth = await authorization(member.url, actions);
    return exchange(member.url, deps.agentFor(member.url), method, path, auth ? { ...headers, authorization: auth } : headers, body);
  };
  return {
    id: pool.name,
    get: (path, accept) => send("GET", path, { accept }, ["pull"]),
    put: (path, body, contentType) => send("PUT", path, { "content-type": contentType }, ["pull", "push"], body),
  };
}

function exchange(backend: URL, agent: http.Agent, method: string, path: string, headers: Record<string, string>, body?: Buffer): Promise<BackendAnswer> {
  const client = backend.protocol === "https:" ? https : http;
  return new Promise((resolve, reject) => {
    const req = client.request(new URL(path, backend), { method, agent, headers: { ...headers, "content-length": String(body?.length ?? 0) } }, (res: IncomingMessage) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on("data", (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_MANIFEST_BYTES) return req.destroy(new Error(`the registry's answer to ${method} ${path} is larger than a manifest may be`));
        chunks.push(chunk);
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, contentType: String(res.headers["content-type"] ?? ""), body: Buffer.concat(chunks) }));
      res.on("error", reject);
    });
    req.setTimeout(EXCHANGE_TIMEOUT_MS, () => req.destroy(new Error(`the registry did not answer ${method} ${path} in time`)));
    req.on("error", reject);
    req.end(body);
  });
}
