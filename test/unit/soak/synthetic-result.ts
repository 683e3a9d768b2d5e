// A made-up soak result with the shapes a real run produces: a 20-minute run, faults close together,
// gaps in p99, names that need escaping.
import type { SoakResult, Sample } from "../../../soak/result.js";

export function syntheticSamples(seconds: number, every = 5): Sample[] {
  const samples: Sample[] = [];
  for (let t = 0; t <= seconds; t += every) {
    const wave = Math.sin(t / 40);
    samples.push({
      t,
      rssMb: 310 + t / 30 + 12 * wave,
      fds: 140 + Math.round(20 * wave),
      backendConnections: 24 + Math.round(6 * wave),
      redisConnections: t >= 120 && t < 150 ? 0 : 9,
      requestRate: 180 + 40 * Math.cos(t / 25),
      // Nothing completes while Redis is down in this made-up run.
      p99Ms: t >= 120 && t < 150 ? null : 35 + 10 * Math.abs(wave),
    });
  }
  return samples;
}

export function syntheticResult(overrides: Partial<SoakResult> = {}): SoakResult {
  return {
    startedAt: "2026-12-06T16:00:00.000Z",
    minutes: 20,
    durationSeconds: 1203,
    commit: "abc1234 (clean)",
    command: "npm run soak -- --minutes 20",
    machine: "2 cores, 7.7 GiB, Node v22.12.0",
    faults: [
      { name: "redis-killed", start: 120, end: 150, detail: "SIGKILL redis (pid 4242), restarted after 20 s" },
      { name: "replica-killed", start: 300, end: 330, detail: "SIGKILL replica b" },
      { name: "gateway-sigkill", start: 335, end: 345, detail: "SIGKILL gateway 2 (pid 1234)" },
      { name: "cert-rotate", start: 600, end: 605, detail: "cert rotate <all> | fleet-wide & quick" },
      { name: "slowloris", start: 900, end: 960, detail: "200 slow clients" },
    ],
    outcomes: [
      { operation: "skopeo push", ok: 120, failedInFaultWindow: 3, unexplained: 0 },
      { operation: "podman pull", ok: 340, failedInFaultWindow: 5, unexplained: 0 },
      { operation: "loadgen small GET", ok: 90_000, failedInFaultWindow: 41, unexplained: 0 },
    ],
    blobs: { pushed: 412, verified: 412, lost: 0, corrupt: 0 },
    samples: syntheticSamples(1200),
    invariants: [
      { name: "no blob lost or corrupt", ok: true, detail: "0 lost, 0 corrupt of 412 blobs" },
      { name: "no unexplained failure", ok: true, detail: "0 of 90 509 operations" },
      { name: "RSS flat after warm-up", ok: true, detail: "+38 MB over 18 min (limit 64 MB)" },
    ],
    ...overrides,
  };
}
