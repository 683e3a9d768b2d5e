import assert from "node:assert/strict";
import { mkdir, mkdtemp, writeFile } from "node:fs/promises";
import os from "node:os";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { availableCores, cpuQuota, workerCount } from "../../../src/cluster/cpus.js";

describe("workers: auto respects a container's CPU quota", () => {
  const cgroup = async (files: Record<string, string>) => {
    const root = await mkdtemp(join(tmpdir(), "rg-cgroup-"));
    for (const [file, text] of Object.entries(files)) {
      await mkdir(join(root, file, ".."), { recursive: true });
      await writeFile(join(root, file), text);
    }
    return root;
  };

  it("reads cgroup v2 cpu.max: a quota of 1.5 CPUs is 2 workers at most, max is no quota", async () => {
    assert.equal(cpuQuota(await cgroup({ "cpu.max": "150000 100000\n" })), 1.5);
    assert.equal(cpuQuota(await cgroup({ "cpu.max": "max 100000\n" })), null);
    assert.equal(availableCores(await cgroup({ "cpu.max": "150000 100000\n" })), Math.min(os.availableParallelism(), 2));
    assert.equal(availableCores(await cgroup({ "cpu.max": "50000 100000\n" })), 1);
  });

  it("reads cgroup v1 cfs_quota_us / cfs_period_us; -1 is no quota", async () => {
    assert.equal(cpuQuota(await cgroup({ "cpu/cpu.cfs_quota_us": "300000\n", "cpu/cpu.cfs_period_us": "100000\n" })), 3);
    assert.equal(cpuQuota(await cgroup({ "cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n" })), null);
  });

  it("uses every core without a cgroup, and a number as given", async () => {
    const none = await cgroup({});
    assert.equal(availableCores(none), os.availableParallelism());
    assert.equal(workerCount("auto", none), os.availableParallelism());
    assert.equal(workerCount(3, none), 3);
  });
});
