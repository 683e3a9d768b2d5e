// How many workers `workers: auto` starts: the cores this process may use, bounded by a container's CPU
// quota (cgroup v2 cpu.max, or v1 cfs_quota_us/cfs_period_us). A container limited to 1.5 CPUs on a
// 16-core host gets 2 workers, not 16.
import { readFileSync } from "node:fs";
import os from "node:os";

export function availableCores(cgroupRoot = "/sys/fs/cgroup"): number {
  const cores = os.availableParallelism();
  const quota = cpuQuota(cgroupRoot);
  return Math.max(1, quota === null ? cores : Math.min(cores, Math.ceil(quota)));
}

/** CPUs the cgroup may use (fractional), or null when unlimited or unknown. */
export function cpuQuota(cgroupRoot: string): number | null {
  const v2 = readText(`${cgroupRoot}/cpu.max`);
  if (v2 !== null) {
    const [quota, period] = v2.trim().split(/\s+/);
    return quota === "max" ? null : ratio(quota, period);
  }
  return ratio(readText(`${cgroupRoot}/cpu/cpu.cfs_quota_us`)?.trim(), readText(`${cgroupRoot}/cpu/cpu.cfs_period_us`)?.trim());
}

function ratio(quota: string | undefined, period: string | undefined): number | null {
  const q = Number(quota);
  const p = Number(period);
  return Number.isFinite(q) && Number.isFinite(p) && q > 0 && p > 0 ? q / p : null;
}

function readText(file: string): string | null {
  try {
    return readFileSync(file, "utf8");
  } catch {
    return null;
  }
}

/** The number of worker processes `workers` (auto or N) means here. */
export function workerCount(setting: "auto" | number, cgroupRoot?: string): number {
  return setting === "auto" ? availableCores(cgroupRoot) : setting;
}
