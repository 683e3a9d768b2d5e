// Starts the three proxies in front of one registry, each on its own loopback port with the same leaf
// certificate: the gateway (which generates the CA and leaf), nginx (distribution's documented recipe)
// and Caddy. Everything they write stays inside the work directory given to them.
import { chmod, mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { freePort } from "../test/helpers/ports.js";
import { startGatewayProcess, type GatewayProcess } from "../test/helpers/cli.js";
import { type ManagedProcess, startProcess, waitFor } from "../test/helpers/process.js";
import { type Endpoint, SITE_HOST, send } from "./client.js";

/** One process whose memory the RSS rows read, and what it is (for the per-process notes). */
export interface MeasuredProcess {
  pid: number;
  /** "primary" or "worker" (gateway), "worker" (nginx), "process" (Caddy). */
  role: string;
}

export interface RunningProxy extends Endpoint {
  /** Processes whose memory the RSS rows read: gateway primary + workers, nginx's workers, Caddy's one. */
  memoryProcesses(): Promise<MeasuredProcess[]>;
  /** Last lines of the process's output, for error messages. */
  output(): string;
  /** Warnings and errors the proxy logged so far (its own log format), for the report. */
  logProblems(): Promise<string[]>;
  stop(): Promise<void>;
}

export interface SiteCertificate {
  caFile: string;
  ca: string;
  certFile: string;
  keyFile: string;
}

/** Options for variants of the three set-ups (bench/auth.ts); without them, the set-ups are as documented. */
export interface ProxyOptions {
  /** Basic authentication on every proxy, from one htpasswd file (nginx: bcrypt per request; Caddy: its hash cache). */
  basicAuth?: BenchBasicAuth;
  /** Gateway only: its one-line-per-request access log (default on). nginx and Caddy log no requests here. */
  accessLog?: boolean;
}

export interface BenchBasicAuth {
  /** Readable by nginx's workers (nobody). */
  htpasswdFile: string;
  user: string;
  password: string;
  /** The user's bcrypt hash, which Caddy takes inline. */
  hash: string;
}

const basicAuthorization = (auth: BenchBasicAuth | undefined) =>
  auth ? { authorization: `Basic ${Buffer.from(`${auth.user}:${auth.password}`).toString("base64")}` } : {};

const REPO_ROOT = resolve(import.meta.dirname, "..");
const READY_TIMEOUT_MS = 20_000;
/** A cluster says "gateway ready" once every worker is: on a loaded 2-core machine that takes longer (as test/helpers/cli.ts allows). */
const GATEWAY_READY_TIMEOUT_MS = 60_000;

function endpointAt(port: number, cert: SiteCertificate): Pick<Endpoint, "origin" | "port" | "ca" | "caFile"> {
  return { origin: `https://${SITE_HOST}:${port}`, port, ca: cert.ca, caFile: cert.caFile };
}

/** Ready = `GET /v2/` through the proxy, TLS verified against the CA, answers 200 from the registry. */
async function waitUntilServing(endpoint: Endpoint, child: ManagedProcess, auth?: BenchBasicAuth): Promise<void> {
  try {
    await waitFor(async () => (await send(endpoint, "GET", "/v2/", { timeoutMs: 2000, headers: basicAuthorization(auth) })).status === 200, {
      timeoutMs: READY_TIMEOUT_MS,
      intervalMs: 100,
      what: `${endpoint.name} at ${endpoint.origin}/v2/`,
      giveUpIf: () => (child.exitStatus ? `process exited (${JSON.stringify(child.exitStatus)})` : undefined),
    });
  } catch (err) {
    await child.stop(1000);
    throw new Error(`${(err as Error).message}\n--- ${endpoint.name} output ---\n${child.output()}`);
  }
}

/** Output lines matching pattern, without the "[stdout] " prefix startProcess adds. */
function linesMatching(text: string, pattern: RegExp): string[] {
  return text
    .split("\n")
    .filter((line) => pattern.test(line))
    .map((line) => line.replace(/^\[std(out|err)\] /, "").slice(0, 400));
}

// ---- gateway ---------------------------------------------------------------------------------------------

interface ReadyLine {
  https: string;
  caFile: string | null;
  /** Logged by a cluster's primary (src/cluster/primary.ts); absent with `workers: 1`, which has no primary. */
  workers?: number;
}

function readyLine(output: string): ReadyLine | undefined {
  for (const line of output.split("\n")) {
    const json = line.replace(/^\[stdout\] /, "");
    if (!json.includes('"gateway ready"')) continue;
    try {
      return JSON.parse(json) as ReadyLine;
    } catch {
      // a partial line: keep waiting
    }
  }
  return undefined;
}

export interface StartedGateway {
  proxy: RunningProxy;
  cert: SiteCertificate;
  /** Worker processes serving requests (1 = a single process, no primary). */
  workers: number;
}

export async function startGateway(workDir: string, backendPort: number, options: ProxyOptions = {}): Promise<StartedGateway> {
  const [port, adminPort] = [await freePort(), await freePort()];
  const dataDir = join(workDir, "gateway-data");
  const configFile = join(workDir, "gateway.yaml");
  // Level info, not warn: the "gateway ready" line is logged at info. Requests are logged at debug only,
  // so this adds nothing per request.
  await writeFile(
    configFile,
    [
      `listen: 127.0.0.1:${port}`,
      `admin: { listen: 127.0.0.1:${adminPort} }`,
      `dataDir: ${JSON.stringify(dataDir)}`,
      // No `workers` key: the default, auto = one worker per core plus a primary, as users run it; nginx
      // (worker_processes auto) and Caddy (GOMAXPROCS = cores) use every core too.
      options.accessLog === false ? "log: { level: info, access: false }" : "log: { level: info }",
      "sites:",
      `  - hosts: [${SITE_HOST}, localhost, 127.0.0.1]`,
      `    backend: http://127.0.0.1:${backendPort}`,
      ...(options.basicAuth
        ? [
            `    auth: { type: htpasswd, htpasswd: ${JSON.stringify(options.basicAuth.htpasswdFile)}, rules: [{ who: [${options.basicAuth.user}], repositories: ["**"], actions: [pull] }] }`,
          ]
        : []),
      "",
    ].join("\n"),
  );
  const child = startProcess(process.execPath, [join(REPO_ROOT, "dist", "main.js"), "serve", "--config", configFile], {
    name: "gateway",
    cwd: workDir,
  });
  let ready: ReadyLine;
  try {
    ready = await waitFor(() => readyLine(child.output()), {
      timeoutMs: GATEWAY_READY_TIMEOUT_MS,
      what: 'the gateway\'s "gateway ready" log line',
      giveUpIf: () => (child.exitStatus ? `process exited (${JSON.stringify(child.exitStatus)})` : undefined),
    });
  } catch (err) {
    await child.stop(1000);
    throw new Error(`${(err as Error).message}\n--- gateway output ---\n${child.output()}`);
  }
  if (!ready.caFile) throw new Error("the gateway ready line names no caFile (expected generated certificates)");
  // File names from src/tls/selfsigned.ts: DATADIR/certs/<site name>.crt|.key, the site name being its first host.
  const cert: SiteCertificate = {
    caFile: ready.caFile,
    ca: await readFile(ready.caFile, "utf8"),
    certFile: join(dataDir, "certs", `${SITE_HOST}.crt`),
    keyFile: join(dataDir, "certs", `${SITE_HOST}.key`),
  };
  const httpsPort = Number(ready.https.split(":").pop());
  const workers = ready.workers ?? 1;
  const proxy: RunningProxy = {
    name: "gateway",
    ...endpointAt(httpsPort, cert),
    memoryProcesses: () => gatewayProcesses(child.pid, workers),
    output: () => child.output(),
    logProblems: async () => linesMatching(child.output(), /"level":"(warn|error|fatal)"/),
    stop: async () => void (await child.stop()),
  };
  await waitUntilServing(proxy, child, options.basicAuth);
  return { proxy, cert, workers };
}

/**
 * The primary and its workers (its children: with no managed registry configured the gateway forks
 * nothing else); a single-process gateway is just itself.
 */
async function gatewayProcesses(pid: number, workers: number): Promise<MeasuredProcess[]> {
  if (workers === 1) return [{ pid, role: "process" }];
  const children = await childPids(pid);
  // A worker that died is being restarted: its memory would be missing from the rows, so say so.
  if (children.length !== workers) throw new Error(`gateway ${pid}: ${children.length} worker processes, expected ${workers}`);
  return [{ pid, role: "primary" }, ...children.map((child) => ({ pid: child, role: "worker" }))];
}

// ---- nginx -----------------------------------------------------------------------------------------------

/**
 * distribution's docs/recipes/nginx.md, minus auth_basic (the gateway runs without auth here too), plus:
 * proxy_request_buffering off (the issue asks for streamed uploads) and proxy_http_version 1.1, without
 * which nginx buffers every chunked request body to disk whatever proxy_request_buffering says; and the
 * bench's own housekeeping (paths inside DIR, worker_processes auto, access_log off).
 */
function nginxConf(dir: string, port: number, backendPort: number, cert: SiteCertificate, auth?: BenchBasicAuth): string {
  const p = (name: string) => JSON.stringify(join(dir, name));
  return `worker_processes auto;
pid ${p("nginx.pid")};
error_log ${p("error.log")} warn;

events {
    worker_connections  1024;
}

http {
  access_log off;
  client_body_temp_path ${p("temp/body")};
  proxy_temp_path ${p("temp/proxy")};
  fastcgi_temp_path ${p("temp/fastcgi")};
  uwsgi_temp_path ${p("temp/uwsgi")};
  scgi_temp_path ${p("temp/scgi")};

  upstream docker-registry {
    server 127.0.0.1:${backendPort};
  }

  map $upstream_http_docker_distribution_api_version $docker_distribution_api_version {
    'registry/2.0' '';
    default registry/2.0;
  }

  server {
    listen 127.0.0.1:${port} ssl;
    server_name ${SITE_HOST};

    ssl_certificate ${JSON.stringify(cert.certFile)};
    ssl_certificate_key ${JSON.stringify(cert.keyFile)};

    ssl_protocols TLSv1.1 TLSv1.2;
    ssl_ciphers 'EECDH+AESGCM:EDH+AESGCM:AES256+EECDH:AES256+EDH';
    ssl_prefer_server_ciphers on;
    ssl_session_cache shared:SSL:10m;

    client_max_body_size 0;
    chunked_transfer_encoding on;

    location /v2/ {
      if ($http_user_agent ~ "^(docker\\/1\\.(3|4|5(?!\\.[0-9]-dev))|Go ).*$" ) {
        return 404;
      }

      add_header 'Docker-Distribution-Api-Version' $docker_distribution_api_version always;
${auth ? `\n      auth_basic "Registry realm";\n      auth_basic_user_file ${JSON.stringify(auth.htpasswdFile)};\n` : ""}
      proxy_pass                          http://docker-registry;
      proxy_set_header  Host              $http_host;
      proxy_set_header  X-Real-IP         $remote_addr;
      proxy_set_header  X-Forwarded-For   $proxy_add_x_forwarded_for;
      proxy_set_header  X-Forwarded-Proto $scheme;
      proxy_read_timeout                  900;
      proxy_request_buffering             off;
      proxy_http_version                  1.1;
    }
  }
}
`;
}

export async function startNginx(workDir: string, backendPort: number, cert: SiteCertificate, options: ProxyOptions = {}): Promise<RunningProxy> {
  const dir = join(workDir, "nginx");
  await mkdir(join(dir, "temp"), { recursive: true });
  // Workers run as nobody: they must be able to reach their temp paths inside the (0700) mkdtemp dir.
  await chmod(workDir, 0o711);
  await chmod(dir, 0o755);
  const port = await freePort();
  await writeFile(join(dir, "nginx.conf"), nginxConf(dir, port, backendPort, cert, options.basicAuth));
  const child = startProcess("nginx", ["-p", dir, "-c", "nginx.conf", "-g", "daemon off;"], { name: "nginx" });
  const proxy: RunningProxy = {
    name: "nginx",
    ...endpointAt(port, cert),
    memoryProcesses: async () => (await childPids(child.pid)).map((pid) => ({ pid, role: "worker" })),
    output: () => child.output(),
    logProblems: async () =>
      // [warn] is left out: the recipe's response buffering logs one for every blob spooled to a temp file.
      linesMatching((await readFile(join(dir, "error.log"), "utf8").catch(() => "")) + child.output(), /\[(error|crit|alert|emerg)\]/),
    stop: async () => void (await child.stop()),
  };
  await waitUntilServing(proxy, child, options.basicAuth);
  return proxy;
}

/** Direct children of pid (nginx's workers, the gateway's), from /proc/PID/stat's ppid field, lowest pid first. */
async function childPids(parent: number): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = await readFile(`/proc/${entry}/stat`, "utf8");
      // Fields after the parenthesised command name: state ppid …
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === parent) pids.push(Number(entry));
    } catch {
      // exited meanwhile
    }
  }
  return pids.sort((a, b) => a - b);
}

