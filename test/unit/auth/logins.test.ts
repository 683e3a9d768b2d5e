// Failed logins are throttled per (site, user as given, client address) BEFORE any hashing; a
// right password is refunded, so only failures count; a full hashing queue is a 503 that counts nothing.
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { setImmediate } from "node:timers/promises";
import { AccessPolicy } from "../../../src/auth/access.js";
import { HashPool } from "../../../src/auth/hash-pool.js";
import { HtpasswdUsers } from "../../../src/auth/htpasswd.js";
import { addressKey, counterKey, LoginThrottle, networkKey, type PasswordCheck, type SiteLogins, type ThrottleScope } from "../../../src/auth/logins.js";
import { HtpasswdSiteAuth } from "../../../src/auth/site-auth.js";
import { createLogger } from "../../../src/observe/log.js";
import { MemoryLimiter } from "../../../src/ratelimit/limiter.js";
import type { RegistryRoute } from "../../../src/registry/routes.js";
import { htpasswdLine } from "../../helpers/htpasswd.js";

/** A real pool that counts the checks it was asked for: a throttled login must not reach it. */
class CountingPool extends HashPool {
  calls = 0;
  override compareAll(checks: readonly { password: string; hash: string }[]): Promise<boolean[]> {
    this.calls += checks.length;
    return super.compareAll(checks);
  }
}

const logger = createLogger({ level: "silent", format: "json" });
const PULL: RegistryRoute = { kind: "manifest", repository: "team/app", reference: "v1", accesses: [{ type: "repository", name: "team/app", action: "pull" }] };
const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;


