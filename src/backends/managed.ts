// The managed backend: a distribution registry (Debian's `docker-registry`) that the gateway
// runs itself, so `npm start` serves a working private registry with nothing started by hand.
//
// One registry per distinct spec (binary, storage, port, proxy), listening on a loopback port of its own, with
// filesystem storage and its config.yml under the storage directory (default <dataDir>/registry). It is
// started before the state that forwards to it is built, restarted with backoff when it dies (the log says
// how it ended and what it printed last), and stopped once the gateway has drained, or once no
// configuration in service names it after a reload. Everything downstream only ever sees its URL,
// http://127.0.0.1:PORT (sites.ts BackendResolver).
//
// Every local user can connect to that port, so the registry answers the gateway alone: it runs
// distribution's `auth: token`, trusting a key pair kept for the managed registries alone (managed-auth.ts
// says which tokens it takes, and why no reload changes them), and its storage directory, with the config
// and the HTTP secret, is the gateway user's and mode 0700.
//
// What a registry trusts is fixed for its life, so a reload never restarts one that keeps its spec: only an
// exit (a crash) or an offline cache whose remote answers again replaces the process, and those replacements
// are serialized (#replace), so that two never run on the same port.
//
// With `proxy`, the registry is a pull-through cache of a remote one (distribution's `proxy:` section).
// distribution 2.8 asks the remote's /v2/ once as it starts and panics when there is no answer, so a cache
// could not be (re)started at all while, say, Docker Hub is unreachable. The gateway asks first: without an
// answer it starts the registry on the same storage without `proxy:` and read-only (an offline cache: it
// serves what it holds), asks the remote again every `remoteRetryMs`, and once it answers restarts the
// registry, on the same port, as the pull-through cache.
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { constants } from "node:fs";
import { access, chmod, mkdir, readFile, stat, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import path from "node:path";
import { probeBackend } from "./probe.js";
import { siteBackends } from "../config/helpers.js";
import { managedStorage, namedBackends } from "../config/rules.js";
import type { BackendConfig, GatewayConfig, ManagedBackendConfig } from "../config/schema.js";
import type { Logger } from "../observe/log.js";
import { siteName } from "../config/site-names.js";
import { configuredBackend, type BackendResolver } from "./resolve.js";
import { MANAGED_SERVICE } from "../config/rules.js";
import { writeFileAtomically } from "../util/atomic-write.js";
import { KillOnExit } from "../util/kill-on-exit.js";
import { RestartBackoff } from "../util/restart-backoff.js";
import { loadManagedTrust, MANAGED_ISSUER, MANAGED_REALM, managedTrustDir, type ManagedTrust } from "./managed-auth.js";

export interface ManagedOptions {
  /** How long a (re)started registry may take to answer GET /v2/ with 200. Default: 15 s. */
  readyTimeoutMs?: number;
  /** Delay before a restart: from initialMs, doubled after each exit that came soon after a start, up to maxMs. */
  backoff?: { initialMs: number; maxMs: number };
  /** On stop, SIGTERM, then SIGKILL after this. Default: 5 s. */
  stopGraceMs?: number;
  /** How often an offline pull-through cache asks its remote registry whether it answers again. Default: 30 s. */
  remoteRetryMs?: number;
}

/** A pull-through cache's remote registry (`proxy:`); the password is never logged. */
export type ManagedProxy = NonNullable<ManagedBackendConfig["proxy"]>;

/**
 * How a managed registry runs: a plain registry; a pull-through cache; or, while the cache's remote registry
 * does not answer, an offline cache (no `proxy:`, read-only: what the storage holds is served).
 */
export type ManagedMode = "registry" | "proxy" | "offline";

/** A managed backend as it runs: paths absolute, defaults applied. */
export interface ManagedSpec {
  binary: string;
  storage: string;
  /** undefined: a free loopback port, chosen at start (and kept across restarts). */
  port: number | undefined;
  /** Where the key pair it trusts is (managed-auth.ts): the data directory's. */
  trustDir: string;
  /** Absent: not a pull-through cache. */
  proxy?: ManagedProxy;
}

export const MISSING_BINARY_HINT =
  "install it with `apt-get install docker-registry` (Debian/Ubuntu; `npm start` does so when run as root), " +
  "set backend.managed.binary to where it is, or give backend a registry URL instead";

const DEFAULT_READY_TIMEOUT_MS = 15_000;
const DEFAULT_BACKOFF = { initialMs: 1000, maxMs: 30_000 };
const DEFAULT_STOP_GRACE_MS = 5000;
const DEFAULT_REMOTE_RETRY_MS = 30_000;
/** A registry that ran this long before it exited was healthy: the next restart waits the initial delay again. */
const STABLE_RUN_MS = 60_000;
/** Output lines kept for the log line that reports an exit. */
const TAIL_LINES = 20;
const PORT_ATTEMPTS = 3;

/** The spec a managed backend runs with, or null for a backend given as a URL. */
export function managedSpec(backend: BackendConfig, dataDir: string): ManagedSpec | null {
  if (backend instanceof URL) return null;
  const { binary, storage, port, proxy } = backend.managed;
  return {
    binary,
    storage: path.resolve(managedStorage({ binary, storage, port }, dataDir)),
    port,
    trustDir: managedTrustDir(dataDir),
    ...(proxy ? { proxy } : {}),
  };
}

/** Specs that differ in anything, the remote registry and its credentials included, are different registries. */
function keyOf(spec: ManagedSpec): string {
  const proxy = spec.proxy ? [spec.proxy.remoteurl, spec.proxy.username ?? null, spec.proxy.password ?? null] : null;
  return JSON.stringify([spec.binary, spec.storage, spec.port ?? null, spec.trustDir, proxy]);
}

/** Every managed registry of the running gateway, keyed by spec; configurations share one per spec. */
export class ManagedRegistries implements ManagedBackends {
  readonly #registries = new Map<string, ManagedRegistry>();
  /** Registries still running when the process exits anyway are killed. */
  readonly #children = new KillOnExit();
  #stopped = false;

  constructor(
    private readonly logger: Logger,
    private readonly options: ManagedOptions = {},
  ) {}

  /**
   * Starts a registry for every managed backend of `config` that is not running yet, and resolves once each
   * answers. All or nothing: on a failure the ones this call started are stopped and the error names the site.
   */
  async start(config: GatewayConfig): Promise<void> {
    if (this.#stopped) throw new Error("the managed registries were stopped with the gateway");
    const started: ManagedRegistry[] = [];
    const specs = config.sites.flatMap((site) => namedBackends(site, []).flatMap(({ backend }) => managedSpec(backend, config.dataDir) ?? []));
    if (specs.length === 0) return;
    // The same for every reload (managed-auth.ts): the registries running already trust it.
    const trust = await loadManagedTrust(config.dataDir);
    try {
      for (const [index, site] of config.sites.entries()) {
        for (const { backend, at } of namedBackends(site, [])) {
          const spec = managedSpec(backend, config.dataDir);
          if (!spec || this.#registries.has(keyOf(spec))) continue;
          const registry = new ManagedRegistry(spec, trust, this.logger, this.options, this.#children);
          started.push(registry);
          try {
            await registry.start();
          } catch (err) {
            const key = at.map((part) => (typeof part === "number" ? `[${part}]` : `.${part}`)).join("").slice(1);
            throw new Error(`sites[${index}] (${siteName(site)}) ${key}.managed: ${(err as Error).message}`, { cause: err });
          }
          this.#registries.set(keyOf(spec), registry);
        }
      }
    } catch (err) {
      for (const registry of started) this.#registries.delete(keyOf(registry.spec));
      await Promise.all(started.map((registry) => registry.stop()));
      throw err;
    }
  }

  /** Each site's backend URL under `config`: its own, or its managed registry's (which must be started). */
  resolver(config: GatewayConfig): BackendResolver {
    return (backend) => {
      const spec = managedSpec(backend, config.dataDir);
      if (!spec) return configuredBackend(backend);
      const registry = this.#registries.get(keyOf(spec));
      if (!registry) return configuredBackend(backend); // throws: not started
      return registry.url;
    };
  }

  /** Stops every registry that none of `inUse` names (after a reload, once the replaced state is done). */
  async prune(inUse: readonly GatewayConfig[]): Promise<void> {
    const wanted = new Set(
      inUse.flatMap((config) =>
        config.sites.flatMap((site) =>
          siteBackends(site).flatMap((backend) => {
            const spec = managedSpec(backend, config.dataDir);
            return spec ? [keyOf(spec)] : [];
          }),
        ),
      ),
    );
    const unused = [...this.#registries].filter(([key]) => !wanted.has(key));
    for (const [key] of unused) this.#registries.delete(key);
    await Promise.all(unused.map(([, registry]) => registry.stop()));
  }

  /** Stops them all (gateway shutdown); later starts are refused. */
  async stop(): Promise<void> {
    this.#stopped = true;
    const all = [...this.#registries.values()];
    this.#registries.clear();
    await Promise.all(all.map((registry) => registry.stop()));
  }

  /** Every running registry's URL by spec key: what worker processes resolve managed backends with. */
  urls(): ManagedUrls {
    return Object.fromEntries([...this.#registries].map(([key, registry]) => [key, registry.url.href]));
  }
}

/** Spec key → URL of the running registry (JSON, sent from the cluster's primary to its workers). */
export type ManagedUrls = Record<string, string>;

/** The managed backends as a gateway process sees them: run by itself, or by the cluster's primary. */
export interface ManagedBackends {
  start(config: GatewayConfig): Promise<void>;
  resolver(config: GatewayConfig): BackendResolver;
  prune(inUse: readonly GatewayConfig[]): Promise<void>;
  stop(): Promise<void>;
}

/**
 * A worker's view: the primary runs the registries (one per spec for the whole cluster) and tells the
 * workers where they listen, before any configuration naming them is built.
 */
export class RemoteManagedRegistries implements ManagedBackends {
  #urls: ManagedUrls;

  constructor(urls: ManagedUrls) {
    this.#urls = urls;
  }

  update(urls: ManagedUrls): void {
    this.#urls = urls;
  }

  async start(config: GatewayConfig): Promise<void> {
    const resolve = this.resolver(config);
    for (const site of config.sites) for (const backend of siteBackends(site)) resolve(backend);
  }

  resolver(config: GatewayConfig): BackendResolver {
    return (backend) => {
      const spec = managedSpec(backend, config.dataDir);
      if (!spec) return configuredBackend(backend);
      const url = this.#urls[keyOf(spec)];
      if (!url) return configuredBackend(backend); // throws: not started
      return new URL(url);
    };
  }

  async prune(): Promise<void> {}

  async stop(): Promise<void> {}
}

/** One supervised `docker-registry serve` process. */
class ManagedRegistry {
  #url: URL | null = null;
  #executable = "";
  #configFile = "";
  #child: ChildProcess | null = null;
  #startedAt = 0;
  #state: "idle" | "starting" | "running" | "stopping" = "idle";
  #restartTimer: NodeJS.Timeout | null = null;
  readonly #backoff: RestartBackoff;
  /** How the process running now was configured. */
  #mode: ManagedMode = "registry";
  /** While offline: the next question to the remote registry. */
  #remoteTimer: NodeJS.Timeout | null = null;
  readonly #tail = new OutputTail(TAIL_LINES);
  readonly #readyTimeoutMs: number;
  readonly #stopGraceMs: number;
  readonly #remoteRetryMs: number;

  /** While a replacement process is being started: the next one waits for it (#replace). */
  #replacing: Promise<void> = Promise.resolve();

  constructor(
    readonly spec: ManagedSpec,
    private readonly trust: ManagedTrust,
    private readonly logger: Logger,
    options: ManagedOptions,
    private readonly children: KillOnExit,
  ) {
    this.#readyTimeoutMs = options.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS;
    this.#backoff = new RestartBackoff({ ...(options.backoff ?? DEFAULT_BACKOFF), stableRunMs: STABLE_RUN_MS });
    this.#stopGraceMs = options.stopGraceMs ?? DEFAULT_STOP_GRACE_MS;
    this.#remoteRetryMs = options.remoteRetryMs ?? DEFAULT_REMOTE_RETRY_MS;
  }

  get url(): URL {
    if (!this.#url) throw new Error(`the managed registry for ${this.spec.storage} has not been started`);
    return this.#url;
  }

  get pid(): number | undefined {
    return this.#child?.exitCode === null && this.#child.signalCode === null ? this.#child.pid : undefined;
  }

  async start(): Promise<void> {
    this.#state = "starting";
    const executable = await findExecutable(this.spec.binary);
    if (!executable) {
      const where = this.spec.binary.includes("/") ? `${this.spec.binary} is not an executable file` : `"${this.spec.binary}" was not found on PATH`;
      throw new Error(`${where}: the managed backend runs the CNCF distribution registry; ${MISSING_BINARY_HINT}`);
    }
    this.#executable = executable;
    await this.#writeConfig();
    for (let attempt = 1; ; attempt++) {
      const port = this.spec.port ?? (await freeLoopbackPort());
      const url = new URL(`http://127.0.0.1:${port}`);
      this.#spawn(url);
      try {
        await this.#untilReady(url, this.#child!);
        this.#url = url;
        break;
      } catch (err) {
        await this.#kill();
        const portTaken = /address already in use/i.test(this.#tail.text());
        // A free port can be taken between our probe and the registry's bind: try another.
        if (portTaken && this.spec.port === undefined && attempt < PORT_ATTEMPTS) continue;
        const tail = this.#tail.text();
        throw new Error(`${(err as Error).message}${tail ? `; it printed:\n${tail}` : ""}`, { cause: err });
      }
    }
    this.#state = "running";
    this.logger.info(
      { storage: this.spec.storage, url: this.url.origin, pid: this.#child?.pid, binary: this.#executable, config: this.#configFile, ...this.#modeFields() },
      "managed registry started",
    );
    if (this.#mode === "offline") this.#watchRemote(this.url, this.#child!);
  }

  /** SIGTERM, SIGKILL after the grace; resolves once the process is gone. No restart follows. */
  async stop(): Promise<void> {
    this.#state = "stopping";
    if (this.#restartTimer) clearTimeout(this.#restartTimer);
    this.#restartTimer = null;
    if (this.#remoteTimer) clearTimeout(this.#remoteTimer);
    this.#remoteTimer = null;
    const pid = this.pid;
    await this.#kill();
    if (pid !== undefined) this.logger.info({ storage: this.spec.storage, url: this.#url?.origin, pid }, "managed registry stopped");
  }

  #spawn(url: URL): void {
    this.#tail.clear();
    // The registry reads REGISTRY_* variables as configuration overrides: a user's REGISTRY_AUTH_FILE
    // (podman's) would turn into `auth: {file: …}`. It gets only ours. GATEWAY_* variables are the gateway's
    // configuration (GATEWAY_ADMIN_TOKEN is a secret): the registry has no use for them.
    const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith("REGISTRY_") && !name.startsWith("GATEWAY_")));
    const child = spawn(this.#executable, ["serve", this.#configFile], {
      env: { ...env, REGISTRY_HTTP_ADDR: url.host },
      stdio: ["ignore", "pipe", "pipe"],
      // Its own process group: a Ctrl-C meant for the gateway must not kill the registry while the gateway
      // drains; the gateway stops it afterwards.
      detached: true,
    });
    this.#child = child;
    this.#startedAt = Date.now();
    this.children.add(child);
    const output = (chunk: string) => {
      for (const line of this.#tail.push(chunk)) this.logger.warn({ storage: this.spec.storage, pid: child.pid, line }, "managed registry output");
    };
    child.stdout?.setEncoding("utf8").on("data", output);
    child.stderr?.setEncoding("utf8").on("data", output);
    // Spawn and kill failures; an "error" without a listener would take the gateway down.
    child.on("error", (err) => output(`\n${err.message}\n`));
    child.once("close", (code, signal) => {
      if (this.#child === child && this.#state === "running") this.#exited(url, code, signal);
    });
  }

  /** The process died on its own: say why, then start it again on the same port after the backoff delay. */
  #exited(url: URL, code: number | null, signal: NodeJS.Signals | null): void {
    const ranMs = Date.now() - this.#startedAt;
    const delayMs = this.#backoff.delayAfter(ranMs);
    this.logger.error(
      { storage: this.spec.storage, url: url.origin, pid: this.#child?.pid, code, signal, ranMs, restartInMs: delayMs, output: this.#tail.lines() },
      `managed registry exited (${signal ? `signal ${signal}` : `code ${code}`}): restarting in ${delayMs} ms`,
    );
    this.#restartTimer = setTimeout(() => {
      this.#restartTimer = null;
      void this.#replace(url, "managed registry restarted");
    }, delayMs);
  }

  /**
   * The one way a new process replaces the running (or exited) one: after an exit, or to turn an offline
   * cache back into a pull-through one. A restart still pending (an exit's backoff, a config write's retry)
   * is superseded, and a replacement waits for the one before it, so there is never a second process on
   * the port, and none is left unsupervised.
   */
  #replace(url: URL, message: string): Promise<void> {
    if (this.#restartTimer) clearTimeout(this.#restartTimer);
    this.#restartTimer = null;
    const run = this.#replacing.then(async () => {
      if (this.#state !== "running") return;
      // Not "running" while it is replaced: its exit is not a crash to report and restart.
      this.#state = "starting";
      await this.#kill();
      if (this.#state !== "starting") return; // stopped meanwhile
      this.#state = "running";
      await this.#restart(url, message);
    });
    this.#replacing = run.catch(() => {});
    return run;
  }

  /**
   * Starts the process again on `url` (only through #replace); its config is written anew first (a
   * pull-through cache's for the mode its remote registry allows now), and the promise settles once it
   * answers or has failed to.
   */
  async #restart(url: URL, message: string): Promise<void> {
    if (this.#state !== "running") return;
    try {
      await this.#writeConfig();
    } catch (err) {
      // As after an exit that came at once: the next attempt comes after the grown backoff delay.
      const delayMs = this.#backoff.delayAfter(0);
      this.logger.error(
        { storage: this.spec.storage, url: url.origin, err: (err as Error).message, restartInMs: delayMs },
        `managed registry config could not be written: trying again in ${delayMs} ms`,
      );
      if (this.#state !== "running") return;
      this.#restartTimer = setTimeout(() => {
        this.#restartTimer = null;
        void this.#replace(url, message);
      }, delayMs);
      return;
    }
    if (this.#state !== "running") return;
    this.#spawn(url);
    const child = this.#child!;
    await this.#untilReady(url, child).then(
      () => {
        this.logger.info({ storage: this.spec.storage, url: url.origin, pid: child.pid, ...this.#modeFields() }, message);
        if (this.#mode === "offline") this.#watchRemote(url, child);
      },
      // An exit is reported (and retried) by the exit handler; a registry that hangs is only warned about.
      (err: Error) => {
        if (child.exitCode === null && child.signalCode === null && this.#state === "running") {
          this.logger.warn({ storage: this.spec.storage, url: url.origin, err: err.message }, "managed registry restarted but does not answer");
        }
      },
    );
  }

  /**
   * Writes config.yml. A pull-through cache asks its remote registry first, as distribution would (any HTTP
   * answer to GET /v2/ will do): no answer, and the cache runs offline.
   */
  async #writeConfig(): Promise<void> {
    let mode: ManagedMode = "registry";
    if (this.spec.proxy) {
      const probe = await probeBackend(new URL(this.spec.proxy.remoteurl));
      mode = probe.reachable ? "proxy" : "offline";
      if (!probe.reachable) {
        this.logger.warn(
          { storage: this.spec.storage, remote: this.spec.proxy.remoteurl, error: probe.error, retryInMs: this.#remoteRetryMs },
          "the remote registry of a pull-through cache does not answer: serving what the cache holds, read-only, until it does",
        );
      }
    }
    this.#configFile = await writeRegistryConfig(this.spec, mode, this.trust);
    this.#mode = mode;
  }

  /** Log fields saying what a pull-through cache runs as (none for a plain registry); never the credentials. */
  #modeFields(): Record<string, string> {
    return this.spec.proxy ? { mode: this.#mode === "proxy" ? "pull-through cache" : "offline cache (read-only)", remote: this.spec.proxy.remoteurl } : {};
  }

  /** Offline: asks the remote registry again every remoteRetryMs; once it answers, restarts as the pull-through cache. */
  #watchRemote(url: URL, child: ChildProcess): void {
    const remote = new URL(this.spec.proxy!.remoteurl);
    // An offline cache that has exited is already being restarted (#exited), in the mode its remote allows then.
    const current = () =>
      this.#state === "running" && this.#child === child && child.exitCode === null && child.signalCode === null && this.#mode === "offline";
    if (this.#remoteTimer) clearTimeout(this.#remoteTimer);
    this.#remoteTimer = setTimeout(async () => {
      this.#remoteTimer = null;
      if (!current()) return;
      const probe = await probeBackend(remote);
      if (!current()) return;
      if (!probe.reachable) return this.#watchRemote(url, child);
      this.logger.info({ storage: this.spec.storage, url: url.origin, remote: remote.origin }, "the remote registry answers again: restarting the offline cache as a pull-through cache");
      await this.#replace(url, "managed registry restarted as a pull-through cache");
    }, this.#remoteRetryMs);
  }

  /** Resolves once GET /v2/ answers 200; rejects if the process exits first or the time runs out. */
  async #untilReady(url: URL, child: ChildProcess): Promise<void> {
    const deadline = Date.now() + this.#readyTimeoutMs;
    for (;;) {
      if (child.pid === undefined) throw new Error(`${this.#executable} could not be started: ${this.#tail.text()}`);
      if (child.exitCode !== null || child.signalCode !== null || this.#child !== child) {
        throw new Error(`${this.#executable} exited (${child.signalCode ? `signal ${child.signalCode}` : `code ${child.exitCode}`}) before answering on ${url.origin}`);
      }
      // With the gateway's token: a 200 also proves the registry accepts the tokens the gateway will send.
      const probe = await probeBackend(url, { authorization: await this.trust.minter.authorizationFor([], null) });
      if (probe.reachable && probe.status === 200) return;
      if (Date.now() >= deadline) {
        const seen = probe.reachable ? `HTTP ${probe.status}` : probe.error;
        throw new Error(`${this.#executable} did not answer GET ${url.origin}/v2/ with 200 within ${this.#readyTimeoutMs} ms (last: ${seen})`);
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  async #kill(): Promise<void> {
    const child = this.#child;
    if (!child || child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const closed = new Promise((resolve) => child.once("close", resolve));
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), this.#stopGraceMs);
    await closed;
    clearTimeout(timer);
  }
}

/**
 * `<storage>/config.yml`, rewritten at each start: filesystem storage in the same directory, deletes on,
 * warnings only, no access log (the gateway logs every request). The HTTP secret signs upload state, so it
 * is generated once and kept (`<storage>/http-secret`): uploads survive a restart. The listen address is
 * not in the file: the gateway passes it in REGISTRY_HTTP_ADDR. A pull-through cache gets distribution's
 * `proxy:` section (the remote password is written here only), or, offline, none and `maintenance.readonly`.
 *
 * The registry is the gateway's alone: `auth: token` refuses every request without the gateway's token
 * (its port is open to every local user), and the storage directory, which holds the images, this file
 * and the secret, is mode 0700 and must belong to the gateway's user.
 */
async function writeRegistryConfig(spec: ManagedSpec, mode: ManagedMode, trust: ManagedTrust): Promise<string> {
  const { storage, proxy } = spec;
  await privateDirectory(storage);
  const secret = await httpSecret(path.join(storage, "http-secret"));
  const config: Record<string, unknown> = {
    version: "0.1",
    log: { level: "warn", accesslog: { disabled: true } },
    storage: {
      filesystem: { rootdirectory: storage },
      delete: { enabled: true },
      // An offline cache serves what it holds and takes nothing in.
      ...(mode === "offline" ? { maintenance: { readonly: { enabled: true } } } : {}),
    },
    http: { secret },
    auth: { token: { realm: MANAGED_REALM, service: MANAGED_SERVICE, issuer: MANAGED_ISSUER, rootcertbundle: trust.certPath } },
  };
  // Credentials only when given: distribution then pulls from the remote anonymously. (2.8 has no `ttl`.)
  if (mode === "proxy" && proxy) {
    config.proxy = { remoteurl: proxy.remoteurl, ...(proxy.username !== undefined ? { username: proxy.username, password: proxy.password } : {}) };
  }
  const header = [
    "# Written by registry-gateway for a managed backend at each start: edits are lost.",
    "# The gateway gives the listen address in REGISTRY_HTTP_ADDR (127.0.0.1 and a port of its choosing);",
    "# to run it by hand, give one too: REGISTRY_HTTP_ADDR=127.0.0.1:5000 docker-registry serve config.yml",
    "# It answers only requests carrying the gateway's tokens for it (auth: token).",
    ...(mode === "offline"
      ? [`# Offline cache: ${proxy!.remoteurl} did not answer, so no proxy section (distribution would not start)`, "# and read-only, until it answers again."]
      : []),
  ].join("\n");
  const file = path.join(storage, "config.yml");
  // yaml is loaded here, by the process that starts registries, not by every worker that imports this module.
  const { stringify } = await import("yaml");
  await writeFileAtomically(file, `${header}\n${stringify(config)}`, 0o600);
  return file;
}

/**
 * Creates `dir` (and its missing parents) or takes it as it is, and makes it mode 0700. One that belongs to
 * another user is refused: that user could read and change the registry's images and configuration.
 */
async function privateDirectory(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const owner = (await stat(dir)).uid;
  const uid = process.getuid?.();
  if (uid !== undefined && owner !== uid) {
    throw new Error(`the storage directory ${dir} belongs to uid ${owner}, not to the gateway's user (uid ${uid}): give it to that user, or choose another storage`);
  }
  await chmod(dir, 0o700);
}

async function httpSecret(file: string): Promise<string> {
  try {
    // "wx": two gateways sharing the storage agree on the first one written.
    await writeFile(file, `${randomBytes(32).toString("hex")}\n`, { flag: "wx", mode: 0o600 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
  }
  await chmod(file, 0o600);
  const secret = (await readFile(file, "utf8")).trim();
  if (!secret) throw new Error(`${file} is empty: remove it and a new secret is generated`);
  return secret;
}

/** A name is looked up on PATH, a path taken as it is; null when there is no executable file there. */
async function findExecutable(binary: string): Promise<string | null> {
  const candidates = binary.includes("/")
    ? [path.resolve(binary)]
    : (process.env.PATH ?? "").split(path.delimiter).filter(Boolean).map((dir) => path.join(dir, binary));
  for (const candidate of candidates) {
    try {
      if (!(await stat(candidate)).isFile()) continue;
      await access(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return null;
}

function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen({ host: "127.0.0.1", port: 0, exclusive: true }, () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/**
 * distribution logs every 4xx it answers (a HEAD for a blob a push is about to upload, a tag that does not
 * exist) at level error; the gateway's access log has those requests already.
 */
const CLIENT_ERROR_LINE = /msg="response completed with error".*http\.response\.status=4\d\d/;

/** The last lines a process printed (stdout and stderr together, client-error lines left out), each cut short. */
class OutputTail {
  #lines: string[] = [];
  #partial = "";

  constructor(private readonly capacity: number) {}

  /** Returns the complete lines in `chunk` that are kept. */
  push(chunk: string): string[] {
    const parts = (this.#partial + chunk).split("\n");
    this.#partial = parts.pop() ?? "";
    const kept = parts.filter((line) => line.trim() && !CLIENT_ERROR_LINE.test(line)).map((line) => line.slice(0, 1000));
    this.#lines.push(...kept);
    if (this.#lines.length > this.capacity) this.#lines.splice(0, this.#lines.length - this.capacity);
    return kept;
  }

  lines(): string[] {
    return this.#partial.trim() ? [...this.#lines, this.#partial.slice(0, 1000)] : [...this.#lines];
  }

  text(): string {
    return this.lines().join("\n");
  }

  clear(): void {
    this.#lines = [];
    this.#partial = "";
  }
}
