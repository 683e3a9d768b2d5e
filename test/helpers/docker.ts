// A private docker engine for the tests: Debian's docker.io dockerd 20.10 with its
// own managed containerd, in a mount namespace of its own, where
//   /etc/hosts   is the test's hosts file (test names → ::1),
//   /etc/docker  is the test's directory (trust = ETCDOCKER/certs.d/HOST:PORT/ca.crt, key.json, daemon.json),
//   /run         is D/run: dockerd 20.10 hard-codes its plugin directory as /run/docker/plugins,
//   /opt         is D/opt: containerd's "opt" plugin creates /opt/containerd,
// so neither leaves a trace on the host. Storage is vfs under D/root, runtime state (containerd socket,
// netns, metrics socket) under D/exec, the API on D/docker.sock only, and every network feature that would
// touch the host is off: no iptables rules, no bridge, no ip_forward (without --ip-forward=false dockerd
// sets net.ipv4.ip_forward=1), no masquerading, no userland proxy. No container is ever run: push, pull,
// login, logout, tag, load and manifest need none.
//
// Clients run /usr/bin/docker (Debian's 20.10 CLI: not whatever `docker` is first on PATH) with
// DOCKER_HOST=unix://D/docker.sock and a DOCKER_CONFIG of their own, in a namespace with the same
// /etc/hosts and /etc/docker, because `docker manifest` talks to the registry from the CLI itself.
import { existsSync, readFileSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startProcess, run, waitFor, type ManagedProcess, type RunResult } from "./process.js";

export const DOCKERD = "/usr/sbin/dockerd";
export const DOCKER = "/usr/bin/docker";

export interface DockerEngine {
  /** D: everything the daemon writes lives here. */
  dir: string;
  /** unix://D/docker.sock */
  host: string;
  /** The directory mounted over /etc/docker. */
  etcDocker: string;
  /** The file mounted over /etc/hosts. */
  hostsFile: string;
  process: ManagedProcess;
  /** Everything the daemon (and its containerd) logged so far. */
  log(): string;
  /** Trusts caPem for one registry: ETCDOCKER/certs.d/HOST:PORT/ca.crt. */
  trust(hostPort: string, caPem: string): Promise<void>;
  /** A docker CLI with a fresh, empty DOCKER_CONFIG (no credentials). */
  client(): Promise<DockerClient>;
  stop(): Promise<void>;
}

export interface DockerClient {
  /** DOCKER_CONFIG: config.json with this client's credentials. */
  configDir: string;
  run(args: readonly string[], options?: { input?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv }): Promise<RunResult>;
}

export interface DockerEngineOptions {
  /** Hosts file (see clients.ts hostsFile) to mount over /etc/hosts. */
  hostsFile: string;
  /** Milliseconds to wait for the API to answer; dockerd 20.10 takes ~0.3 s here. */
  readyTimeoutMs?: number;
}

/** Namespace setup shared by the daemon and the clients: $1 hosts file, $2 /etc/docker, then the command. */
const IN_NAMESPACE = 'mount --bind "$1" /etc/hosts && mount --bind "$2" /etc/docker && shift 2 && exec "$@"';
/** The daemon also gets private /run ($3) and /opt ($4); its output is appended to $0. */
const DAEMON_NAMESPACE =
  'mount --bind "$1" /etc/hosts && mount --bind "$2" /etc/docker && mount --bind "$3" /run && mount --bind "$4" /opt && shift 4 && exec "$@" >>"$0" 2>&1';

// containerd runs in a process group of its own (dockerd starts it with Setpgid), so the process-group
// kill process.ts does on exit misses it: remember it here.
const containerdPids = new Map<number, string>();
process.once("exit", () => {
  for (const [pid, dir] of containerdPids) if (isOurs(pid, dir)) killQuietly(pid, "SIGKILL");
});