// ---- Caddy -----------------------------------------------------------------------------------------------

function caddyfile(dir: string, port: number, backendPort: number, cert: SiteCertificate, auth?: BenchBasicAuth): string {
  return `{
	admin off
	auto_https off
	storage file_system {
		root ${JSON.stringify(join(dir, "storage"))}
	}
	servers {
		protocols h1 h2
	}
}

https://:${port} {
	bind 127.0.0.1
	tls ${JSON.stringify(cert.certFile)} ${JSON.stringify(cert.keyFile)}
${auth ? `\tbasicauth {\n\t\t${auth.user} ${Buffer.from(auth.hash).toString("base64")}\n\t}\n` : ""}	reverse_proxy 127.0.0.1:${backendPort}
}
`;
}

export async function startCaddy(workDir: string, backendPort: number, cert: SiteCertificate, options: ProxyOptions = {}): Promise<RunningProxy> {
  const dir = join(workDir, "caddy");
  await mkdir(dir, { recursive: true });
  const port = await freePort();
  const file = join(dir, "Caddyfile");
  await writeFile(file, caddyfile(dir, port, backendPort, cert, options.basicAuth));
  // HOME and XDG dirs inside DIR: Caddy writes nothing outside it (autosave.json, storage, locks).
  const env = {
    HOME: dir,
    XDG_CONFIG_HOME: join(dir, "config"),
    XDG_DATA_HOME: join(dir, "data"),
    XDG_CACHE_HOME: join(dir, "cache"),
  };
  const child = startProcess("caddy", ["run", "--config", file, "--adapter", "caddyfile"], { name: "caddy", env, cwd: dir });
  const proxy: RunningProxy = {
    name: "caddy",
    ...endpointAt(port, cert),
    memoryProcesses: async () => [{ pid: child.pid, role: "process" }],
    output: () => child.output(),
    // Errors only: with admin off, auto_https off and a private CA, Caddy warns at every start.
    logProblems: async () => linesMatching(child.output(), /"level":"(error|fatal)"/),
    stop: async () => void (await child.stop()),
  };
  await waitUntilServing(proxy, child, options.basicAuth);
  return proxy;
}

