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
}

class Member implements PoolMember {
  readonly origin: string;
  healthy = true;
  outstanding = 0;
  lastError: string | null = null;
  /** Consecutive check results in the direction that would change `healthy`. */
  failures = 0;
  successes = 0;
  /** When the member was last ejected passively: a probe sent before that must not bring it back. */
  ejectedAt = -Infinity;
  probe: http.ClientRequest | undefined;

  constructor(
    readonly url: URL,
    readonly probeAgent: http.Agent,
  ) {
    this.origin = url.origin;
  }
}

export class BackendPool {
  readonly members: readonly PoolMember[];
  private readonly all: readonly Member[];
  private readonly byOrigin = new Map<string, Member>();
  /** Where the next tie-break starts: one past the last member picked. */
  private cursor = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    readonly name: string,
    urls: readonly URL[],
    private readonly health: HealthCheckOptions,
    private readonly deps: PoolDeps,
  ) {
    if (urls.length === 0) throw new Error(`backend pool ${name}: no members`);
    this.all = urls.map((url) => new Member(url, probeAgentFor(url, deps.agentFor(url))));
    for (const member of this.all) {
      if (this.byOrigin.has(member.origin)) throw new Error(`backend pool ${name}: ${member.origin} is listed twice`);
      this.byOrigin.set(member.origin, member);
    }
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
    const own = this.own(member);
    own.outstanding++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      own.outstanding--;
    };
  }

  /**
   * Passive ejection: a connection to the member failed (refused/reset before any response). It is out at
   * once, without waiting for unhealthyThreshold checks: the next request would most likely fail the same
   * way. The active check brings it back after healthyThreshold successes.
   */
  reportConnectionFailure(member: PoolMember, reason: string): void {
    const own = this.own(member);
    own.ejectedAt = performance.now();
    own.successes = 0;
    own.lastError = reason;
    this.setHealthy(own, false, reason);
  }

  /** Starts active checks: every intervalMs, the first round now. Timers are unref'd. */
  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.checkAll(), this.health.intervalMs).unref();
    this.checkAll();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    for (const member of this.all) {
      member.probe?.destroy(new Error("health checks stopped"));
      member.probe = undefined;
    }
  }

  /** For /readyz and metrics. */
  status(): { backend: string; healthy: boolean; outstanding: number; lastError: string | null }[] {
    return this.all.map((m) => ({ backend: m.origin, healthy: m.healthy, outstanding: m.outstanding, lastError: m.lastError }));
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

  private checkAll(): void {
    for (const member of this.all) {
      // A probe still waiting (timeoutMs > intervalMs) is not doubled: it settles on its own timeout.
      if (!member.probe) this.check(member);
    }
  }

  private check(member: Member): void {
    const sentAt = performance.now();
    const probe = { timeoutMs: this.health.timeoutMs, agent: member.probeAgent, headers: { "user-agent": HEALTH_CHECK_USER_AGENT } };
    const request = probeRegistry(member.url, probe, (outcome) => {
      if (member.probe !== request) return; // stopped meanwhile
      member.probe = undefined;
      if (sentAt < member.ejectedAt) return; // sent before a passive ejection: says nothing about now
      // Anything below 500 is a registry answering: 401 (auth required) and even 404 mean it is up.
      if (!outcome.reachable) this.record(member, outcome.error);
      else this.record(member, outcome.status < 500 ? null : `GET /v2/ answered ${outcome.status}`);
    });
    member.probe = request;
  }

  private record(member: Member, error: string | null): void {
    if (error === null) {
      member.failures = 0;
      member.successes++;
      if (!member.healthy && member.successes >= this.health.healthyThreshold) this.setHealthy(member, true, "health check passed");
    } else {
      member.successes = 0;
      member.failures++;
      member.lastError = error;
      if (member.healthy && member.failures >= this.health.unhealthyThreshold) this.setHealthy(member, false, error);
    }
  }

  private setHealthy(member: Member, healthy: boolean, reason: string): void {
    if (member.healthy === healthy) return;
    member.healthy = healthy;
    member.failures = 0;
    member.successes = 0;
    const fields = { pool: this.name, backend: member.origin, reason };
    if (healthy) {
      member.lastError = null;
      this.deps.logger.info(fields, "backend replica is healthy again");
    } else {
      this.deps.logger.warn(fields, "backend replica is unhealthy: no new requests until it passes health checks");
    }
    this.deps.onHealthChange?.(this.name, member.origin, healthy);
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
