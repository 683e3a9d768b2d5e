// Password logins: every password check of the gateway — Basic on an htpasswd site's data path,
// Basic or grant_type=password at a token site's /token — goes through here, and is throttled BEFORE any
// hashing:
//
//   1. charge one failure to the bucket of (site, user name as given, client address): GCRA, maxFailures
//      back to back, refilled at maxFailures per `per`. Charging first is atomic (one Lua script in Redis),
//      so a burst of concurrent guesses cannot overshoot the limit while their hashes run.
//   2. bucket empty → refused (429 + Retry-After) without hashing: a guess costs the attacker a round trip,
//      not us 100 ms of CPU, and a right password gets the same 429 (or the throttle would leak it).
//   3. check the password (on the hashing threads); right → the charge is refunded, so only failures count.
//
// The key includes the client address, so an attacker guessing from one address does not lock out the
// legitimate user elsewhere; and the user name as given, so guessing many names from one address is
// limited by the hashing pool's queue (503 beyond it), not by this.
//
// Concurrent checks of the same credentials from the same address (parallel jobs of one CI runner, the
// parallel requests of one push) share one charge and one check: otherwise a burst of more than
// maxFailures right logins, all charged before the first hash ends, would throttle itself.
import { createHash, createHmac, randomBytes } from "node:crypto";
import type { LoginsConfig } from "../config/schema.js";
import type { LimitRule, Limiter } from "../ratelimit/limiter.js";
import { HashPoolFullError } from "./hash-pool.js";
import type { HtpasswdUsers } from "./htpasswd.js";
import type { Admission } from "./types.js";

/** What the login throttle reports (the metrics module has exactly this method). */
export interface LoginEvents {
  loginThrottled(site: string): void;
}

export type PasswordCheck =
  /** `fingerprint`: the user's password fingerprint as it was when the check started (for tokens). */
  | { ok: true; fingerprint: string | undefined }
  | { ok: false; problem: "wrong" }
  /** Too many recent failures for this user from this address; the password was not checked. */
  | { ok: false; problem: "throttled"; retryAfterSeconds: number }
  /** Every hashing thread busy and the queue full; the password was not checked and nothing was counted. */
  | { ok: false; problem: "busy" };

/** User names longer than this are keyed by their hash: a counter key stays small whatever a client sends. */
const MAX_KEY_USER_LENGTH = 128;

/** One per configuration: the failure counters (memory or Redis) and the rule, shared by every site. */
export class LoginThrottle {
  readonly rule: LimitRule;

  constructor(
    private readonly limiter: Limiter,
    config: Pick<LoginsConfig, "maxFailures" | "per">,
    private readonly events: LoginEvents | null = null,
    /** Closed with the throttle (the Redis limiter's in-memory fallback). */
    private readonly alsoClose: readonly Limiter[] = [],
  ) {
    this.rule = { rate: config.maxFailures, periodMs: config.per, burst: config.maxFailures };
  }

  /** The password checks of one site against one htpasswd file. */
  forSite(site: string, users: HtpasswdUsers): SiteLogins {
    return new SiteLogins(this, site, users);
  }

  /** Charges one failure; refused when the bucket is empty. */
  async charge(site: string, user: string, clientIp: string): Promise<{ allowed: true } | { allowed: false; retryAfterSeconds: number }> {
    const decision = await this.limiter.allow(counterKey(site, user, clientIp), this.rule, 1);
    return decision.allowed ? { allowed: true } : { allowed: false, retryAfterSeconds: decision.retryAfterSeconds };
  }

  /** One login answered 429 (counted per request, also when it shared another's check). */
  throttled(site: string): void {
    this.events?.loginThrottled(site);
  }

  /** Gives a charge back (the password was right, or it could not be checked). Never fails. */
  refund(site: string, user: string, clientIp: string): void {
    // Not awaited: the answer does not depend on it, and commands on one connection stay in order.
    this.limiter.allow(counterKey(site, user, clientIp), this.rule, -1).catch(() => {});
  }

  async close(): Promise<void> {
    await Promise.all([this.limiter.close(), ...this.alsoClose.map((limiter) => limiter.close())]);
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

  /** Throttle, then verify. Throws only if the check itself failed (a limiter or hashing thread error). */
  check(user: string, password: string, clientIp: string): Promise<PasswordCheck> {
    const key = createHmac("sha256", this.secret).update(clientIp).update("\0").update(user).update("\0").update(password).digest("base64");
    let check = this.inFlight.get(key);
    if (!check) {
      check = this.checkOnce(user, password, clientIp).finally(() => this.inFlight.delete(key));
      this.inFlight.set(key, check);
    }
    return check.then((result) => {
      if (!result.ok && result.problem === "throttled") this.throttle.throttled(this.site);
      return result;
    });
  }

  private async checkOnce(user: string, password: string, clientIp: string): Promise<PasswordCheck> {
    const charged = await this.throttle.charge(this.site, user, clientIp);
    if (!charged.allowed) return { ok: false, problem: "throttled", retryAfterSeconds: charged.retryAfterSeconds };
    // Before the check: a password changed while it runs leaves the token with the old, dead fingerprint.
    const fingerprint = this.users.fingerprint(user);
    let matches: boolean;
    try {
      matches = await this.users.verify(user, password);
    } catch (err) {
      this.throttle.refund(this.site, user, clientIp);
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

const TOO_MANY_FAILURES = "too many failed logins for this user from this address; try again later";
const TOO_MANY_CHECKS = "too many logins are being checked right now; try again shortly";

/** The refusal for a password check that did not get as far as the password, or null when it did. */
export function refusalBeforeCheck(check: PasswordCheck): Extract<Admission, { ok: false }> | null {
  if (check.ok || check.problem === "wrong") return null;
  if (check.problem === "throttled") {
    return {
      ok: false,
      error: "tooManyRequests",
      reason: "throttled",
      message: TOO_MANY_FAILURES,
      headers: { "Retry-After": String(check.retryAfterSeconds) },
    };
  }
  return { ok: false, error: "unavailable", reason: "overloaded", message: TOO_MANY_CHECKS, headers: { "Retry-After": "1" } };
}
