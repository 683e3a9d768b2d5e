// Runs alone: compares the time of answers with the time of a bcrypt check.
// Failed logins are throttled per user and client address before any password is hashed, in
// Redis so every gateway shares the count; hashing runs off the event loop, so a flood of wrong passwords
// does not stall anyone else; a password change ends the access tokens issued before it. Real registry,
// real redis-server, two gateways.
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { GatewayConfigInput } from "../../src/config/schema.js";
import { startTestGateway, type GatewayRequest, type GatewayResponse, type TestGateway } from "../helpers/gateway.js";
import { delta, scrape } from "../helpers/metrics.js";
import { waitFor } from "../helpers/process.js";
import { startRedis, type RedisServer } from "../helpers/redis.js";
import { startRegistry, type Registry } from "../helpers/registry.js";
import { htpasswdLine } from "../helpers/htpasswd.js";

const HUB = "hub.registry.test"; // htpasswd
const TEAM = "team.registry.test"; // token
const P = "registry_gateway_";
/** Another client address on loopback: the same user from "another machine". */
const OTHER_IP = "127.0.0.2";

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;


function assertRegistryError(res: GatewayResponse, status: number, code: string): void {
  assert.equal(res.status, status, res.body.toString());
  assert.equal(res.headers["content-type"], "application/json; charset=utf-8");
  assert.equal(res.headers["docker-distribution-api-version"], "registry/2.0");
  assert.equal(res.json().errors[0].code, code);
}

function assertThrottled(res: GatewayResponse): void {
  assertRegistryError(res, 429, "TOOMANYREQUESTS");
  // 10 failures per minute: one is forgiven every 6 s.
  const retryAfter = Number(res.headers["retry-after"]);
  assert.ok(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 6, `Retry-After: ${res.headers["retry-after"]}`);
  assert.equal(res.headers["www-authenticate"], undefined, "a 429 is not a challenge");
}

async function timed(call: () => Promise<GatewayResponse>): Promise<{ res: GatewayResponse; ms: number }> {
  const started = performance.now();
  const res = await call();
  return { res, ms: performance.now() - started };
}