/**
 * A one-site gateway for the feature benches: `label` names its config and data dir, `topLevel` and
 * `siteLines` add to the minimal config (top-level keys; lines under the site, indented four spaces).
 * One process (`workers: 1`): these rows compare the gateway with itself, feature off vs on, and read
 * CPU per request from one pid; a cluster would split that over workers the bench would have to sum.
 */
export async function startFeatureGateway(
  workDir: string,
  label: string,
  backend: string,
  { topLevel = [], siteLines = [] }: { topLevel?: string[]; siteLines?: string[] } = {},
): Promise<{ gateway: GatewayProcess; endpoint: Endpoint }> {
  const configFile = join(workDir, `gateway-${label}.yaml`);
  const lines = [
    "listen: 127.0.0.1:0",
    'admin: { listen: "127.0.0.1:0" }',
    `dataDir: ${JSON.stringify(join(workDir, `gateway-${label}-data`))}`,
    "workers: 1",
    ...topLevel,
    "sites:",
    `  - hosts: [${SITE_HOST}]`,
    `    backend: ${backend}`,
    ...siteLines,
    "",
  ];
  await writeFile(configFile, lines.join("\n"));
  const gateway = await startGatewayProcess(configFile);
  if (!gateway.caFile) throw new Error(`the "${label}" gateway names no CA file (expected generated certificates)`);
  const endpoint: Endpoint = {
    name: label,
    origin: `https://${SITE_HOST}:${gateway.httpsPort}`,
    port: gateway.httpsPort,
    ca: await readFile(gateway.caFile, "utf8"),
    caFile: gateway.caFile,
  };
  return { gateway, endpoint };
}
