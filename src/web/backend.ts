// The browser's own reads of a site's registry (and its one write, a manifest DELETE), made the way the
// gateway makes its list reads (backends/lists.ts): with the gateway's credentials for the registry — a
// managed registry's token, or the site's backendAuth minted for exactly the access needed on behalf of the
// signed-in user — never the visitor's. Every answer is bounded in bytes and time: a hostile or broken
// registry costs a page at most what these bounds allow.
import http, { type IncomingHttpHeaders } from "node:http";
import https from "node:https";
import type { Principal } from "../auth/types.js";
import { membersFor } from "../backends/namespaces.js";
import type { BackendPool } from "../backends/pool.js";
import type { PipelineState } from "../pipeline-state.js";
import type { Access } from "../registry/routes.js";
import type { Site } from "../sites.js";

/** One exchange with the registry, headers and body. */
const EXCHANGE_TIMEOUT_MS = 10_000;

export interface RegistryAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export class AnswerTooLarge extends Error {}

export interface BackendOptions {
  /** Reads go to this pool alone (the one deletes go to) rather than to the repository's read members. */
  pinned?: BackendPool;
  /** A page's deadline: reads waiting for their turn or running end when it aborts. */
  signal?: AbortSignal;
}

export class RepositoryBackend {
  constructor(
    private readonly state: PipelineState,
    private readonly site: Site,
    readonly repository: string,
    private readonly principal: Principal | null,
    private readonly options: BackendOptions = {},
  ) {}

  /** The site whose registry this reads: part of what a cached answer is kept under. */
  get siteName(): string {
    return this.site.name;
  }

  get aborted(): boolean {
    return this.options.signal?.aborted ?? false;
  }

  /** The same repository read under `signal`: once it aborts, reads waiting or running end. */
  until(signal: AbortSignal): RepositoryBackend {
    return new RepositoryBackend(this.state, this.site, this.repository, this.principal, { ...this.options, signal });
  }

  /**
   * The same repository read where its deletes go: what a delete removes must be resolved there, or a group
   * whose first member has the tag on another digest would have the wrong image deleted. Null when no
   * registry takes its writes.
   */
  writeSide(): RepositoryBackend | null {
    const pool = this.#pushPool();
    return pool ? new RepositoryBackend(this.state, this.site, this.repository, this.principal, { ...this.options, pinned: pool }) : null;
  }

  /** A GET under the repository (`/v2/<name>/` + `path`); a group's members are asked in turn until one has it. */
  async get(path: string, accept: string, maxBytes: number): Promise<RegistryAnswer> {
    let answer: RegistryAnswer | undefined;
    const gate = this.state.browser?.reads;
    for (const pool of this.#readPools()) {
      const read = () => this.#send(pool, "GET", path, { accept }, "pull", maxBytes);
      answer = await (gate ? gate.run(maxBytes, this.options.signal, read) : read());
      if (answer.status !== 404) return answer;
    }
    return answer ?? { status: 404, headers: {}, body: Buffer.alloc(0) };
  }

  /** DELETE of a manifest by digest where the repository's pushes go; null when its registry takes none. */
  async deleteManifest(digest: string): Promise<RegistryAnswer | null> {
    const pool = this.#pushPool();
    return pool ? this.#send(pool, "DELETE", `manifests/${digest}`, {}, "delete", 64 * 1024) : null;
  }

  #pushPool(): BackendPool | undefined {
    const upstream = this.site.upstreams.for(this.repository);
    return upstream.kind === "pool" ? upstream.pool : upstream.pushTo?.pool;
  }

  #readPools(): BackendPool[] {
    if (this.options.pinned) return [this.options.pinned];
    const upstream = this.site.upstreams.for(this.repository);
    return upstream.kind === "pool" ? [upstream.pool] : membersFor(upstream, this.repository).members.map((member) => member.pool);
  }

  async #send(pool: BackendPool, method: string, path: string, headers: Record<string, string>, action: Access["action"], maxBytes: number): Promise<RegistryAnswer> {
    const replica = pool.pick();
    if (!replica) throw new Error(`no replica of ${pool.name} is available`);
    const authorization = await this.#authorization(replica.url, action);
    const target = new URL(`/v2/${this.repository}/${path}`, replica.url);
    const sent = authorization ? { ...headers, authorization } : headers;
    return exchange(target, this.state.forwarder.agentFor(replica.url), method, sent, maxBytes, this.options.signal);
  }

  #authorization(backend: URL, action: Access["action"]): Promise<string | undefined> | undefined {
    const accesses: Access[] = [{ type: "repository", name: this.repository, action }];
    if (this.state.managed?.covers(backend)) return this.state.managed.token(accesses, this.principal);
    return this.site.backendAuth?.authorizationFor(accesses, this.principal);
  }
}

function exchange(target: URL, agent: http.Agent, method: string, headers: Record<string, string>, maxBytes: number, signal: AbortSignal | undefined): Promise<RegistryAnswer> {
  const client = target.protocol === "https:" ? https : http;
  return new Promise((resolve, reject) => {
    const options = { method, agent, headers: { ...headers, "user-agent": "registry-gateway-browser" }, ...(signal ? { signal } : {}) };
    const req = client.request(target, options, (res) => {
      const declared = Number(res.headers["content-length"] ?? 0);
      if (declared > maxBytes) return req.destroy(new AnswerTooLarge(`${method} ${target.pathname}: ${declared} bytes is more than the browser reads`));
      const chunks: Buffer[] = [];
      let size = 0;
      res.on("data", (chunk: Buffer) => {
        size += chunk.length;
        if (size > maxBytes) return req.destroy(new AnswerTooLarge(`${method} ${target.pathname}: more than ${maxBytes} bytes`));
        chunks.push(chunk);
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on("error", reject);
    });
    req.setTimeout(EXCHANGE_TIMEOUT_MS, () => req.destroy(new Error(`the registry did not answer ${method} ${target.pathname} in time`)));
    req.on("error", reject);
    req.end();
  });
}