describe("failed-login throttle and hashing off the event loop", () => {
  let workDir: string;
  let htpasswd: string;
  let registry: Registry;
  let redis: RedisServer;
  let a: TestGateway;
  let b: TestGateway;
  const lines: Record<string, string> = {};

  const writeUsers = () => writeFile(htpasswd, `${Object.values(lines).join("\n")}\n`);
  const get = (gateway: TestGateway, host: string, options: GatewayRequest) => gateway.request(host, options);
  const v2 = (gateway: TestGateway, user: string, password: string, localAddress?: string) =>
    get(gateway, HUB, { path: "/v2/", headers: { authorization: basic(user, password) }, ...(localAddress ? { localAddress } : {}) });

  before(async () => {
    workDir = await mkdtemp(join(tmpdir(), "rg-login-throttle-"));
    htpasswd = join(workDir, "htpasswd");
    // Cost 10, as shipped: a check is ~100 ms of CPU, so skipping it shows.
    for (const [user, password] of [["admin", "Admin123"], ["reader", "Reader123"], ["ci", "Ci123456"], ["tok", "Tok12345"]] as const) {
      lines[user] = await htpasswdLine(user, password, 10);
    }
    await writeUsers();
    [registry, redis] = await Promise.all([startRegistry(), startRedis()]);
    const rules = [{ who: ["admin", "reader", "ci", "tok"], repositories: ["**"], actions: ["pull", "push"] as ("pull" | "push")[] }];
    const config = (dataDir: string): Omit<GatewayConfigInput, "listen" | "admin"> => ({
      dataDir,
      redis: { url: redis.url },
      // The budgets per address and network (any user name) are login-flood.test.ts's subject: here they
      // stay out of the way of the per-user counts and of the flood of distinct names below.
      logins: { hashWorkers: 2, maxQueued: 16, maxFailuresPerAddress: 10_000, maxFailuresPerNetwork: 10_000 },
      sites: [
        { name: "hub", hosts: [HUB], backend: registry.url, default: true, auth: { type: "htpasswd", htpasswd, rules } },
        { name: "team", hosts: [TEAM], backend: registry.url, auth: { type: "token", htpasswd, rules } },
      ],
    });
    // One data directory: both gateways sign tokens with the same key, as behind one load balancer.
    const dataDir = join(workDir, "data");
    a = await startTestGateway(config(dataDir));
    b = await startTestGateway({ ...config(dataDir), dataDir });
  });

  after(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    await Promise.all([registry?.stop(), redis?.stop()]);
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  it("htpasswd site: after 10 wrong passwords the 11th and the right one get 429 at once; another address still logs in", async () => {
    const before = await scrape(a.admin.port);
    assert.equal((await v2(a, "admin", "Admin123")).status, 200, "the right password works to begin with");
    const wrongMs: number[] = [];
    for (let i = 0; i < 10; i++) {
      const { res, ms } = await timed(() => v2(a, "admin", `wrong-${i}`));
      assertRegistryError(res, 401, "UNAUTHORIZED");
      wrongMs.push(ms);
    }
    const beforeThrottled = await scrape(a.admin.port);
    const eleventh = await timed(() => v2(a, "admin", "wrong-10"));
    const right = await timed(() => v2(a, "admin", "Admin123"));
    const afterThrottled = await scrape(a.admin.port);
    assertThrottled(eleventh.res);
    assertThrottled(right.res);
    assert.equal(eleventh.res.json().errors[0].message, "too many failed logins for this user from this address; try again later");
    // No password was hashed for them: the hashing threads' own count says so, where each wrong one ran a
    // check; and they are answered faster than the quickest checked wrong password (a cost-10 bcrypt).
    assert.ok(delta(before, beforeThrottled, `${P}password_hashes_total`, {}) >= 10, "each wrong password was hashed");
    assert.equal(delta(beforeThrottled, afterThrottled, `${P}password_hashes_total`, {}), 0, "no check ran for the throttled logins");
    const fastestWrong = Math.min(...wrongMs);
    for (const { ms } of [eleventh, right]) assert.ok(ms < fastestWrong, `429 in ${ms.toFixed(1)} ms, a checked wrong password in ${fastestWrong.toFixed(1)} ms`);

    assert.equal((await v2(a, "admin", "Admin123", OTHER_IP)).status, 200, "the same user from another address");
    assert.equal((await v2(a, "reader", "Reader123")).status, 200, "another user from the same address");

    const after = await scrape(a.admin.port);
    assert.equal(delta(before, after, `${P}auth_failures_total`, { site: "hub", reason: "invalid_credentials" }), 10);
    assert.equal(delta(before, after, `${P}auth_failures_total`, { site: "hub", reason: "throttled" }), 2);
    assert.equal(delta(before, after, `${P}login_throttled_total`, { site: "hub" }), 2);
    assert.equal(delta(before, after, `${P}requests_total`, { site: "hub", operation: "base", method: "GET", code: "429" }), 2);
    // Nothing of the passwords in the log.
    const logText = JSON.stringify(a.logs);
    for (const secret of ["Admin123", "wrong-10", Buffer.from("admin:Admin123").toString("base64")]) assert.ok(!logText.includes(secret), secret);
  });

  it("token site: GET /token with Basic and POST grant_type=password share one count; 429 without hashing", async () => {
    const before = await scrape(a.admin.port);
    const getToken = (password: string, localAddress?: string) =>
      get(a, TEAM, { path: "/token?service=team&scope=repository:x/y:pull", headers: { authorization: basic("tok", password) }, ...(localAddress ? { localAddress } : {}) });
    const postToken = (password: string) =>
      get(a, TEAM, {
        method: "POST",
        path: "/token",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ grant_type: "password", username: "tok", password, service: "team", client_id: "test" }).toString(),
      });
    for (let i = 0; i < 10; i++) assertRegistryError(await (i % 2 ? postToken : getToken)(`wrong-${i}`), 401, "UNAUTHORIZED");
    const wrongGet = await getToken("wrong-again");
    const rightPost = await postToken("Tok12345");
    const rightGet = await getToken("Tok12345");
    for (const res of [wrongGet, rightPost, rightGet]) {
      assertThrottled(res);
      assert.equal(res.headers["cache-control"], "no-store");
    }
    const elsewhere = await getToken("Tok12345", OTHER_IP);
    assert.equal(elsewhere.status, 200, elsewhere.body.toString());
    assert.equal(typeof elsewhere.json().token, "string");

    const after = await scrape(a.admin.port);
    assert.equal(delta(before, after, `${P}auth_failures_total`, { site: "team", reason: "throttled" }), 3);
    assert.equal(delta(before, after, `${P}login_throttled_total`, { site: "team" }), 3);
    assert.equal(delta(before, after, `${P}requests_total`, { site: "team", operation: "token", method: "POST", code: "429" }), 1);
  });

  it("two gateways sharing one redis-server share the failure count", async () => {
    for (let i = 0; i < 10; i++) assertRegistryError(await v2(i % 2 ? a : b, "reader", `wrong-${i}`, OTHER_IP), 401, "UNAUTHORIZED");
    assertThrottled(await v2(a, "reader", "Reader123", OTHER_IP));
    assertThrottled(await v2(b, "reader", "Reader123", OTHER_IP));
    const { Redis } = await import("ioredis");
    const direct = new Redis(redis.url);
    try {
      assert.ok(Number(await direct.exists(`rgw:login:hub:${OTHER_IP}|reader`)) === 1, "the count lives in Redis, under <keyPrefix>login:");
    } finally {
      direct.disconnect();
    }
  });

  it("a password change in the htpasswd file makes an access token issued before it get 401 invalid_token", async () => {
    const login = await get(b, TEAM, { path: "/token?service=team&scope=repository:ci/app:pull", headers: { authorization: basic("ci", "Ci123456") } });
    assert.equal(login.status, 200, login.body.toString());
    const { token } = login.json() as { token: string };
    const tags = () => get(a, TEAM, { path: "/v2/ci/app/tags/list", headers: { authorization: `Bearer ${token}` } });
    // Unknown repository: the backend answers 404, which proves the gateway let the token through.
    assert.equal((await tags()).status, 404);

    lines.ci = await htpasswdLine("ci", "NewPassword1", 4);
    await writeUsers();
    const refused = await waitFor(async () => {
      const res = await tags();
      return res.status === 401 ? res : undefined;
    }, { timeoutMs: 10_000, what: "the old token to be refused after the password change" });
    assertRegistryError(refused, 401, "UNAUTHORIZED");
    assert.match(String(refused.headers["www-authenticate"]), /error="invalid_token"/);
    // The new password gets a token that works.
    const again = await get(a, TEAM, { path: "/token?service=team&scope=repository:ci/app:pull", headers: { authorization: basic("ci", "NewPassword1") } });
    assert.equal(again.status, 200, again.body.toString());
    const fresh = await get(a, TEAM, { path: "/v2/ci/app/tags/list", headers: { authorization: `Bearer ${again.json().token}` } });
    assert.equal(fresh.status, 404);
  });

  it("during a flood of wrong passwords, authenticated requests keep being answered promptly", async () => {
    const before = await scrape(a.admin.port);
    assert.equal((await v2(a, "admin", "Admin123", OTHER_IP)).status, 200, "warm: the login is cached");
    let flooding = true;
    const legit: { status: number; ms: number }[] = [];
    const prober = (async () => {
      while (flooding) {
        const { res, ms } = await timed(() => v2(a, "admin", "Admin123", OTHER_IP));
        legit.push({ status: res.status, ms });
      }
    })();

    // 200 wrong logins, 20 at a time, each for another user name: none is throttled, every one wants a hash.
    const statuses: number[] = [];
    let next = 0;
    const floodStarted = performance.now();
    await Promise.all(
      Array.from({ length: 20 }, async () => {
        while (next < 200) {
          const i = next++;
          statuses.push((await v2(a, `nobody-${i}`, "guess")).status);
        }
      }),
    );
    const floodMs = performance.now() - floodStarted;
    flooding = false;
    await prober;

    const counts = Object.fromEntries([...new Set(statuses)].map((s) => [s, statuses.filter((x) => x === s).length]));
    assert.deepEqual(Object.keys(counts).sort(), Object.keys(counts).filter((s) => s === "401" || s === "503").sort(), JSON.stringify(counts));
    assert.ok((counts[401] ?? 0) >= 10, `some wrong passwords were really checked: ${JSON.stringify(counts)}`);
    assert.ok(legit.length >= 5, `only ${legit.length} authenticated requests during a ${floodMs.toFixed(0)} ms flood`);
    for (const { status, ms } of legit) {
      assert.equal(status, 200);
      assert.ok(ms < 2000, `an authenticated request took ${ms.toFixed(0)} ms during the flood`);
    }
    const after = await scrape(a.admin.port);
    assert.equal(delta(before, after, `${P}auth_failures_total`, { site: "hub", reason: "overloaded" }), counts[503] ?? 0);
    const slowest = Math.max(...legit.map((l) => l.ms));
    process.stderr.write(`flood: ${JSON.stringify(counts)} in ${floodMs.toFixed(0)} ms; ${legit.length} authenticated GETs, slowest ${slowest.toFixed(0)} ms\n`);
  });
});
