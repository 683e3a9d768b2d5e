// Rate limits through Redis in front of real registries, driven over real TLS connections.
// Anonymous clients are told apart by X-Forwarded-For from a trusted proxy (127.0.0.1); one test keys by
// htpasswd user instead.
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { GatewayConfigInput } from "../../src/config/schema.js";
import { REPO_ROOT } from "../helpers/cli.js";
import { certDir, cleanupClients, hostsFile, skopeo } from "../helpers/clients.js";
import { startTestGateway, type GatewayResponse, type TestGateway } from "../helpers/gateway.js";
import { buildOciImage, OCI_MANIFEST, type OciImage } from "../helpers/oci.js";
import { formatRun, waitFor } from "../helpers/process.js";
import { startRedis, type RedisServer } from "../helpers/redis.js";
import { startRegistry, type Registry } from "../helpers/registry.js";

const HUB = "hub.registry.test";
const TEAM = "team.registry.test";
const PULLS_5_PER_MINUTE = { name: "pulls", operations: ["pull" as const], rate: 5, per: "1m", burst: 5 };

/** A fresh client address per test, so tests never share a counter. */
let nextClient = 1;
const newClient = () => `198.51.100.${nextClient++}`;

function assertRegistryError(res: GatewayResponse, status: number, code: string): void {
  assert.equal(res.status, status, res.body.toString());
  assert.equal(res.headers["content-type"], "application/json; charset=utf-8");
  assert.equal(res.json().errors[0].code, code);
}