export async function startDockerEngine(options: DockerEngineOptions): Promise<DockerEngine> {
  for (const binary of [DOCKERD, DOCKER]) {
    if (!existsSync(binary)) throw new Error(`${binary} is missing: install Debian's docker.io (scripts/install-test-deps.sh does)`);
  }
  const dir = await mkdtemp(join(tmpdir(), "rg-docker-"));
  const etcDocker = join(dir, "etc-docker");
  const paths = {
    root: join(dir, "root"),
    exec: join(dir, "exec"),
    run: join(dir, "run"),
    opt: join(dir, "opt"),
    pid: join(dir, "dockerd.pid"),
    socket: join(dir, "docker.sock"),
    log: join(dir, "dockerd.log"),
  };
  await Promise.all([etcDocker, paths.root, paths.exec, paths.run, paths.opt].map((d) => mkdir(d, { recursive: true })));
  // An explicit, empty daemon.json: nothing from a host file, and no registry is insecure (the loopback
  // default 127.0.0.0/8 stays, which is why the tests use ::1).
  await writeFile(join(etcDocker, "daemon.json"), "{}\n");

  const dockerdArgs = [
    "--config-file", join(etcDocker, "daemon.json"),
    "--storage-driver", "vfs",
    "--iptables=false",
    "--ip6tables=false",
    "--bridge=none",
    "--ip-forward=false",
    "--ip-masq=false",
    "--userland-proxy=false",
    "--data-root", paths.root,
    "--exec-root", paths.exec,
    "--pidfile", paths.pid,
    "-H", `unix://${paths.socket}`,
  ];
  // The log goes to a file: complete (the daemon and containerd are chatty) and readable after a failure.
  const child = startProcess(
    "unshare",
    ["--mount", "--propagation", "private", "sh", "-c", DAEMON_NAMESPACE, paths.log, options.hostsFile, etcDocker, paths.run, paths.opt, DOCKERD, ...dockerdArgs],
    { name: "dockerd" },
  );
  const log = () => {
    try {
      return readFileSync(paths.log, "utf8");
    } catch {
      return "";
    }
  };

  let containerdPid: number | undefined;
  const stop = async () => {
    containerdPid ??= readContainerdPid(paths.exec);
    // SIGTERM: dockerd shuts down and stops the containerd it started; give it time, then kill both.
    await child.stop(15_000);
    if (containerdPid !== undefined) {
      await waitFor(() => !isOurs(containerdPid!, dir), { timeoutMs: 5000, intervalMs: 100, what: "containerd to exit" }).catch(() => {
        if (isOurs(containerdPid!, dir)) killQuietly(containerdPid!, "SIGKILL");
      });
      containerdPids.delete(containerdPid);
    }
  };

  try {
    await waitFor(() => ping(paths.socket), {
      timeoutMs: options.readyTimeoutMs ?? 30_000,
      intervalMs: 100,
      what: `dockerd on ${paths.socket}`,
      giveUpIf: () => (child.exitStatus ? `dockerd exited (${JSON.stringify(child.exitStatus)})` : undefined),
    });
    containerdPid = readContainerdPid(paths.exec);
    if (containerdPid !== undefined) containerdPids.set(containerdPid, dir);
  } catch (err) {
    await stop();
    const output = `${child.output()}\n${log().split("\n").slice(-40).join("\n")}`;
    await rm(dir, { recursive: true, force: true });
    throw new Error(`${(err as Error).message}\n--- dockerd output ---\n${output}`);
  }

  return {
    dir,
    host: `unix://${paths.socket}`,
    etcDocker,
    hostsFile: options.hostsFile,
    process: child,
    log,
    async trust(hostPort, caPem) {
      const certsDir = join(etcDocker, "certs.d", hostPort);
      await mkdir(certsDir, { recursive: true });
      await writeFile(join(certsDir, "ca.crt"), caPem);
    },
    async client() {
      const configDir = await mkdtemp(join(dir, "client-"));
      return {
        configDir,
        run: (args, runOptions = {}) =>
          run("unshare", ["--mount", "--propagation", "private", "sh", "-c", IN_NAMESPACE, "sh", options.hostsFile, etcDocker, DOCKER, ...args], {
            env: {
              DOCKER_HOST: `unix://${paths.socket}`,
              DOCKER_CONFIG: configDir,
              HOME: configDir,
              // `docker manifest` is experimental in the 20.10 CLI.
              DOCKER_CLI_EXPERIMENTAL: "enabled",
              DOCKER_CONTENT_TRUST: "",
              ...runOptions.env,
            },
            input: runOptions.input,
            timeoutMs: runOptions.timeoutMs ?? 120_000,
          }),
      };
    },
    async stop() {
      await stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** GET /_ping on the daemon's socket answers "OK" once the API is up. */
function ping(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ socketPath, path: "/_ping", timeout: 2000 }, (res) => {
      let body = "";
      res.setEncoding("utf8").on("data", (chunk: string) => (body += chunk));
      res.on("end", () => resolve(res.statusCode === 200 && body === "OK"));
    });
    req.on("error", () => resolve(false));
    req.on("timeout", () => req.destroy());
    req.end();
  });
}

/** dockerd's libcontainerd writes the managed containerd's pid to EXEC/containerd/containerd.pid. */
function readContainerdPid(execRoot: string): number | undefined {
  try {
    const pid = Number(readFileSync(join(execRoot, "containerd", "containerd.pid"), "utf8").trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** The pid is still a containerd whose command line names our directory (not a recycled pid). */
function isOurs(pid: number, dir: string): boolean {
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8");
    return cmdline.includes("containerd") && cmdline.includes(dir);
  } catch {
    return false;
  }
}

function killQuietly(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

/**
 * What a docker daemon could change on the host, for before/after comparisons: the forwarding sysctls
 * (without --ip-forward=false dockerd sets net.ipv4.ip_forward=1) and whether the paths a
 * stock daemon and its containerd create exist.
 */
export async function hostDockerState(): Promise<Record<string, string>> {
  const state: Record<string, string> = {};
  for (const key of ["net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding"]) state[key] = (await readFile(`/proc/sys/${key}`, "utf8")).trim();
  for (const path of ["/run/docker", "/run/docker.sock", "/var/lib/docker", "/var/lib/containerd", "/run/containerd", "/opt/containerd", "/etc/docker/key.json"]) {
    state[path] = existsSync(path) ? "present" : "absent";
  }
  return state;
}
