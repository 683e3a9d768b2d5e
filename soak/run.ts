// `npm run soak -- --minutes N`: starts the fleet, runs the soak, writes result.json and the report, and exits
// non-zero when any invariant failed.
import { execFileSync } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import os from "node:os";
import { join } from "node:path";
import { startFleet } from "./fleet.js";
import { parseSoakOptions, USAGE } from "./options.js";
import { writeReport } from "./report.js";
import { passed, type SoakResult } from "./result.js";
import { soak } from "./soak.js";

function commitOf(): string {
  try {
    const head = execFileSync("git", ["rev-parse", "--short", "HEAD"], { encoding: "utf8" }).trim();
    const dirty = execFileSync("git", ["status", "--porcelain"], { encoding: "utf8" }).trim() !== "";
    return `${head} (${dirty ? "uncommitted changes" : "clean"})`;
  } catch {
    return "unknown";
  }
}

function machine(): string {
  return `${os.availableParallelism()} cores (${os.cpus()[0]?.model ?? "unknown CPU"}), ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}`;
}

function printSummary(result: SoakResult): void {
  console.log(`soak: ${result.durationSeconds} s, ${result.faults.length} faults, ${result.blobs.verified}/${result.blobs.pushed} pushes verified`);
  for (const outcome of result.outcomes) console.log(`  ${outcome.operation}: ${outcome.ok} ok, ${outcome.failedInFaultWindow} failed in a fault window, ${outcome.unexplained} unexplained`);
  for (const invariant of result.invariants) console.log(`${invariant.ok ? "PASS" : "FAIL"}  ${invariant.name}: ${invariant.detail}`);
  console.log(passed(result) ? "soak passed" : "soak FAILED");
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  let options;
  try {
    options = parseSoakOptions(argv);
  } catch (err) {
    console.error(`${(err as Error).message}\nusage: ${USAGE}`);
    process.exit(2);
  }
  const startedAt = new Date().toISOString();
  const fleet = await startFleet();
  let result: SoakResult;
  try {
    console.error(`# ${process.uptime().toFixed(1)} s after start: fleet up: balancer :${fleet.port}, gateways ${fleet.gateways.map((g) => `:${g.httpsPort}`).join(" ")}`);
    const findings = await soak(fleet, options);
    result = { startedAt, minutes: options.minutes, commit: commitOf(), command: `npm run soak -- ${argv.join(" ")}`.trim(), machine: machine(), ...findings };
  } finally {
    await fleet.stop();
    console.error(`# ${process.uptime().toFixed(1)} s after start: fleet stopped`);
  }
  await mkdir(options.out, { recursive: true });
  await writeFile(join(options.out, "result.json"), `${JSON.stringify(result, null, 2)}\n`);
  await writeReport(result, { markdownPath: `${options.out}.md`, svgDir: options.out });
  printSummary(result);
  process.exitCode = passed(result) ? 0 : 1;
}

await main();
