import { rmSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { run, type RunResult } from "./process.js";

/*
 * Wrappers for the real container clients (skopeo, podman). They are sealed off
 * from host configuration so that a test can only reach the address it names:
 * an empty registries.conf (no docker.io search/short-name fallback), a private
 * auth file, HOME pointing into a temp dir (no ~/.docker/config.json creds).
 * Always use fully-qualified references: docker://HOST:PORT/repo:tag.
 */

// Every temp dir made here, so cleanupClients() / process exit can remove what tests forget.
const tempDirs = new Set<string>();
process.once("exit", () => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

async function trackedTempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  tempDirs.add(dir);
  return dir;
}

async function removeTracked(dir: string): Promise<void> {
  tempDirs.delete(dir);
  await rm(dir, { recursive: true, force: true });
}

/** Removes every temp dir created by this module (cert dirs, client config, podman stores). */
export async function cleanupClients(): Promise<void> {
  sharedConfig = undefined;
  await Promise.all([...tempDirs].map(removeTracked));
}

// ---------------------------------------------------------------- hosts

/** Writes DIR/hosts mapping each test host name to its (loopback) address; returns the path. */
export async function hostsFile(dir: string, entries: Record<string, string>): Promise<string> {
  const lines = ["127.0.0.1 localhost", "::1 localhost", ...Object.entries(entries).map(([host, ip]) => `${ip} ${host}`)];
  const path = join(dir, "hosts");
  await writeFile(path, `${lines.join("\n")}\n`);
  return path;
}

/**
 * Argv that runs cmd in a private mount namespace whose /etc/hosts is hostsPath
 * (tests never edit the host's /etc/hosts), so Go clients resolve test names without touching the host's
 * file. unshare makes the new namespace's mounts private, so the bind does not leak.
 */
export function inHostsNamespace(hostsPath: string, cmd: string, args: readonly string[]): [string, string[]] {
  return ["unshare", ["--mount", "sh", "-c", 'mount --bind "$0" /etc/hosts && exec "$@"', hostsPath, cmd, ...args]];
}

// ---------------------------------------------------------------- TLS

/** Creates a temp dir holding ca.crt, for --cert-dir / --src-cert-dir / --dest-cert-dir. */
export async function certDir(caPem: string | Buffer): Promise<string> {
  const dir = await trackedTempDir("rg-certs-");
  await writeFile(join(dir, "ca.crt"), caPem);
  return dir;
}

// ---------------------------------------------------------------- shared client config

interface ClientConfig {
  dir: string;
  registriesConf: string;
  authFile: string;
}

let sharedConfig: Promise<ClientConfig> | undefined;

/** One sealed config per test process is enough for skopeo; podman stores get their own auth file. */
function clientConfig(): Promise<ClientConfig> {
  sharedConfig ??= (async () => {
    const dir = await trackedTempDir("rg-client-");
    const registriesConf = join(dir, "registries.conf");
    // Empty: no unqualified-search registries, no mirrors, nothing but the named host.
    await writeFile(registriesConf, "");
    return { dir, registriesConf, authFile: await emptyAuthFile(dir) };
  })();
  return sharedConfig;
}

/** podman refuses a REGISTRY_AUTH_FILE that does not exist yet. */
async function emptyAuthFile(dir: string): Promise<string> {
  const path = join(dir, "auth.json");
  await writeFile(path, JSON.stringify({ auths: {} }));
  return path;
}

function sealedEnv(config: ClientConfig, authFile: string, extra?: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return {
    HOME: config.dir,
    XDG_CONFIG_HOME: join(config.dir, ".config"),
    XDG_RUNTIME_DIR: join(config.dir, "run"),
    REGISTRY_AUTH_FILE: authFile,
    CONTAINERS_REGISTRIES_CONF: config.registriesConf,
    ...extra,
  };
}

export interface ClientRunOptions {
  /** Hosts file (see hostsFile) to resolve test host names with. */
  hosts?: string;
  timeoutMs?: number;
  input?: string;
  env?: NodeJS.ProcessEnv;
}

function runClient(cmd: string, args: string[], env: NodeJS.ProcessEnv, options: ClientRunOptions): Promise<RunResult> {
  const [file, argv] = options.hosts ? inHostsNamespace(options.hosts, cmd, args) : [cmd, args];
  return run(file, argv, { env, input: options.input, timeoutMs: options.timeoutMs ?? 60_000 });
}

// ---------------------------------------------------------------- skopeo

/**
 * Runs skopeo. TLS verification stays on unless the caller passes
 * --tls-verify=false; pass --cert-dir/--creds (or --src-/--dest- forms) as needed.
 */
export async function skopeo(args: readonly string[], options: ClientRunOptions = {}): Promise<RunResult> {
  const config = await clientConfig();
  // --insecure-policy: image signatures are out of scope, and it avoids depending on /etc/containers/policy.json.
  const globalArgs = ["--insecure-policy", "--registries-conf", config.registriesConf, "--tmpdir", config.dir];
  return runClient("skopeo", [...globalArgs, ...args], sealedEnv(config, config.authFile, options.env), options);
}

// ---------------------------------------------------------------- podman

export interface PodmanStore {
  dir: string;
  root: string;
  runroot: string;
  /** Where `podman login` stores credentials for this store. */
  authFile: string;
  /** Global flags selecting this store; exposed for debugging a failing command by hand. */
  globalArgs: string[];
  remove(): Promise<void>;
}

/**
 * A throw-away podman image store. Flags needed for root in a sandbox without
 * systemd or network: vfs (no overlay/fuse), cgroupfs (no systemd), events
 * off (the default file backend writes to the shared /run/libpod), and a
 * private --tmpdir so concurrent stores do not share libpod's lock/state dir.
 */
export async function podmanStore(): Promise<PodmanStore> {
  const dir = await trackedTempDir("rg-podman-");
  const root = join(dir, "root");
  const runroot = join(dir, "runroot");
  await Promise.all([root, runroot, join(dir, "tmp")].map((d) => mkdir(d, { recursive: true })));
  const globalArgs = [
    "--storage-driver", "vfs",
    "--root", root,
    "--runroot", runroot,
    "--tmpdir", join(runroot, "libpod"),
    "--cgroup-manager", "cgroupfs",
    "--events-backend", "none",
  ];
  return { dir, root, runroot, authFile: await emptyAuthFile(dir), globalArgs, remove: () => removeTracked(dir) };
}

export interface PodmanRunOptions extends ClientRunOptions {
  store: PodmanStore;
}

/** Runs podman against a store from podmanStore(). As with skopeo, TLS verification is on by default. */
export async function podman(args: readonly string[], options: PodmanRunOptions): Promise<RunResult> {
  const config = await clientConfig();
  const { store } = options;
  // TMPDIR: podman stages downloaded blobs there (default /var/tmp); keep them inside the store.
  const env = sealedEnv(config, store.authFile, { TMPDIR: join(store.dir, "tmp"), ...options.env });
  return runClient("podman", [...store.globalArgs, ...args], env, options);
}