describe("failed-login throttle", () => {
  let dir: string;
  /** admin at bcrypt cost 4: one hash per check. */
  let file: string;
  /** admin at cost 4 and slow at cost 10: an admin check also runs the cost-10 dummy (flat timing). */
  let mixed: string;
  const closers: Array<{ close(): unknown }> = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "rg-logins-"));
    file = join(dir, "htpasswd");
    mixed = join(dir, "mixed.htpasswd");
    const admin = await htpasswdLine("admin", "Admin123", 4);
    await writeFile(file, `${admin}\n`);
    await writeFile(mixed, `${admin}\n${await htpasswdLine("slow", "Slow1234", 10)}\n`);
  });

  after(async () => {
    for (const closer of closers) await closer.close();
    await rm(dir, { recursive: true, force: true });
  });

  type Budgets = { maxFailuresPerAddress: number; maxFailuresPerNetwork: number; networkPrefix: { ipv4: number; ipv6: number }; refusalPauseMs?: number };

  /** A site's logins over a real file, pool and in-memory limiter; maxFailures per minute; no address budget unless given. */
  async function setup(options: { maxFailures?: number; threads?: number; maxQueued?: number; maxQueuedPerClient?: number; file?: string; budgets?: Budgets } = {}) {
    const pool = new CountingPool({ threads: options.threads ?? 2, maxQueued: options.maxQueued ?? 64, maxQueuedPerClient: options.maxQueuedPerClient });
    const users = await HtpasswdUsers.open(options.file ?? file, logger, { hashPool: pool });
    const limiter = new MemoryLimiter();
    const throttled: string[] = [];
    const throttle = new LoginThrottle(
      limiter,
      { maxFailures: options.maxFailures ?? 10, per: 60_000, ...options.budgets },
      { loginThrottled: (site) => throttled.push(site), passwordHashed: () => {} },
    );
    closers.push(pool, users, limiter);
    const logins: SiteLogins = throttle.forSite("hub", users);
    return { pool, users, limiter, logins, throttled };
  }

  it("after maxFailures wrong passwords, the next wrong one AND the right one are refused without a check", async () => {
    const { pool, logins, throttled } = await setup();
    const started = performance.now();
    for (let i = 0; i < 10; i++) assert.deepEqual(await logins.check("admin", `wrong-${i}`, "10.0.0.1"), { ok: false, problem: "wrong" });
    assert.equal(pool.calls, 10);
    const wrong = await logins.check("admin", "wrong-again", "10.0.0.1");
    const right = await logins.check("admin", "Admin123", "10.0.0.1");
    // 10 per minute: one failure is forgiven every 6 s, counted from the first (ten bcrypt checks may take
    // seconds on a loaded machine).
    const earliest = 6 - Math.ceil((performance.now() - started) / 1000);
    for (const refused of [wrong, right]) {
      assert.ok(!refused.ok && refused.problem === "throttled" && refused.scope === "user", JSON.stringify(refused));
      assert.ok(refused.retryAfterSeconds! >= Math.max(1, earliest) && refused.retryAfterSeconds! <= 6, JSON.stringify(refused));
    }
    assert.equal(pool.calls, 10, "no hashing once throttled");
    assert.deepEqual(throttled, ["hub", "hub"]);
  });

  it("the same user from another address, and another user from the same address, still log in", async () => {
    const { logins } = await setup({ maxFailures: 3 });
    for (let i = 0; i < 4; i++) await logins.check("admin", "wrong", "10.0.0.1");
    assert.equal((await logins.check("admin", "Admin123", "10.0.0.1")).ok, false);
    assert.equal((await logins.check("admin", "Admin123", "10.0.0.2")).ok, true);
    assert.equal((await logins.check("admin", "Admin123", "::ffff:10.0.0.1")).ok, true);
    assert.deepEqual(await logins.check("other", "x", "10.0.0.1"), { ok: false, problem: "wrong" });
  });

  it("counts only failures: right logins give their charge back", async () => {
    const { pool, logins, limiter } = await setup({ maxFailures: 3 });
    for (let i = 0; i < 2; i++) assert.deepEqual(await logins.check("admin", `wrong-${i}`, "10.0.0.3"), { ok: false, problem: "wrong" });
    for (let i = 0; i < 30; i++) assert.equal((await logins.check("admin", "Admin123", "10.0.0.3")).ok, true, `right login ${i}`);
    assert.deepEqual(await logins.check("admin", "wrong-2", "10.0.0.3"), { ok: false, problem: "wrong" }, "the third failure is still checked");
    const calls = pool.calls;
    assert.equal((await logins.check("admin", "wrong-3", "10.0.0.3")).ok, false);
    assert.equal((await logins.check("admin", "Admin123", "10.0.0.3")).ok, false, "the fourth failure's bucket is empty");
    assert.equal(pool.calls, calls);
    assert.equal(limiter.size, 1);
  });

  it("concurrent guesses cannot overshoot: exactly maxFailures of them are checked", async () => {
    const { pool, logins } = await setup({ maxFailures: 10 });
    const results = await Promise.all(Array.from({ length: 30 }, (_, i) => logins.check("admin", `guess-${i}`, "10.0.0.5")));
    assert.equal(results.filter((r) => !r.ok && r.problem === "wrong").length, 10);
    assert.equal(results.filter((r) => !r.ok && r.problem === "throttled").length, 20);
    assert.equal(pool.calls, 10);
  });

  it("a burst of the same right credentials from one address shares one charge (a CI runner's parallel jobs)", async () => {
    const { pool, logins } = await setup({ maxFailures: 2, file: mixed });
    const results = await Promise.all(Array.from({ length: 20 }, () => logins.check("slow", "Slow1234", "10.0.0.6")));
    assert.ok(results.every((r) => r.ok), JSON.stringify(results.filter((r) => !r.ok)));
    assert.equal(pool.calls, 1);
  });

  it("a full hashing queue refuses as busy and counts nothing against the user", async () => {
    const { pool, logins, limiter } = await setup({ maxFailures: 3, threads: 1, maxQueued: 1, file: mixed });
    const occupying = [logins.check("slow", "not-it", "10.0.0.7"), logins.check("slow", "not-it-either", "10.0.0.7")];
    await setImmediate();
    assert.deepEqual([pool.running, pool.queued], [1, 1]);
    for (let i = 0; i < 6; i++) assert.deepEqual(await logins.check("admin", `w${i}`, "10.0.0.8"), { ok: false, problem: "busy" });
    assert.deepEqual(await Promise.all(occupying), [{ ok: false, problem: "wrong" }, { ok: false, problem: "wrong" }]);
    assert.equal(limiter.size, 1, "only the occupying failures are counted");
    for (let i = 0; i < 3; i++) assert.deepEqual(await logins.check("admin", `x${i}`, "10.0.0.8"), { ok: false, problem: "wrong" });
    assert.equal((await logins.check("admin", "x3", "10.0.0.8")).ok, false);
    assert.equal(limiter.size, 2);
  });

  it("HtpasswdSiteAuth answers 429 with Retry-After, and 503 with Retry-After: 1 when busy", async () => {
    const { logins, pool } = await setup({ maxFailures: 1, threads: 1, maxQueued: 1, file: mixed });
    const auth = new HtpasswdSiteAuth(logins, new AccessPolicy([{ who: ["admin"], repositories: ["**"], actions: ["pull"] }]), "hub");
    const origin = "https://hub.registry.test";
    const started = performance.now();
    const first = await auth.admit(basic("admin", "nope"), PULL, origin, "10.0.0.9");
    assert.equal(first.ok || first.error, "unauthorized");
    const throttled = await auth.admit(basic("admin", "Admin123"), PULL, origin, "10.0.0.9");
    // One failure a minute: forgiven 60 s after it, less what the check took on a loaded machine.
    const retryAfter = Number((throttled.ok ? {} : throttled.headers ?? {})["Retry-After"]);
    assert.ok(retryAfter <= 60 && retryAfter >= 60 - Math.ceil((performance.now() - started) / 1000), JSON.stringify(throttled));
    assert.deepEqual({ ...throttled, headers: {} }, {
      ok: false,
      error: "tooManyRequests",
      reason: "throttled",
      message: "too many failed logins for this user from this address; try again later",
      headers: {},
    });
    // One check on the thread, one waiting: the queue is full.
    const occupying = [auth.admit(basic("slow", "nope"), PULL, origin, "10.0.0.10"), auth.admit(basic("slow", "nope2"), PULL, origin, "10.0.0.12")];
    const busy = await auth.admit(basic("admin", "Admin123"), PULL, origin, "10.0.0.11");
    assert.ok(!busy.ok);
    assert.deepEqual([busy.error, busy.reason, busy.headers], ["unavailable", "overloaded", { "Retry-After": "1" }]);
    await Promise.all(occupying);
    assert.deepEqual([pool.running, pool.queued], [0, 0], "a refused pair leaves nothing behind");
    const later = await auth.admit(basic("admin", "Admin123"), PULL, origin, "10.0.0.11");
    assert.equal(later.ok, true, JSON.stringify(later));
  });

  it("keys: site, address and user cannot run into each other; long user names are hashed", () => {
    assert.equal(counterKey("hub", "admin", "10.0.0.1"), "hub:10.0.0.1|admin");
    assert.equal(counterKey("hub", "a|b:c", "::1"), "hub:::1|a|b:c");
    const long = counterKey("hub", "x".repeat(5000), "::1");
    assert.ok(long.length < 80, long);
    assert.notEqual(long, counterKey("hub", "x".repeat(5001), "::1"));
  });

  /** Refused by that budget, retry within its refill interval (less whatever time the test took so far). */
  function assertRefused(check: PasswordCheck, scope: ThrottleScope, intervalSeconds: number): void {
    assert.ok(!check.ok && check.problem === "throttled", JSON.stringify(check));
    assert.equal(check.scope, scope);
    assert.ok(check.retryAfterSeconds >= 1 && check.retryAfterSeconds <= intervalSeconds, JSON.stringify(check));
  }

  const BUDGETS = { maxFailuresPerAddress: 5, maxFailuresPerNetwork: 8, networkPrefix: { ipv4: 24, ipv6: 64 }, refusalPauseMs: 0 };

  it("a new user name for every guess: past maxFailuresPerAddress the address is refused for any user, right password too, without a hash", async () => {
    const { pool, logins, throttled } = await setup({ budgets: BUDGETS });
    for (let i = 0; i < 5; i++) assert.deepEqual(await logins.check(`nobody-${i}`, "guess", "10.1.0.1"), { ok: false, problem: "wrong" });
    assert.equal(pool.calls, 5);
    for (const [user, password] of [["nobody-5", "guess"], ["admin", "Admin123"]]) {
      // 5 per minute: one failure is forgiven every 12 s.
      assertRefused(await logins.check(user!, password!, "10.1.0.1"), "address", 12);
    }
    assert.equal(pool.calls, 5, "no hashing once the address is over its budget");
    assert.deepEqual(throttled, ["hub", "hub"]);
    assert.equal((await logins.check("admin", "Admin123", "10.1.1.1")).ok, true, "another address (another /24) logs in");
  });

  it("the addresses of one network share maxFailuresPerNetwork; IPv6 counts per /64; another network is untouched", async () => {
    const { pool, logins } = await setup({ budgets: BUDGETS });
    for (let i = 0; i < 8; i++) await logins.check(`n-${i}`, "guess", `10.2.0.${i + 1}`);
    assert.equal(pool.calls, 8);
    // 8 per minute: one every 7.5 s.
    assertRefused(await logins.check("admin", "Admin123", "10.2.0.200"), "network", 8);
    assert.equal((await logins.check("admin", "Admin123", "10.2.1.1")).ok, true);
    for (let i = 0; i < 8; i++) await logins.check(`v6-${i}`, "guess", `2001:db8:1:2::${i + 1}`);
    assertRefused(await logins.check("admin", "Admin123", "2001:db8:1:2:ffff::1"), "network", 8);
    assert.equal((await logins.check("admin", "Admin123", "2001:db8:1:3::1")).ok, true);
    // The second right login was remembered from the first: no hash.
    assert.equal(pool.calls, 8 + 1 + 8);
  });

  it("a refused login leaves no charge in the other budgets; right logins give every charge back", async () => {
    const { logins } = await setup({ maxFailures: 2, budgets: BUDGETS });
    for (let i = 0; i < 2; i++) await logins.check("admin", `wrong-${i}`, "10.3.0.1");
    // The user's budget is empty: these are refused by it, and must not use up the address's.
    for (let i = 0; i < 10; i++) assert.equal(((await logins.check("admin", "x", "10.3.0.1")) as { scope?: string }).scope, "user");
    for (let i = 0; i < 3; i++) assert.deepEqual(await logins.check(`other-${i}`, "guess", "10.3.0.1"), { ok: false, problem: "wrong" });
    assert.equal(((await logins.check("other-3", "guess", "10.3.0.1")) as { scope?: string }).scope, "address");
    const fresh = await setup({ budgets: BUDGETS });
    for (let i = 0; i < 20; i++) assert.equal((await fresh.logins.check("admin", "Admin123", "10.3.0.2")).ok, true);
    assert.equal(fresh.limiter.size, 0, "nothing counted for right passwords");
  });

  it("concurrent guesses under many names cannot overshoot the address budget", async () => {
    const { pool, logins } = await setup({ budgets: BUDGETS });
    const results = await Promise.all(Array.from({ length: 40 }, (_, i) => logins.check(`burst-${i}`, "guess", "10.4.0.1")));
    assert.equal(results.filter((r) => !r.ok && r.problem === "wrong").length, 5);
    assert.equal(pool.calls, 5);
  });

  it("an address over its budget gets its refusal after the pause; a refusal for one user name is not held", async () => {
    const { logins } = await setup({ maxFailures: 1, budgets: { ...BUDGETS, refusalPauseMs: 300 } });
    await logins.check("admin", "wrong", "10.5.0.1");
    let started = performance.now();
    assert.equal(((await logins.check("admin", "wrong", "10.5.0.1")) as { scope?: string }).scope, "user");
    assert.ok(performance.now() - started < 250, "the per-user refusal is answered at once");
    for (let i = 0; i < 4; i++) await logins.check(`p-${i}`, "guess", "10.5.0.1");
    started = performance.now();
    assert.equal(((await logins.check("p-9", "guess", "10.5.0.1")) as { scope?: string }).scope, "address");
    assert.ok(performance.now() - started >= 290, "held");
  });

  it("checks refused because the client already has its share of the queue count against its address, not its user", async () => {
    const { logins, limiter } = await setup({ threads: 1, maxQueued: 64, maxQueuedPerClient: 1, file: mixed, budgets: BUDGETS });
    const occupying = [logins.check("slow", "not-it", "10.6.0.1"), logins.check("slow", "not-it-either", "10.6.0.1")];
    await setImmediate();
    assert.deepEqual(await logins.check("slow", "third", "10.6.0.1"), { ok: false, problem: "busy" });
    await Promise.all(occupying);
    // Two wrong + one busy against the address (5): two more guesses are checked, the next is refused.
    for (let i = 0; i < 2; i++) assert.deepEqual(await logins.check(`q-${i}`, "guess", "10.6.0.1"), { ok: false, problem: "wrong" });
    assert.equal(((await logins.check("q-2", "guess", "10.6.0.1")) as { scope?: string }).scope, "address");
    assert.ok(limiter.size > 0);
  });

  it("address and network keys: one per address across sites, IPv4-mapped counted as IPv4", () => {
    assert.equal(addressKey("10.0.0.1"), "*address:10.0.0.1/32");
    assert.equal(addressKey("::ffff:10.0.0.1"), addressKey("10.0.0.1"));
    assert.equal(addressKey("2001:db8::1"), "*address:2001:db8:0:0:0:0:0:1/128");
    assert.equal(networkKey("10.0.0.77", { ipv4: 24, ipv6: 64 }), "*network:10.0.0.0/24");
    assert.equal(networkKey("2001:db8::1", { ipv4: 24, ipv6: 64 }), "*network:2001:db8:0:0:0:0:0:0/64");
  });
});
