// The faults, one function each: what is done to the fleet, and what must hold right after (a fault's own
// check, e.g. a broken reload refused). The runner records each as a window with its settling time.
import { setTimeout as sleep } from "node:timers/promises";
import { cli } from "../test/helpers/cli.js";
import { workerPids } from "../test/helpers/cluster.js";
import { waitFor } from "../test/helpers/process.js";
import { faultCheck } from "./invariants.js";
import { abandonDownloads, abortUploads, slowloris, type BigBlob } from "./abusers.js";
import { INITIAL_PULL_RATE, type Fleet } from "./fleet.js";
import { adminPost, directGet, servedSerials } from "./fleet-calls.js";
import { ACME_HOST, BROKEN_CONFIG, HUB } from "./gateway-config.js";
import type { InvariantResult } from "./result.js";
import { uploadsThroughSigterm } from "./rolling.js";
import type { FaultName } from "./schedule.js";

export interface FaultContext {
  fleet: Fleet;
  /** A blob of a few MiB in the pool, for downloads to abandon. */
  bigBlob: BigBlob;
  /** The configuration the fleet runs now (a reload changes it; the broken one is put back from this). */
  config: { newcomer: boolean; pullRate: number };
  /** Seconds the slowloris connections are held. */
  holdSeconds: number;
}

export interface FaultOutcome {
  detail: string;
  checks: InvariantResult[];
}

type Fault = (ctx: FaultContext) => Promise<FaultOutcome>;

const DOWN_MS = 2000;

async function redisKilled({ fleet }: FaultContext): Promise<FaultOutcome> {
  const pid = fleet.redis.process?.pid;
  await fleet.redis.kill();
  await sleep(DOWN_MS);
  await fleet.redis.start();
  return { detail: `SIGKILL redis (pid ${pid}), restarted empty after ${DOWN_MS} ms`, checks: [] };
}

async function replicaKilled({ fleet }: FaultContext): Promise<FaultOutcome> {
  return { detail: await fleet.restartReplica(1, DOWN_MS), checks: [] };
}

async function workerSigkill({ fleet }: FaultContext): Promise<FaultOutcome> {
  const primary = fleet.gateways[0]!.current.process.pid;
  const [victim] = await workerPids(primary);
  if (victim === undefined) throw new Error(`gateway 1 (pid ${primary}) has no worker to kill`);
  process.kill(victim, "SIGKILL");
  await waitFor(async () => {
    const pids = await workerPids(primary);
    return pids.length === 2 && !pids.includes(victim);
  }, { timeoutMs: 30_000, what: "the primary to replace its killed worker" });
  return { detail: `SIGKILL worker pid ${victim} of gateway 1; the primary started another`, checks: [] };
}

async function gatewaySigkill({ fleet }: FaultContext): Promise<FaultOutcome> {
  const slot = fleet.gateways[1]!;
  const victim = slot.current.process;
  // The whole process group: the primary and its workers die at once, as with a machine lost.
  process.kill(-victim.pid, "SIGKILL");
  await victim.exited();
  await sleep(1000);
  const restarted = await fleet.startGateway(slot.index);
  return { detail: `SIGKILL gateway 2 with its workers (pid ${victim.pid}); restarted as pid ${restarted.process.pid}`, checks: [] };
}

async function rollingSigterm({ fleet }: FaultContext): Promise<FaultOutcome> {
  const slot = fleet.gateways[2]!;
  const { detail, check } = await uploadsThroughSigterm(fleet, slot);
  await fleet.startGateway(slot.index);
  return { detail: `${detail}; restarted as pid ${slot.current.process.pid}`, checks: [check] };
}

async function reloadAll(fleet: Fleet): Promise<{ status: number; body: string }[]> {
  return Promise.all(fleet.gateways.map((slot) => adminPost(fleet, slot, "/reload").catch((err: Error) => ({ status: 0, body: err.message }))));
}