describe("rate limits through Redis, in front of real registries", () => {
  let hub: Registry;
  let team: Registry;
  let redis: RedisServer;
  let workDir: string;
  let image: OciImage;
  let gatewayA: TestGateway;
  let gatewayB: TestGateway;
  let failClosed: TestGateway;
  const gateways: TestGateway[] = [];

  const sharedConfig = (failure: "failOpen" | "failClosed" = "failOpen"): Partial<GatewayConfigInput> & Pick<GatewayConfigInput, "sites"> => ({
    trustedProxies: ["127.0.0.1"],
    redis: { url: redis.url, failure },
    sites: [
      { name: "hub", hosts: [HUB], backend: hub.url, default: true, limits: [PULLS_5_PER_MINUTE] },
      { name: "team", hosts: [TEAM], backend: team.url, limits: [PULLS_5_PER_MINUTE] },
    ],
  });

  async function gateway(config: Parameters<typeof startTestGateway>[0]): Promise<TestGateway> {
    const started = await startTestGateway(config);
    gateways.push(started);
    return started;
  }

  const pull = (gw: TestGateway, client: string, host = HUB, method = "GET") =>
    gw.request(host, { method, path: `/v2/${host === HUB ? "hub" : "team"}/app/manifests/v1`, headers: { accept: OCI_MANIFEST, "x-forwarded-for": client } });

  before(async () => {
    workDir = await mkdtemp(join(tmpdir(), "rg-ratelimit-"));
    [hub, team, redis, image] = await Promise.all([
      startRegistry(),
      startRegistry(),
      startRedis(),
      buildOciImage(join(workDir, "image"), { layers: 3, layerSize: 64 * 1024, tag: "v1" }),
    ]);
    for (const [registry, repository] of [[hub, "hub/app"], [team, "team/app"]] as const) {
      const args = ["copy", "--dest-tls-verify=false", image.ociRef, `docker://${registry.host}/${repository}:v1`];
      const result = await skopeo(args, { timeoutMs: 30_000 });
      assert.equal(result.code, 0, formatRun("skopeo", args, result));
    }
    gatewayA = await gateway(sharedConfig());
    gatewayB = await gateway(sharedConfig());
    failClosed = await gateway(sharedConfig("failClosed"));
  });

  after(async () => {
    await Promise.all(gateways.map((g) => g.stop()));
    await Promise.all([hub?.stop(), team?.stop(), redis?.stop()]);
    await cleanupClients();
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  it("refuses the 6th manifest GET in a minute with 429, Retry-After and Docker Hub's headers; HEADs are free", async () => {
    const client = newClient();
    for (let i = 0; i < 5; i++) {
      const res = await pull(gatewayA, client);
      assert.equal(res.status, 200, res.body.toString());
      assert.equal(res.headers["ratelimit-limit"], "5;w=60");
      assert.equal(res.headers["ratelimit-remaining"], `${4 - i};w=60`);
      assert.equal(res.headers["docker-distribution-api-version"], "registry/2.0", "the backend's headers are still there");
      // A HEAD between each GET: how clients check for a new tag, never counted, no headers.
      const head = await pull(gatewayA, client, HUB, "HEAD");
      assert.equal(head.status, 200);
      assert.equal(head.headers["ratelimit-remaining"], undefined);
    }
    const refused = await pull(gatewayA, client);
    assertRegistryError(refused, 429, "TOOMANYREQUESTS");
    const retryAfter = Number(refused.headers["retry-after"]);
    assert.ok(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 12, `Retry-After ${refused.headers["retry-after"]}`);
    assert.equal(refused.headers["ratelimit-limit"], "5;w=60");
    assert.equal(refused.headers["ratelimit-remaining"], "0;w=60");
    assert.equal(refused.headers["docker-distribution-api-version"], "registry/2.0");

    // Blobs are another class: a layer still downloads.
    const blob = await gatewayA.request(HUB, { path: `/v2/hub/app/blobs/${image.layerDigests[0]}`, headers: { "x-forwarded-for": client } });
    assert.equal(blob.status, 200);
    assert.equal(blob.headers["ratelimit-limit"], undefined);
  });

  it("leaves other clients and the other site alone", async () => {
    const client = newClient();
    for (let i = 0; i < 5; i++) assert.equal((await pull(gatewayA, client)).status, 200);
    assert.equal((await pull(gatewayA, client)).status, 429);
    const other = await pull(gatewayA, newClient());
    assert.equal(other.status, 200);
    assert.equal(other.headers["ratelimit-remaining"], "4;w=60");
    const otherSite = await pull(gatewayA, client, TEAM);
    assert.equal(otherSite.status, 200);
    assert.equal(otherSite.headers["ratelimit-remaining"], "4;w=60");
  });

  it("counts per authenticated user: another user from the same address has their own allowance", async () => {
    const htpasswd = join(REPO_ROOT, "config/examples/htpasswd");
    const rules = [{ who: ["admin", "reader"], repositories: ["**"], actions: ["pull" as const] }];
    const authed = await gateway({
      ...sharedConfig(),
      sites: [{ name: "hub", hosts: [HUB], backend: hub.url, auth: { type: "htpasswd", htpasswd, rules }, limits: [PULLS_5_PER_MINUTE] }],
    });
    const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;
    const as = (authorization: string) =>
      authed.request(HUB, { path: "/v2/hub/app/manifests/v1", headers: { accept: OCI_MANIFEST, authorization, "x-forwarded-for": "203.0.113.50" } });
    const statuses = [];
    for (let i = 0; i < 6; i++) statuses.push((await as(basic("reader", "Reader123"))).status);
    assert.deepEqual(statuses, [200, 200, 200, 200, 200, 429]);
    const admin = await as(basic("admin", "Admin123"));
    assert.equal(admin.status, 200);
    assert.equal(admin.headers["ratelimit-remaining"], "4;w=60");
  });

  it("two gateways on one Redis enforce one limit", async () => {
    const client = newClient();
    const statuses = [];
    for (let i = 0; i < 6; i++) statuses.push((await pull(i % 2 ? gatewayB : gatewayA, client)).status);
    assert.deepEqual(statuses, [200, 200, 200, 200, 200, 429]);
    assert.equal((await pull(gatewayB, client)).status, 429);
  });

  it("keeps serving (failOpen) or answers 503 (failClosed) while Redis is dead, never hanging; shared again when it is back", async () => {
    await redis.kill();
    const client = newClient();
    const timed = async (request: () => Promise<GatewayResponse>) => {
      const started = performance.now();
      const res = await request();
      const ms = performance.now() - started;
      assert.ok(ms < 1000, `a request took ${ms.toFixed(0)} ms while Redis was down`);
      return res;
    };
    // failOpen: served, limited per process meanwhile (each gateway counts 5 on its own).
    const openStatuses = [];
    for (let i = 0; i < 6; i++) openStatuses.push((await timed(() => pull(gatewayA, client))).status);
    assert.deepEqual(openStatuses, [200, 200, 200, 200, 200, 429]);
    assert.equal((await timed(() => pull(gatewayB, client))).status, 200, "B counts alone while Redis is down");
    // Requests no limit counts do not need Redis at all.
    assert.equal((await timed(() => pull(failClosed, client, HUB, "HEAD"))).status, 200);
    const closed = await timed(() => pull(failClosed, client));
    assertRegistryError(closed, 503, "UNAVAILABLE");
    assert.equal(closed.headers["retry-after"], "1");
    // Each of a gateway's Redis users (rate limits, upload records) logs its own transition, once.
    for (const gw of [gatewayA, gatewayB, failClosed]) {
      const down = gw.logs.filter((l) => typeof l.msg === "string" && l.msg.startsWith("Redis unavailable")).map((l) => String(l.msg));
      assert.equal(down.filter((msg) => !msg.includes("upload sessions")).length, 1, `the rate limits' transition logged once: ${down.join(" | ")}`);
      assert.equal(new Set(down).size, down.length, `each transition logged once: ${down.join(" | ")}`);
    }

    await redis.start();
    await waitFor(() => gateways.slice(0, 3).every((gw) => gw.logs.some((l) => l.msg === "Redis is back: rate limits are shared again")), {
      timeoutMs: 5000,
      what: "every gateway to reconnect to Redis",
    });
    const again = newClient();
    const statuses = [];
    for (let i = 0; i < 6; i++) statuses.push((await pull([gatewayA, gatewayB, failClosed][i % 3]!, again)).status);
    assert.deepEqual(statuses, [200, 200, 200, 200, 200, 429]);
  });

  it("skopeo copies a 3-layer image under a pull limit of 1 per minute (one pull = one manifest GET)", async () => {
    // The embedded in-memory limiter this time (no redis), keyed by the socket address.
    const limited = await gateway({
      sites: [{ name: "hub", hosts: [HUB], backend: hub.url, limits: [{ name: "pulls", operations: ["pull"], rate: 1, per: "1m", burst: 1 }] }],
    });
    const hosts = await hostsFile(workDir, { [HUB]: "127.0.0.1" });
    const certs = await certDir(limited.caPem);
    const out = join(workDir, "pulled");
    const args = ["copy", "--src-cert-dir", certs, `docker://${HUB}:${limited.port}/hub/app:v1`, `oci:${out}:v1`];
    const result = await skopeo(args, { hosts, timeoutMs: 60_000 });
    assert.equal(result.code, 0, formatRun("skopeo", args, result));
    const index = JSON.parse(await readFile(join(out, "index.json"), "utf8")) as { manifests: { digest: string }[] };
    assert.equal(index.manifests[0]!.digest, image.manifestDigest);
    // The limit was in force: the copy used the one pull there was.
    const next = await limited.request(HUB, { path: "/v2/hub/app/manifests/v1", headers: { accept: OCI_MANIFEST } });
    assertRegistryError(next, 429, "TOOMANYREQUESTS");
  });
});
