// One soak run against a started fleet: traffic from every client, the faults at their scheduled times,
// samples throughout, then every acknowledged push checked and the invariants decided.
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { pushBlob, pushTinyImage, type TinyImage } from "../test/helpers/seed.js";
import { countOutcomes } from "./attribution.js";
import { basic } from "./credentials.js";
import type { BigBlob } from "./abusers.js";
import { podmanTraffic, skopeoPulls, skopeoPushes, type ClientContext, type ClientTraffic } from "./clients.js";
import { dockerTraffic } from "./docker-traffic.js";
import { FAULTS, type FaultContext } from "./faults.js";
import { INITIAL_PULL_RATE, type Fleet } from "./fleet.js";
import { HUB, TEAM } from "./gateway-config.js";
import { failuresAttributed, faultCheck, p99OutsideFaults, pushesVerified, resourcesReturn } from "./invariants.js";
import { startLoadgen } from "./loadgen.js";
import type { SoakOptions } from "./options.js";
import { Recorder } from "./recorder.js";
import type { FaultWindow, InvariantResult, Sample } from "./result.js";
import { startSampler } from "./sampler.js";
import { planSchedule, type Schedule } from "./schedule.js";
import { largestLayer } from "./sizes.js";
import { endpointOf, verifyPushes } from "./verify.js";

export interface SoakFindings {
  durationSeconds: number;
  faults: FaultWindow[];
  outcomes: ReturnType<typeof countOutcomes>;
  blobs: Awaited<ReturnType<typeof verifyPushes>>["blobs"];
  samples: Sample[];
  invariants: InvariantResult[];
}

interface Seeds {
  small: { hub: TinyImage; team: TinyImage };
  big: BigBlob;
}

async function seed(fleet: Fleet, bigBytes: number): Promise<Seeds> {
  const agent = "soak-seed";
  const [hub, team] = await Promise.all([pushTinyImage(fleet.replicas[0]!.url, "soak/small", "v1", agent), pushTinyImage(fleet.hosted.url, "soak/small", "v1", agent)]);
  const digest = await pushBlob(fleet.replicas[0]!.url, "soak/big", randomBytes(bigBytes), agent);
  return { small: { hub, team }, big: { repository: "soak/big", digest, bytes: bigBytes } };
}

async function startTraffic(ctx: ClientContext, seeds: Seeds, options: SoakOptions): Promise<ClientTraffic[]> {
  const loadgen = startLoadgen(ctx.recorder, {
    targets: [
      { endpoint: endpointOf(ctx.fleet, HUB), image: seeds.small.hub },
      { endpoint: endpointOf(ctx.fleet, TEAM), image: seeds.small.team },
    ],
    perSecond: options.rate,
    authorization: basic("reader"),
  });
  const traffic: ClientTraffic[] = [loadgen, skopeoPushes(ctx), skopeoPulls(ctx), podmanTraffic(ctx)];
  if (options.docker) traffic.push(await dockerTraffic(ctx));
  return traffic;
}

/** Every replica of the pool down for 3 s, recorded nowhere: the failures it causes must fail the run. */
async function unrecordedOutage(fleet: Fleet): Promise<void> {
  console.error("# --unattributed-fault: stopping every replica of the pool for 3 s, outside any fault window");
  await Promise.all(fleet.replicas.map((_, index) => fleet.restartReplica(index, 3000)));
}

async function runFaults(ctx: FaultContext, recorder: Recorder, schedule: Schedule): Promise<{ windows: FaultWindow[]; checks: InvariantResult[] }> {
  const windows: FaultWindow[] = [];
  const checks: InvariantResult[] = [];
  for (const planned of schedule.faults) {
    const wait = planned.at - recorder.now();
    if (wait > 0) await sleep(wait * 1000);
    const start = recorder.now();
    console.error(`# ${start.toFixed(1)} s: ${planned.name}`);
    const outcome = await FAULTS[planned.name](ctx).catch((err: Error) => ({
      detail: `could not be injected: ${err.message.slice(0, 300)}`,
      checks: [faultCheck(`${planned.name} was injected`, false, err.message.slice(0, 500))],
    }));
    windows.push({ name: planned.name, start: round(start), end: round(recorder.now() + planned.settleSeconds), detail: outcome.detail });
    checks.push(...outcome.checks);
  }
  return { windows, checks };
}

export async function soak(fleet: Fleet, options: SoakOptions): Promise<SoakFindings> {
  const workDir = await mkdtemp(join(fleet.dir, "work-"));
  const seeds = await seed(fleet, options.minutes >= 10 ? 32 << 20 : 8 << 20);
  const schedule = planSchedule(options.minutes * 60);
  const recorder = new Recorder();
  const samples: Sample[] = [];
  // About 200 samples a run, every 1 to 5 s: a short run's quiet phase still gets several for its baseline.
  const sampleEvery = Math.min(5000, Math.max(1000, (options.minutes * 60 * 1000) / 200));
  const sampler = startSampler(fleet, recorder, samples, sampleEvery);
  const traffic = await startTraffic({ fleet, recorder, workDir, largestLayer: largestLayer(options.minutes) }, seeds, options);
  const outage = options.unattributedFault ? sleep((schedule.quietSeconds / 2) * 1000).then(() => unrecordedOutage(fleet)) : Promise.resolve();
  const faultContext: FaultContext = { fleet, bigBlob: seeds.big, config: { newcomer: false, pullRate: INITIAL_PULL_RATE }, holdSeconds: Math.min(10, Math.max(3, schedule.faults[0]?.settleSeconds ?? 3)) };
  const { windows, checks } = await runFaults(faultContext, recorder, schedule);
  await outage;
  // The run lasts its planned length, and at least long enough after the last fault for recovery to show.
  const graceSeconds = Math.max(6, (3 * sampleEvery) / 1000);
  const endAt = Math.max(schedule.durationSeconds, (windows.at(-1)?.end ?? 0) + graceSeconds);
  await sleep(Math.max(0, endAt - recorder.now()) * 1000);
  console.error(`# ${recorder.now().toFixed(1)} s: stopping traffic`);
  await Promise.all(traffic.map((t) => t.stop()));
  await sampler.stop();
  const durationSeconds = round(recorder.now());
  console.error(`# verifying ${recorder.pushes.length} acknowledged pushes`);
  const { blobs, problems } = await verifyPushes(fleet, recorder.pushes);
  await rm(workDir, { recursive: true, force: true });
  const quiet = { from: schedule.warmupSeconds, until: schedule.quietSeconds };
  const invariants = [
    pushesVerified(blobs, problems),
    failuresAttributed(recorder.records, windows),
    ...resourcesReturn(samples, quiet, windows, graceSeconds),
    p99OutsideFaults(recorder.latencies, quiet, windows),
    ...checks,
  ];
  return { durationSeconds, faults: windows, outcomes: countOutcomes(recorder.records, windows), blobs, samples, invariants };
}

function round(value: number): number {
  return Math.round(value * 10) / 10;
}
