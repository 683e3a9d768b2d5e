// Password logins: every password check of the gateway — Basic on an htpasswd site's data path,
// Basic or grant_type=password at a token site's /token — goes through here, and is throttled BEFORE any
// hashing:
//
//   1. charge one failure to three buckets at once: (site, user name as given, client address), maxFailures
//      per `per`; the client address, whatever the user name and site, maxFailuresPerAddress per `per`; and
//      the address's network (networkPrefix: /24, /64), maxFailuresPerNetwork per `per`. GCRA each; charging
//      first is atomic (one Lua script in Redis), so a burst of concurrent guesses cannot overshoot a limit
//      while their hashes run.
//   2. any bucket empty → refused (429 + Retry-After) without hashing, and the other charges given back: a
//      guess costs the attacker a round trip, not us 100 ms of CPU, and a right password gets the same 429
//      (or the throttle would leak it).
//   3. check the password (on the hashing threads, in the client's share of the queue); right → every
//      charge is refunded, so only failures count.
//
// The per-user key includes the client address, so an attacker guessing from one address does not lock out
// the legitimate user elsewhere. The address and network budgets stop guessing a new user name every time
// (which no per-user count sees) from one machine or one network after a few dozen hashes; the hashing
// queue is shared fairly per client meanwhile, so those hashes delay nobody else's login much.
//
// Concurrent checks of the same credentials from the same address (parallel jobs of one CI runner, the
// parallel requests of one push) share one charge and one check: otherwise a burst of more than
// maxFailures right logins, all charged before the first hash ends, would throttle itself.
import { createHash, createHmac, randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import type { LoginsConfig } from "../config/schema.js";
import type { LimitRule, Limiter } from "../ratelimit/limiter.js";
import { CLIENT_PREFIXES, networkOf } from "./client-network.js";
import { HashPoolFullError } from "./hash-pool.js";
import type { HtpasswdUsers } from "./htpasswd.js";
import type { Admission } from "./types.js";

/** What the login checks report (the metrics module has exactly these methods). */
export interface LoginEvents {
  loginThrottled(site: string): void;
  /** A bcrypt check ran on a hashing thread (a throttled or cached login runs none). */
  passwordHashed(): void;
}

export type PasswordCheck =
  /** `fingerprint`: the user's password fingerprint as it was when the check started (for tokens). */
  | { ok: true; fingerprint: string | undefined }
  | { ok: false; problem: "wrong" }
  /** Too many recent failures for this user from this address, or from this address or network for any user; not checked. */
  | { ok: false; problem: "throttled"; scope: ThrottleScope; retryAfterSeconds: number }
  /** Every hashing thread busy and the queue full; the password was not checked and nothing was counted. */
  | { ok: false; problem: "busy" };

/** Which failure budget refused a login: the user's from this address, the address's, or its network's. */
export type ThrottleScope = "user" | "address" | "network";

/** User names longer than this are keyed by their hash: a counter key stays small whatever a client sends. */
const MAX_KEY_USER_LENGTH = 128;
/**
 * How long a refusal by the address's or network's failure budget is held before it is sent: each
 * connection of a flood then sends at most one guess per pause (with limits.maxConnectionsPerIp 256, some
 * 50 a second per address). Long enough to matter, short enough for a client that waits for its answer.
 */
export const REFUSAL_PAUSE_MS = 5000;

/** Without maxFailuresPerAddress (or the network pair) there is no such budget: the schema always gives one. */
type ThrottleConfig = Pick<LoginsConfig, "maxFailures" | "per"> &
  Partial<Pick<LoginsConfig, "maxFailuresPerAddress" | "maxFailuresPerNetwork" | "networkPrefix">> & {
    /** REFUSAL_PAUSE_MS unless given (tests). */
    refusalPauseMs?: number;
  };

/**
 * Where failures are counted: one limiter for every budget (Redis: the keys never meet), or one per budget,
 * asked for with its rule, so that a budget whose rule a reload changes starts afresh while the others keep
 * their counts.
 */
export type LoginCounters = Limiter | ((scope: ThrottleScope, rule: LimitRule) => Limiter);

/**
 * One per configuration: the rules, shared by every site, over counters it does not own (memory or Redis,
 * kept by the process across reloads, closed by whoever made them).
 */
export class LoginThrottle {
  /** Failures per user and address. */
  readonly rule: LimitRule;
  readonly addressRule: LimitRule | null;
  readonly networkRule: LimitRule | null;
  readonly refusalPauseMs: number;
  private readonly limiters: Readonly<Partial<Record<ThrottleScope, Limiter>>>;

  constructor(
    counters: LoginCounters,
    private readonly config: ThrottleConfig,
    private readonly events: LoginEvents | null = null,
  ) {
    const rule = (failures: number): LimitRule => ({ rate: failures, periodMs: config.per, burst: failures });
    this.rule = rule(config.maxFailures);
    this.refusalPauseMs = config.refusalPauseMs ?? REFUSAL_PAUSE_MS;
    this.addressRule = config.maxFailuresPerAddress ? rule(config.maxFailuresPerAddress) : null;
    this.networkRule = config.maxFailuresPerNetwork && config.networkPrefix ? rule(config.maxFailuresPerNetwork) : null;
    const limiterFor = (scope: ThrottleScope, rule: LimitRule | null) => (rule === null ? undefined : typeof counters === "function" ? counters(scope, rule) : counters);
    this.limiters = { user: limiterFor("user", this.rule), address: limiterFor("address", this.addressRule), network: limiterFor("network", this.networkRule) };
  }

  /** The password checks of one site against one htpasswd file. */
  forSite(site: string, users: HtpasswdUsers): SiteLogins {
    return new SiteLogins(this, site, users);
  }

  /**
   * Charges one failure to the user's, the address's and the network's budget; refused (and nothing kept)
   * when any is used up. Throws when the counters cannot be reached.
   */
  async charge(
    site: string,
    user: string,
    clientIp: string,
  ): Promise<{ allowed: true; suspect: boolean } | { allowed: false; scope: ThrottleScope; retryAfterSeconds: number }> {
    const buckets = this.buckets(site, user, clientIp);
    const decisions = await Promise.allSettled(buckets.map(({ scope, key, rule }) => this.limiters[scope]!.allow(key, rule, 1)));
    let refused: { scope: ThrottleScope; retryAfterSeconds: number } | undefined;
    let failure: unknown;
    decisions.forEach((decision, i) => {
      if (decision.status === "rejected") failure ??= decision.reason;
      else if (!decision.value.allowed && (!refused || decision.value.retryAfterSeconds > refused.retryAfterSeconds)) {
        refused = { scope: buckets[i]!.scope, retryAfterSeconds: decision.value.retryAfterSeconds };
      }
    });
    if (!refused && failure === undefined) {
      // More than half of the address's or network's budget used within the period: most likely guessing.
      const suspect = decisions.some((decision, i) => buckets[i]!.scope !== "user" && decision.status === "fulfilled" && decision.value.remaining < buckets[i]!.rule.burst / 2);
      return { allowed: true, suspect };
    }
    // All or nothing: a charge kept in one bucket for a login refused by another would be a failure counted
    // for a password nobody checked.
    decisions.forEach((decision, i) => {
      if (decision.status === "fulfilled" && decision.value.allowed) this.give(buckets[i]!);
    });
    if (failure !== undefined) throw failure;
    return { allowed: false, ...refused! };
  }

  /** One login answered 429 (counted per request, also when it shared another's check). */
  throttled(site: string): void {
    this.events?.loginThrottled(site);
  }

  /**
   * Gives the charges back (the password was right, or it could not be checked). `onlyUser`: the address and
   * network keep theirs (a check refused because this client already had its share of the queue). Never fails.
   */
  refund(site: string, user: string, clientIp: string, onlyUser = false): void {
    for (const bucket of this.buckets(site, user, clientIp)) if (!onlyUser || bucket.scope === "user") this.give(bucket);
  }

  private give({ scope, key, rule }: { scope: ThrottleScope; key: string; rule: LimitRule }): void {
    // Not awaited: the answer does not depend on it, and commands on one connection stay in order.
    this.limiters[scope]!.allow(key, rule, -1).catch(() => {});
  }

  private buckets(site: string, user: string, clientIp: string): { scope: ThrottleScope; key: string; rule: LimitRule }[] {
    const buckets: { scope: ThrottleScope; key: string; rule: LimitRule }[] = [{ scope: "user", key: counterKey(site, user, clientIp), rule: this.rule }];
    if (this.addressRule) buckets.push({ scope: "address", key: addressKey(clientIp), rule: this.addressRule });
    if (this.networkRule) buckets.push({ scope: "network", key: networkKey(clientIp, this.config.networkPrefix!), rule: this.networkRule });
    return buckets;
  }
}

export class SiteLogins {
  private readonly inFlight = new Map<string, Promise<PasswordCheck>>();
  /** Keys of in-flight checks are HMACs: no password sits in memory longer than its request. */
  private readonly secret = randomBytes(32);

  constructor(
    private readonly throttle: LoginThrottle,
    readonly site: string,
    readonly users: HtpasswdUsers,
  ) {}

  /**
   * Throttle, then verify. Throws only if the check itself failed (a limiter or hashing thread error).
   * A refusal by the address's or network's budget is answered after a pause (REFUSAL_PAUSE_MS): a flood
   * answered at once comes straight back, and a client that loops on refusals as fast as they are answered
   * keeps the event loop busy however cheap each refusal is. The per-user refusal is not held: it is what a
   * person mistyping meets, and a loop on one user name from one address is not what floods the gateway.
   */
  check(user: string, password: string, clientIp: string): Promise<PasswordCheck> {
    const key = createHmac("sha256", this.secret).update(clientIp).update("\0").update(user).update("\0").update(password).digest("base64");
    let check = this.inFlight.get(key);
    if (!check) {
      check = this.checkOnce(user, password, clientIp).finally(() => this.inFlight.delete(key));
      this.inFlight.set(key, check);
    }
    return check.then(async (result) => {
      if (result.ok || result.problem !== "throttled") return result;
      this.throttle.throttled(this.site);
      if (result.scope !== "user") await sleep(this.throttle.refusalPauseMs);
      return result;
    });
  }

  private async checkOnce(user: string, password: string, clientIp: string): Promise<PasswordCheck> {
    const charged = await this.throttle.charge(this.site, user, clientIp);
    if (!charged.allowed) return { ok: false, problem: "throttled", scope: charged.scope, retryAfterSeconds: charged.retryAfterSeconds };
    // Before the check: a password changed while it runs leaves the token with the old, dead fingerprint.
    const fingerprint = this.users.fingerprint(user);
    let matches: boolean;
    try {
      matches = await this.users.verify(user, password, { key: networkOf(clientIp, CLIENT_PREFIXES), suspect: charged.suspect });
    } catch (err) {
      // No room in the queue: not the user's failure, but sending more checks at once than a client's share
      // of the queue is what a flood does (parallel requests with the same credentials share one check),
      // so the address and network keep the charge.
      this.throttle.refund(this.site, user, clientIp, err instanceof HashPoolFullError);
      if (err instanceof HashPoolFullError) return { ok: false, problem: "busy" };
      throw err;
    }
    if (!matches) return { ok: false, problem: "wrong" };
    this.throttle.refund(this.site, user, clientIp);
    return { ok: true, fingerprint };
  }
}

/**
 * `site:address|user`. Site names have no `:` and addresses no `|`, so the parts cannot run into each
 * other whatever the user name holds.
 */
export function counterKey(site: string, user: string, clientIp: string): string {
  const name = user.length > MAX_KEY_USER_LENGTH ? `#${createHash("sha256").update(user).digest("base64url")}` : user;
  return `${site}:${clientIp}|${name}`;
}

/**
 * `*address:a.b.c.d/32` (or an IPv6 /128): one budget per client address across every site and user name.
 * `*` is in no site name, so these never meet a per-user key.
 */
export function addressKey(clientIp: string): string {
  return `*address:${networkOf(clientIp, { ipv4: 32, ipv6: 128 })}`;
}

/** `*network:a.b.c.0/24`: one budget per network of the address (logins.networkPrefix). */
export function networkKey(clientIp: string, prefixes: LoginsConfig["networkPrefix"]): string {
  return `*network:${networkOf(clientIp, prefixes)}`;
}

const TOO_MANY_FAILURES: Record<ThrottleScope, string> = {
  user: "too many failed logins for this user from this address; try again later",
  address: "too many failed logins from this address; try again later",
  network: "too many failed logins from this network; try again later",
};
const TOO_MANY_CHECKS = "too many logins are being checked right now; try again shortly";

/** The refusal for a password check that did not get as far as the password, or null when it did. */
export function refusalBeforeCheck(check: PasswordCheck): Extract<Admission, { ok: false }> | null {
  if (check.ok || check.problem === "wrong") return null;
  if (check.problem === "throttled") {
    return {
      ok: false,
      error: "tooManyRequests",
      reason: "throttled",
      message: TOO_MANY_FAILURES[check.scope],
      headers: { "Retry-After": String(check.retryAfterSeconds) },
    };
  }
  return { ok: false, error: "unavailable", reason: "overloaded", message: TOO_MANY_CHECKS, headers: { "Retry-After": "1" } };
}
