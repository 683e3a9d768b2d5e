// Replicas of one registry behind one name: which replica takes the next request, and which are up.
//
// - Choice: least outstanding requests among healthy replicas, ties round-robin (a fresh pool, or one that
//   is idle between requests, still spreads the load instead of sending everything to the first replica).
// - Health: active checks (GET /v2/ on every replica, thresholds in both directions) plus passive ejection
//   (a refused connection takes the replica out at once; only the active check brings it back; a reset is
//   not enough: a keep-alive socket the replica closed while idle resets too).
// - Panic mode, like Envoy: when no replica is healthy, pick among all of them anyway. Health may be stale
//   or wrong (a probe path blocked, a flapping network); answering 503 for the whole site is never better
//   than trying.
import http from "node:http";
import https from "node:https";
import type { Logger } from "../observe/log.js";
import type { Lease, LeaseSet } from "../process/resources.js";
import { probeRegistry } from "./probe.js";

/** What a backend's access log shows for the checks. */
export const HEALTH_CHECK_USER_AGENT = "registry-gateway-health-check";

export interface HealthCheckOptions {
  intervalMs: number;
  timeoutMs: number;
  /** Consecutive failed checks that take a healthy member out. */
  unhealthyThreshold: number;
  /** Consecutive successful checks that bring an unhealthy member back. */
  healthyThreshold: number;
}

export interface PoolMember {
  readonly url: URL;
  readonly origin: string;
  readonly healthy: boolean;
  readonly outstanding: number;
  readonly lastError: string | null;
}

export interface PoolDeps {
  /** The forwarding agent; probes take its TLS options (ca, client certificate), never its sockets. */
  agentFor(url: URL): http.Agent;
  logger: Logger;
  onHealthChange?(pool: string, member: string, healthy: boolean): void;
  /**
   * Where replicas' state and health checks are kept: the process's resources (process/resources.ts), so a
   * reload neither makes a dead replica healthy nor forgets the requests in flight, and one timer checks each
   * replica however many generations use it. Without it, the pool keeps its own.
   */
  resources?: LeaseSet;
}

/** Told when a replica's health changes: the pool whose check or request saw it logs it, with its name. */
type HealthReport = (replica: ReplicaState, healthy: boolean, reason: string) => void;

/** One replica's health and load, per origin and health-check settings, shared by every pool naming it. */
export class ReplicaState {
  readonly origin: string;
  healthy = true;
  outstanding = 0;
  lastError: string | null = null;
  /** Consecutive check results in the direction that would change `healthy`. */
  failures = 0;
  successes = 0;
  /** When the replica was last ejected passively: a probe sent before that must not bring it back. */
  ejectedAt = -Infinity;

  constructor(
    readonly url: URL,
    readonly probeAgent: http.Agent,
  ) {
    this.origin = url.origin;
  }

  record(error: string | null, health: HealthCheckOptions, report: HealthReport): void {
    if (error === null) {
      this.failures = 0;
      this.successes++;
      if (!this.healthy && this.successes >= health.healthyThreshold) this.setHealthy(true, "health check passed", report);
    } else {
      this.successes = 0;
      this.failures++;
      this.lastError = error;
      if (this.healthy && this.failures >= health.unhealthyThreshold) this.setHealthy(false, error, report);
    }
  }

  setHealthy(healthy: boolean, reason: string, report: HealthReport): void {
    if (this.healthy === healthy) return;
    this.healthy = healthy;
    this.failures = 0;
    this.successes = 0;
    if (healthy) this.lastError = null;
    report(this, healthy, reason);
  }

  /** Nothing held open: its probes are the checker's, its agent keeps no sockets. */
  close(): void {}
}

/** A replica's active checks: GET /v2/ every intervalMs, the first round at once. Its timer is unref'd. */
class HealthChecker {
  private readonly timer: NodeJS.Timeout;
  private probe: http.ClientRequest | undefined;

  constructor(
    private readonly replica: ReplicaState,
    private readonly health: HealthCheckOptions,
    private readonly report: HealthReport,
  ) {
    this.timer = setInterval(() => this.check(), health.intervalMs).unref();
    this.check();
  }

  close(): void {
    clearInterval(this.timer);
    this.probe?.destroy(new Error("health checks stopped"));
    this.probe = undefined;
  }

  private check(): void {
    // A probe still waiting (timeoutMs > intervalMs) is not doubled: it settles on its own timeout.
    if (this.probe) return;
    const replica = this.replica;
    const sentAt = performance.now();
    const probe = { timeoutMs: this.health.timeoutMs, agent: replica.probeAgent, headers: { "user-agent": HEALTH_CHECK_USER_AGENT } };
    const request = probeRegistry(replica.url, probe, (outcome) => {
      if (this.probe !== request) return; // stopped meanwhile
      this.probe = undefined;
      if (sentAt < replica.ejectedAt) return; // sent before a passive ejection: says nothing about now
      // Anything below 500 is a registry answering: 401 (auth required) and even 404 mean it is up.
      const error = !outcome.reachable ? outcome.error : outcome.status < 500 ? null : `GET /v2/ answered ${outcome.status}`;
      replica.record(error, this.health, this.report);
    });
    this.probe = request;
  }
}

