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
import { counterKey, LoginThrottle, type SiteLogins } from "../../../src/auth/logins.js";
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

  /** A site's logins over a real file, pool and in-memory limiter; maxFailures per minute. */
  async function setup(options: { maxFailures?: number; threads?: number; maxQueued?: number; file?: string } = {}) {
    const pool = new CountingPool({ threads: options.threads ?? 2, maxQueued: options.maxQueued ?? 64 });
    const users = await HtpasswdUsers.open(options.file ?? file, logger, { hashPool: pool });
    const limiter = new MemoryLimiter();
    const throttled: string[] = [];
    const throttle = new LoginThrottle(limiter, { maxFailures: options.maxFailures ?? 10, per: 60_000 }, { loginThrottled: (site) => throttled.push(site) });
    closers.push(pool, users, throttle);
    const logins: SiteLogins = throttle.forSite("hub", users);
    return { pool, users, limiter, logins, throttled };
  }

  it("after maxFailures wrong passwords, the next wrong one AND the right one are refused without a check", async () => {
    const { pool, logins, throttled } = await setup();
    for (let i = 0; i < 10; i++) assert.deepEqual(await logins.check("admin", `wrong-${i}`, "10.0.0.1"), { ok: false, problem: "wrong" });
    assert.equal(pool.calls, 10);
    const wrong = await logins.check("admin", "wrong-again", "10.0.0.1");
    const right = await logins.check("admin", "Admin123", "10.0.0.1");
    // 10 per minute: one failure is forgiven every 6 s.
    assert.deepEqual(wrong, { ok: false, problem: "throttled", retryAfterSeconds: 6 });
    assert.deepEqual(right, { ok: false, problem: "throttled", retryAfterSeconds: 6 });
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
    const first = await auth.admit(basic("admin", "nope"), PULL, origin, "10.0.0.9");
    assert.equal(first.ok || first.error, "unauthorized");
    const throttled = await auth.admit(basic("admin", "Admin123"), PULL, origin, "10.0.0.9");
    assert.deepEqual(throttled, {
      ok: false,
      error: "tooManyRequests",
      reason: "throttled",
      message: "too many failed logins for this user from this address; try again later",
      headers: { "Retry-After": "60" },
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
});
