// The rate-limit stage's verdicts and the headers they carry (Docker Hub's form).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { gatewayConfig } from "../../../src/config/schema.js";
import { MemoryLimiter } from "../../../src/ratelimit/limiter.js";
import { createRateLimitStage, rateLimitHeaders, type RateLimitVerdict } from "../../../src/ratelimit/stage.js";
import { SiteMap } from "../../../src/sites.js";
import { routeOf } from "../../helpers/routes.js";

const manifest = routeOf("GET", "/v2/app/manifests/v1");
const patch = routeOf("PATCH", "/v2/app/blobs/uploads/uuid");

async function stageFor(limits: unknown[]) {
  const config = gatewayConfig.parse({
    sites: [
      { hosts: ["hub.test"], backend: "http://127.0.0.1:5001", limits },
      { hosts: ["team.test"], backend: "http://127.0.0.1:5002" },
    ],
  });
  const sites = new SiteMap(config);
  const refused: string[] = [];
  const events = { rateLimited: (site: string, limit: string) => refused.push(`${site}/${limit}`), setRedisUp: () => {} };
  const stage = await createRateLimitStage(sites.sites, events, () => new MemoryLimiter());
  return { stage: stage!, hub: sites.sites[0]!, team: sites.sites[1]!, refused };
}

describe("RateLimit headers", () => {
  it("are written as Docker Hub writes them", () => {
    assert.deepEqual(rateLimitHeaders({ limit: 100, remaining: 76 }, 21_600), ["RateLimit-Limit", "100;w=21600", "RateLimit-Remaining", "76;w=21600"]);
  });
});

describe("the rate-limit stage", () => {
  it("is absent when no site has limits", async () => {
    const config = gatewayConfig.parse({ sites: [{ hosts: ["a.test"], backend: "http://127.0.0.1:5001" }] });
    assert.equal(await createRateLimitStage(new SiteMap(config).sites, null, () => new MemoryLimiter()), null);
  });

  it("admits with headers, then refuses with Retry-After and the same headers, and reports the refusal", async () => {
    const { stage, hub, refused } = await stageFor([{ name: "pulls", operations: ["pull"], rate: 2, per: "1m" }]);
    const who = { ip: "10.0.0.1" };
    const first = (await stage.check(hub, manifest, "GET", who)) as Extract<RateLimitVerdict, { kind: "admitted" }>;
    assert.deepEqual(first, { kind: "admitted", headers: ["RateLimit-Limit", "2;w=60", "RateLimit-Remaining", "1;w=60"] });
    await stage.check(hub, manifest, "GET", who);
    const third = await stage.check(hub, manifest, "GET", who);
    assert.equal(third?.kind, "refused");
    assert.deepEqual((third as Extract<RateLimitVerdict, { kind: "refused" }>).headers, {
      "Retry-After": "30",
      "RateLimit-Limit": "2;w=60",
      "RateLimit-Remaining": "0;w=60",
    });
    assert.deepEqual(refused, ["hub.test/pulls"]);
  });

  it("returns null (nothing to await) for uncounted requests and sites without limits", async () => {
    const { stage, hub, team } = await stageFor([{ name: "all", operations: ["any"], rate: 1, per: "1m" }]);
    assert.equal(stage.check(hub, patch, "PATCH", { ip: "10.0.0.1" }), null);
    assert.equal(stage.check(team, manifest, "GET", { ip: "10.0.0.1" }), null);
    assert.notEqual(stage.check(hub, manifest, "HEAD", { ip: "10.0.0.1" }), null, "any counts HEADs");
  });

  it("with several limits, refuses if one refuses and reports the tightest", async () => {
    const { stage, hub } = await stageFor([
      { name: "wide", operations: ["any"], rate: 100, per: "1m" },
      { name: "pulls", operations: ["pull"], rate: 3, per: "1m" },
    ]);
    const who = { user: "alice", ip: "10.0.0.1" };
    const first = await stage.check(hub, manifest, "GET", who);
    assert.deepEqual(first, { kind: "admitted", headers: ["RateLimit-Limit", "3;w=60", "RateLimit-Remaining", "2;w=60"] });
    await stage.check(hub, manifest, "GET", who);
    await stage.check(hub, manifest, "GET", who);
    const fourth = await stage.check(hub, manifest, "GET", who);
    assert.equal(fourth?.kind === "refused" && fourth.limit, "pulls");
    // Another user from the same address has their own counter.
    assert.equal((await stage.check(hub, manifest, "GET", { user: "bob", ip: "10.0.0.1" }))?.kind, "admitted");
  });
});
