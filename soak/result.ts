// What a soak run found, as data: the runner (run.ts) fills it in while traffic and faults run; the
// report (report.ts) turns it into docs/reliability.md and its SVG plots. Times are seconds since the
// start of the run.

export interface FaultWindow {
  /** e.g. "redis-killed", "replica-killed", "worker-sigkill", "gateway-sigkill", "rolling-sigterm",
   *  "aborted-uploads", "abandoned-downloads", "cert-rotate", "reload-users-limits", "reload-broken",
   *  "slowloris", "acme-renewal". */
  name: string;
  /** When the fault was injected. */
  start: number;
  /** When its effects are allowed to end (the fault cleared plus its settling time). */
  end: number;
  /** What was done, in a few words ("SIGKILL gateway 2 (pid 1234)"). */
  detail: string;
}

export interface OutcomeCount {
  /** Client and operation, e.g. "skopeo push", "podman pull", "loadgen small GET". */
  operation: string;
  ok: number;
  /** Failed inside a fault window that explains it. */
  failedInFaultWindow: number;
  /** Failed outside every fault window (each must be 0 for the run to pass). */
  unexplained: number;
}

export interface BlobCheck {
  /** Pushes that got a success answer. */
  pushed: number;
  /** Of those, pulled back with the same digest and re-verified against the registries' storage. */
  verified: number;
  lost: number;
  corrupt: number;
}

/** One sample of the fleet's resources and traffic, every few seconds. */
export interface Sample {
  t: number;
  /** Sum over gateway processes (primaries and workers). */
  rssMb: number;
  fds: number;
  backendConnections: number;
  redisConnections: number;
  /** Requests per second since the previous sample, all clients. */
  requestRate: number;
  /** p99 of small GETs since the previous sample, milliseconds (null when none completed). */
  p99Ms: number | null;
}

export interface InvariantResult {
  name: string;
  ok: boolean;
  /** The figures behind the verdict ("0 lost, 0 corrupt of 412 blobs"). */
  detail: string;
}

export interface SoakResult {
  startedAt: string;
  /** Planned length. */
  minutes: number;
  /** Measured length, seconds. */
  durationSeconds: number;
  /** `git rev-parse --short HEAD` and whether the tree was clean. */
  commit: string;
  /** The command that produced the run, e.g. "npm run soak -- --minutes 20". */
  command: string;
  /** Cores, memory, Node version. */
  machine: string;
  faults: FaultWindow[];
  outcomes: OutcomeCount[];
  blobs: BlobCheck;
  samples: Sample[];
  invariants: InvariantResult[];
}

export function passed(result: SoakResult): boolean {
  return result.invariants.every((invariant) => invariant.ok);
}
