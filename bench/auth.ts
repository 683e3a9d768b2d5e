// Authenticated small GETs: the manifest GET with Basic credentials against a bcrypt cost-10
// htpasswd, through the gateway (verification cache), nginx (auth_basic: bcrypt on every request, as in
// distribution's nginx recipe) and Caddy (basicauth with its hash cache), in the same run, interleaved.
// Targets: gateway ≥ 1.0× Caddy and ≥ 2× nginx.
//
// For `npm run bench` (bench/run.ts) to call; also runnable alone:
//   node --import tsx bench/auth.ts [seconds] [rounds]     (starts its own registry)
import { randomBytes } from "node:crypto";
import { chmod, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { OCI_MANIFEST } from "../test/helpers/oci.js";
import { run } from "../test/helpers/process.js";
import { startRegistry } from "../test/helpers/registry.js";
import { type Endpoint, expectStatus, send } from "./client.js";
import { manifestRps } from "./measure.js";
import { type BenchBasicAuth, type RunningProxy, startCaddy, startGateway, startNginx } from "./proxies.js";
import { median } from "./report.js";
import { PULL_REPO, PULL_TAG, ensureManifest } from "./seed.js";

export interface AuthBenchOptions {
  /** The registry behind all three proxies, e.g. http://127.0.0.1:5000. Seeded if it lacks bench/pull:v1. */
  registryUrl: string;
  /** wrk duration of each sample. */
  seconds: number;
  /** Samples per proxy, the starting proxy rotating per round; the median is reported. Default: 3. */
  rounds?: number;
  /** Where configs and data go; a temp dir (removed afterwards) when omitted. */
  workDir?: string;
}

export interface AuthBenchResult {
  /** Median authenticated manifest GETs per second (wrk -t2 -c32). */
  gateway: number;
  nginx: number;
  caddy: number;
  samples: { gateway: number[]; nginx: number[]; caddy: number[] };
}

const USER = "bench";
const BCRYPT_COST = 10;

export async function benchAuthenticatedGets(options: AuthBenchOptions): Promise<AuthBenchResult> {
  const rounds = options.rounds ?? 3;
  const workDir = options.workDir ?? (await mkdtemp(join(tmpdir(), "rg-bench-auth-")));
  const stops: Array<() => Promise<unknown>> = [];
  try {
    const registry = new URL(options.registryUrl);
    await ensureManifest({ name: "direct", origin: registry.origin, port: Number(registry.port) });
    const basicAuth = await writeHtpasswd(workDir);
    const authorization = { authorization: `Basic ${Buffer.from(`${basicAuth.user}:${basicAuth.password}`).toString("base64")}` };

    // The gateway's access log is off: nginx and Caddy log no requests here either.
    const { proxy: gateway, cert } = await startGateway(workDir, Number(registry.port), { basicAuth, accessLog: false });
    stops.push(() => gateway.stop());
    const nginx = await startNginx(workDir, Number(registry.port), cert, { basicAuth });
    stops.push(() => nginx.stop());
    const caddy = await startCaddy(workDir, Number(registry.port), cert, { basicAuth });
    stops.push(() => caddy.stop());
    const proxies: RunningProxy[] = [gateway, nginx, caddy];

    // Each must really be checking credentials, or the comparison says nothing.
    for (const proxy of proxies) {
      const path = `/v2/${PULL_REPO}/manifests/${PULL_TAG}`;
      expectStatus(await send(proxy, "GET", path, { headers: { accept: OCI_MANIFEST, ...authorization } }), 200, `authenticated manifest GET via ${proxy.name}`);
      expectStatus(await send(proxy, "GET", path, { headers: { accept: OCI_MANIFEST } }), 401, `anonymous manifest GET via ${proxy.name}`);
    }
    // Warm-up, not counted: JIT, connection pools, and the two hash caches.
    for (const proxy of proxies) await manifestRps(proxy, workDir, 1, authorization);

    const samples = { gateway: [] as number[], nginx: [] as number[], caddy: [] as number[] };
    for (let round = 0; round < rounds; round++) {
      for (let i = 0; i < proxies.length; i++) {
        const proxy = proxies[(round + i) % proxies.length]!;
        const result = await manifestRps(proxy, workDir, options.seconds, authorization);
        // nginx checks bcrypt on every request: wrk's 2 s timeouts under load are its slowness (the rate counts
        // only answered requests), not a wrong answer, so its sample stands and the timeouts are said. From the
        // gateway or Caddy, whose logins are cached, a socket error is a fault and voids the row.
        const toleratedTimeouts = proxy.name === "nginx" && result.non2xx === 0;
        if ((result.non2xx || result.socketErrors) && !toleratedTimeouts) {
          throw new Error(`wrk via ${proxy.name}: ${result.non2xx} non-2xx responses, ${result.socketErrors} socket errors`);
        }
        if (result.socketErrors) process.stderr.write(`[bench] wrk via ${proxy.name}: ${result.socketErrors} socket errors (timeouts)\n`);
        samples[proxy.name as keyof typeof samples].push(result.requestsPerSecond);
      }
    }
    return { gateway: median(samples.gateway)!, nginx: median(samples.nginx)!, caddy: median(samples.caddy)!, samples };
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => {});
    if (!options.workDir) await rm(workDir, { recursive: true, force: true });
  }
}

/** One user, bcrypt cost 10, written by Apache's htpasswd as an operator would. */
export async function writeHtpasswd(workDir: string): Promise<BenchBasicAuth> {
  const password = randomBytes(9).toString("base64url");
  const made = await run("htpasswd", ["-nbB", "-C", String(BCRYPT_COST), USER, password]);
  if (made.code !== 0) throw new Error(`htpasswd -nbB: ${made.stderr}`);
  const line = made.stdout.trim();
  const htpasswdFile = join(workDir, "bench.htpasswd");
  await writeFile(htpasswdFile, `${line}\n`);
  // nginx's workers run as nobody.
  await chmod(htpasswdFile, 0o644);
  return { htpasswdFile, user: USER, password, hash: line.slice(USER.length + 1) };
}


// Standalone: its own registry, one result line.
if (import.meta.url === `file://${process.argv[1]}`) {
  const registry = await startRegistry();
  try {
    const result = await benchAuthenticatedGets({ registryUrl: registry.url, seconds: Number(process.argv[2] ?? 5), rounds: Number(process.argv[3] ?? 3) });
    const row = (n: number) => n.toFixed(0);
    console.log(
      `authenticated manifest GET req/s (bcrypt cost ${BCRYPT_COST}): gateway ${row(result.gateway)}, nginx ${row(result.nginx)}, caddy ${row(result.caddy)};` +
        ` gateway/Caddy ${(result.gateway / result.caddy).toFixed(2)}, gateway/nginx ${(result.gateway / result.nginx).toFixed(2)}` +
        ` (samples gateway ${result.samples.gateway.map(row).join("/")}, nginx ${result.samples.nginx.map(row).join("/")}, caddy ${result.samples.caddy.map(row).join("/")})`,
    );
  } finally {
    await registry.stop();
  }
}