async function reloadUsersLimits(ctx: FaultContext): Promise<FaultOutcome> {
  const { fleet } = ctx;
  ctx.config = { newcomer: true, pullRate: Math.round(INITIAL_PULL_RATE * 0.75) };
  await fleet.writeConfigs(ctx.config);
  const answers = await reloadAll(fleet);
  const newcomer = await Promise.all(fleet.gateways.map((slot) => directGet(fleet, slot, HUB, "/v2/", "newcomer").then((r) => r.status, () => 0)));
  const ok = answers.every((a) => a.status === 200) && newcomer.every((s) => s === 200);
  return {
    detail: `user newcomer added, pull limit ${INITIAL_PULL_RATE} → ${ctx.config.pullRate}/min; POST /reload on every gateway`,
    checks: [faultCheck("a reload that adds a user and changes a limit applies on every gateway", ok, `reload answers ${answers.map((a) => a.status).join(", ")}; newcomer's GET /v2/ on each gateway: ${newcomer.join(", ")}`)],
  };
}

async function reloadBroken(ctx: FaultContext): Promise<FaultOutcome> {
  const { fleet } = ctx;
  await fleet.writeConfigs({ ...ctx.config, broken: BROKEN_CONFIG });
  const answers = await reloadAll(fleet);
  await fleet.writeConfigs(ctx.config);
  const serving = await Promise.all(fleet.gateways.map((slot) => directGet(fleet, slot, HUB, "/v2/", "newcomer").then((r) => r.status, () => 0)));
  const ok = answers.every((a) => a.status === 422) && serving.every((s) => s === 200);
  return {
    detail: "a configuration file that is not YAML; POST /reload on every gateway, then the good file put back",
    checks: [faultCheck("a reload of a broken file is refused and the running configuration keeps serving", ok, `reload answers ${answers.map((a) => a.status).join(", ")} (422 expected); GET /v2/ as the reloaded-in user afterwards: ${serving.join(", ")}`)],
  };
}

/** `cert rotate --site HOST` against one gateway's admin listener; then every gateway must serve one new serial. */
async function rotateEverywhere(fleet: Fleet, gateway: number, host: string, checkName: string): Promise<FaultOutcome> {
  const before = await servedSerials(fleet, host);
  const slot = fleet.gateways[gateway]!;
  const result = await cli(["cert", "rotate", "--config", slot.configPath, "--site", host], { env: fleet.env, timeoutMs: 120_000 });
  let after: string[] = [];
  const converged = await waitFor(async () => {
    after = await servedSerials(fleet, host);
    return after.every((serial) => serial === after[0] && !before.includes(serial));
  }, { timeoutMs: 30_000 }).then(() => true, () => false);
  const ok = result.code === 0 && converged;
  return {
    detail: `cert rotate --site ${host} against gateway ${gateway + 1}'s admin listener`,
    checks: [faultCheck(checkName, ok, `cert rotate exit ${result.code}${result.code ? ` (${result.stderr.trim().slice(0, 200)})` : ""}; serials before ${before.join(", ")}, after ${after.join(", ")}`)],
  };
}

const certRotate: Fault = ({ fleet }) => rotateEverywhere(fleet, 0, HUB, "cert rotate: every gateway serves the new serial (direct TLS handshake to each)");
const acmeRenewal: Fault = ({ fleet }) => rotateEverywhere(fleet, 1, ACME_HOST, "ACME renewal through pebble lands on every gateway (direct TLS handshake to each)");

export const FAULTS: Record<FaultName, Fault> = {
  "redis-killed": redisKilled,
  "replica-killed": replicaKilled,
  "worker-sigkill": workerSigkill,
  "gateway-sigkill": gatewaySigkill,
  "rolling-sigterm": rollingSigterm,
  "aborted-uploads": async ({ fleet }) => ({ detail: await abortUploads(fleet, 100), checks: [] }),
  "abandoned-downloads": async ({ fleet, bigBlob }) => ({ detail: await abandonDownloads(fleet, bigBlob, 100), checks: [] }),
  "cert-rotate": certRotate,
  "reload-users-limits": reloadUsersLimits,
  "reload-broken": reloadBroken,
  slowloris: async ({ fleet, holdSeconds }) => ({ detail: await slowloris(fleet, 60, holdSeconds), checks: [] }),
  "acme-renewal": acmeRenewal,
};
