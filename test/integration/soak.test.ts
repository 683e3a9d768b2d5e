// Runs alone: compares small GETs' p99 under faults with its quiet p99, and loads both cores with a fleet of its own.
// The soak in CI: 90 seconds of the fleet (three gateways behind HAProxy, Redis, a replica pool and a group)
// under skopeo, podman and load-generator traffic, with the whole fault schedule compressed into it. It runs
// as `npm run soak` does, in a process of its own, and every invariant must hold.
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { REPO_ROOT } from "../helpers/cli.js";
import { run, type RunResult } from "../helpers/process.js";
import type { SoakResult } from "../../soak/result.js";

describe("soak: 90 seconds of a fleet under mixed traffic while things fail", { timeout: 300_000 }, () => {
  let dir: string;
  let outcome: RunResult;
  let result: SoakResult;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "rg-soak-test-"));
    const out = join(dir, "reliability");
    outcome = await run(process.execPath, ["--import", "tsx", "soak/run.ts", "--minutes", "1.5", "--no-docker", "--out", out], { cwd: REPO_ROOT, timeoutMs: 280_000 });
    result = JSON.parse(await readFile(join(out, "result.json"), "utf8")) as SoakResult;
  });

  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("every invariant holds, and the run exits 0", () => {
    const failed = result.invariants.filter((invariant) => !invariant.ok);
    assert.deepEqual(failed, [], `${outcome.stdout}\n${outcome.stderr.slice(-3000)}`);
    assert.equal(outcome.code, 0, outcome.stdout);
  });

  it("injected every fault, each as a window", () => {
    const names = result.faults.map((fault) => fault.name);
    for (const name of ["redis-killed", "replica-killed", "worker-sigkill", "gateway-sigkill", "rolling-sigterm", "aborted-uploads", "abandoned-downloads", "cert-rotate", "reload-users-limits", "reload-broken", "slowloris", "acme-renewal"]) {
      assert.ok(names.includes(name), `${name} in ${names.join(", ")}`);
    }
    for (const fault of result.faults) assert.ok(fault.end > fault.start && fault.detail.length > 0, JSON.stringify(fault));
  });

  it("real traffic flowed: pushes verified, every client and the load generator succeeded, samples taken", () => {
    assert.ok(result.blobs.pushed >= 5 && result.blobs.verified === result.blobs.pushed, JSON.stringify(result.blobs));
    for (const operation of ["skopeo push", "skopeo pull", "podman pull", "podman push", "loadgen small GET"]) {
      const counted = result.outcomes.find((o) => o.operation === operation);
      assert.ok(counted && counted.ok > 0, `${operation}: ${JSON.stringify(counted)}`);
    }
    assert.ok(result.samples.length >= 20, `${result.samples.length} samples`);
    assert.ok(result.samples.some((s) => s.p99Ms !== null && s.redisConnections > 0 && s.backendConnections > 0 && s.fds > 0 && s.rssMb > 0));
  });
});