/** A pool's view of a replica; what it reads is the shared state's. */
class Member implements PoolMember {
  constructor(readonly state: ReplicaState) {}
  get url(): URL {
    return this.state.url;
  }
  get origin(): string {
    return this.state.origin;
  }
  get healthy(): boolean {
    return this.state.healthy;
  }
  get outstanding(): number {
    return this.state.outstanding;
  }
  get lastError(): string | null {
    return this.state.lastError;
  }
}

export class BackendPool {
  readonly members: readonly PoolMember[];
  private readonly all: readonly Member[];
  private readonly byOrigin = new Map<string, Member>();
  /** Where the next tie-break starts: one past the last member picked. */
  private cursor = 0;
  private checks: Lease<HealthChecker>[] | undefined;
  private readonly report: HealthReport;

  constructor(
    readonly name: string,
    urls: readonly URL[],
    private readonly health: HealthCheckOptions,
    private readonly deps: PoolDeps,
  ) {
    if (urls.length === 0) throw new Error(`backend pool ${name}: no members`);
    this.report = (replica, healthy, reason) => {
      const fields = { pool: name, backend: replica.origin, reason };
      if (healthy) deps.logger.info(fields, "backend replica is healthy again");
      else deps.logger.warn(fields, "backend replica is unhealthy: no new requests until it passes health checks");
      deps.onHealthChange?.(name, replica.origin, healthy);
    };
    const origins = new Set<string>();
    for (const url of urls) {
      if (origins.has(url.origin)) throw new Error(`backend pool ${name}: ${url.origin} is listed twice`);
      origins.add(url.origin);
    }
    this.all = urls.map((url) => new Member(this.held("backend-replica", url, () => new ReplicaState(url, probeAgentFor(url, deps.agentFor(url)))).value));
    for (const member of this.all) this.byOrigin.set(member.origin, member);
    this.members = this.all;
  }

  /**
   * Least outstanding healthy member not in `exclude` (origins); ties broken round-robin. When no
   * non-excluded member is healthy, the least outstanding of the non-excluded ones (panic mode). null only
   * when every member is excluded.
   */
  pick(exclude?: ReadonlySet<string>): PoolMember | null {
    const candidates = (healthyOnly: boolean) => (m: Member) => !exclude?.has(m.origin) && (!healthyOnly || m.healthy);
    const index = this.leastOutstanding(candidates(true)) ?? this.leastOutstanding(candidates(false));
    if (index === undefined) return null;
    this.cursor = (index + 1) % this.all.length;
    return this.all[index]!;
  }

  member(origin: string): PoolMember | undefined {
    return this.byOrigin.get(origin);
  }

  /** Counts one request in flight on the member until the returned function is called (idempotent). */
  acquire(member: PoolMember): () => void {
    const state = this.own(member).state;
    state.outstanding++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      state.outstanding--;
    };
  }

  /**
   * Passive ejection: a connection to the member failed (refused/reset before any response). It is out at
   * once, without waiting for unhealthyThreshold checks: the next request would most likely fail the same
   * way. The active check brings it back after healthyThreshold successes.
   */
  reportConnectionFailure(member: PoolMember, reason: string): void {
    const state = this.own(member).state;
    state.ejectedAt = performance.now();
    state.successes = 0;
    state.lastError = reason;
    state.setHealthy(false, reason, this.report);
  }

  /** Starts active checks (one timer per replica in the process, shared with other pools checking it). */
  start(): void {
    if (this.checks) return;
    this.checks = this.all.map(({ state }) => this.held("health-checks", state.url, () => new HealthChecker(state, this.health, this.report)));
  }

  stop(): void {
    for (const lease of this.checks ?? []) void lease.release();
    this.checks = undefined;
  }

  /** For /readyz and metrics. */
  status(): { backend: string; healthy: boolean; outstanding: number; lastError: string | null }[] {
    return this.all.map((m) => ({ backend: m.origin, healthy: m.healthy, outstanding: m.outstanding, lastError: m.lastError }));
  }

  /** From the process's resources when there are some, else the pool's own. */
  private held<T extends ReplicaState | HealthChecker>(kind: string, url: URL, create: () => T): Lease<T> {
    if (this.deps.resources) return this.deps.resources.acquire(kind, { origin: url.origin, health: this.health }, create);
    const value = create();
    return { value, release: async () => value.close() };
  }

  /** Index of the least outstanding member passing `filter`, scanning from the cursor so ties rotate. */
  private leastOutstanding(filter: (m: Member) => boolean): number | undefined {
    let best: number | undefined;
    for (let step = 0; step < this.all.length; step++) {
      const index = (this.cursor + step) % this.all.length;
      const member = this.all[index]!;
      if (filter(member) && (best === undefined || member.outstanding < this.all[best]!.outstanding)) best = index;
    }
    return best;
  }

  private own(member: PoolMember): Member {
    const own = this.byOrigin.get(member.origin);
    if (!own) throw new Error(`backend pool ${this.name}: ${member.origin} is not a member`);
    return own;
  }
}

/**
 * Its own sockets, not kept alive: a probe never queues behind forwarded requests for a pooled socket, and
 * every check opens a fresh connection (which is what a refused connection needs to be noticed). TLS
 * options come from the forwarding agent so a probe trusts what forwarding trusts.
 */
function probeAgentFor(url: URL, forwarding: http.Agent): http.Agent {
  if (url.protocol !== "https:") return new http.Agent({ keepAlive: false });
  const inherited = forwarding instanceof https.Agent ? forwarding.options : {};
  return new https.Agent({ ...inherited, keepAlive: false, maxSockets: Infinity });
}
