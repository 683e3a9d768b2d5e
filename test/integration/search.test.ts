// `docker search HOST/term` answered by the gateway from the backend's
// catalog, in the v1 JSON docker reads, showing each caller only the repositories it may pull.
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { startTestGateway, type TestGateway } from "../helpers/gateway.js";
import { startRegistry, type Registry } from "../helpers/registry.js";
import { pushTinyImage } from "../helpers/seed.js";
import { htpasswdLine } from "../helpers/htpasswd.js";

const HUB = "hub.registry.test"; // htpasswd
const TEAM = "team.registry.test"; // token auth
const LIMITED = "limited.registry.test"; // no auth, an "any" rate limit
const REPOSITORIES = ["public/app", "public/tools", "secret/app", "secret/vault", "team/app"];

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;


describe("docker search (v1) from the catalog, filtered by the caller's pull rights", () => {
  let workDir: string;
  let registry: Registry;
  let gateway: TestGateway;

  before(async () => {
    workDir = await mkdtemp(join(tmpdir(), "rg-search-"));
    registry = await startRegistry();
    for (const repository of REPOSITORIES) await pushTinyImage(registry.url, repository, "v1", "seed/search");
    const htpasswd = join(workDir, "htpasswd");
    await writeFile(htpasswd, `${await htpasswdLine("admin", "Admin123")}\n${await htpasswdLine("reader", "Reader123")}\n`);
    const rules = [
      { who: ["admin"], repositories: ["**"], actions: ["pull", "push", "delete", "catalog"] },
      { who: ["reader"], repositories: ["public/**", "team/**"], actions: ["pull"] },
      { who: "*", repositories: ["public/**"], actions: ["pull"] },
    ] as const;
    gateway = await startTestGateway({
      sites: [
        { name: "hub", hosts: [HUB], backend: registry.url, auth: { type: "htpasswd", htpasswd, rules: rules.map((r) => ({ ...r })) as never } },
        { name: "team", hosts: [TEAM], backend: registry.url, auth: { type: "token", htpasswd, rules: rules.map((r) => ({ ...r })) as never } },
        { name: "limited", hosts: [LIMITED], backend: registry.url, limits: [{ name: "any", operations: ["any"], rate: 3, per: "1m", key: "ip" }] },
      ],
    });
  });

  after(async () => {
    await gateway?.stop();
    await registry?.stop();
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  const names = (body: { results: { name: string }[] }) => body.results.map((r) => r.name);

  it("answers the v1 ping docker sends first, as a standalone registry (so docker sends its credentials)", async () => {
    const res = await gateway.request(HUB, { path: "/v1/_ping" });
    assert.equal(res.status, 200);
    assert.equal(res.headers["x-docker-registry-standalone"], "true");
    assert.deepEqual(res.json(), {});
  });

  it("shows each caller only what it may pull (htpasswd site)", async () => {
    const admin = await gateway.request(HUB, { path: "/v1/search?q=app&n=25", headers: { authorization: basic("admin", "Admin123") } });
    assert.equal(admin.status, 200);
    assert.equal(admin.headers["content-type"], "application/json; charset=utf-8");
    assert.deepEqual(names(admin.json()), ["public/app", "secret/app", "team/app"]);
    assert.equal(admin.json().num_results, 3);
    assert.equal(admin.json().query, "app");
    const result = admin.json().results[0];
    assert.deepEqual(Object.keys(result).sort(), ["description", "is_automated", "is_official", "name", "star_count"]);

    const reader = await gateway.request(HUB, { path: "/v1/search?q=app", headers: { authorization: basic("reader", "Reader123") } });
    assert.deepEqual(names(reader.json()), ["public/app", "team/app"]);
    const anonymous = await gateway.request(HUB, { path: "/v1/search?q=" });
    assert.deepEqual(names(anonymous.json()), ["public/app", "public/tools"]);
    assert.ok(!JSON.stringify(anonymous.json()).includes("secret"), "no hidden name leaks anywhere in the answer");
  });

  it("refuses wrong credentials instead of answering as anonymous", async () => {
    const res = await gateway.request(HUB, { path: "/v1/search?q=app", headers: { authorization: basic("admin", "wrong") } });
    assert.equal(res.status, 401);
    assert.equal(res.json().errors[0].code, "UNAUTHORIZED");
  });

  it("pages with n and page", async () => {
    const auth = { authorization: basic("admin", "Admin123") };
    const first = (await gateway.request(HUB, { path: "/v1/search?q=&n=2&page=1", headers: auth })).json();
    const third = (await gateway.request(HUB, { path: "/v1/search?q=&n=2&page=3", headers: auth })).json();
    assert.deepEqual(names(first), ["public/app", "public/tools"]);
    assert.deepEqual(names(third), ["team/app"]);
    assert.equal(first.num_results, 5);
    assert.equal(first.num_pages, 3);
  });

  it("is rate limited like any other request (a search filters the whole catalog)", async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) statuses.push((await gateway.request(LIMITED, { path: "/v1/search?q=app" })).status);
    assert.deepEqual(statuses, [200, 200, 200, 429]);
  });

  it("takes Basic credentials (what docker sends to v1 search) and Bearer tokens on a token site", async () => {
    const withBasic = await gateway.request(TEAM, { path: "/v1/search?q=vault", headers: { authorization: basic("admin", "Admin123") } });
    assert.deepEqual(names(withBasic.json()), ["secret/vault"]);
    const token = (await gateway.request(TEAM, { path: "/token?service=team", headers: { authorization: basic("reader", "Reader123") } })).json().token;
    const withBearer = await gateway.request(TEAM, { path: "/v1/search?q=", headers: { authorization: `Bearer ${token}` } });
    assert.deepEqual(names(withBearer.json()), ["public/app", "public/tools", "team/app"]);
  });
});
