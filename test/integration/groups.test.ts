// A site fronting several registries. A group (members tried in order for
// pulls, pushes to pushTo), repository-prefix routes (longest prefix wins), the catalog and tag lists the
// gateway merges and paginates itself, and docker search over the merged catalog. Group namespaces: a
// name pushTo owns is never served by another member, whether pushTo lacks it, is down or answers 5xx
// (a cache after the hosted registry would otherwise supply whatever is published under that name).
//
// Every member is a real distribution registry with its access log on: its own log is the oracle for
// "which member served it" (and for the 404 a member gave before the next one answered).
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import type { AccessRuleConfig } from "../../src/config/schema.js";
import { certDir, cleanupClients, hostsFile, skopeo } from "../helpers/clients.js";
import { startDockerEngine, type DockerClient, type DockerEngine } from "../helpers/docker.js";
import { startTestGateway, type GatewayResponse, type TestGateway } from "../helpers/gateway.js";
import { htpasswdLine } from "../helpers/htpasswd.js";
import { delta, scrape, type Samples } from "../helpers/metrics.js";
import { buildOciImage, OCI_MANIFEST, sha256Digest, type OciImage } from "../helpers/oci.js";
import { formatRun, waitFor, type RunResult } from "../helpers/process.js";
import { accessLog, startRegistry, type AccessLogLine, type Registry } from "../helpers/registry.js";
import { pushTinyImage, type TinyImage } from "../helpers/seed.js";

const GROUP = "group.registry.test"; // group hosted → cache (lib/** only), pushTo hosted (owns the rest)
const READONLY = "readonly.registry.test"; // the same members, no pushTo
const LISTS = "lists.registry.test"; // group m1 → m2, for merged catalog and tags
const SEARCH = "search.registry.test"; // the same group as LISTS, htpasswd auth
const ROUTED = "routed.registry.test"; // default backend + team-a/ + team-a/special/ routes
const DOWN = "down.registry.test"; // group doomed → live; doomed is stopped mid-file
const DOWN_PUSH = "down-push.registry.test"; // the same, with the stopped member as pushTo (live: alive/** only)
const FLAKY = "flaky.registry.test"; // group broken (answers 500 to everything) → live
const FLAKY_PUSH = "flaky-push.registry.test"; // the same, broken as pushTo owning team/**
const ALL_HOSTS = [GROUP, READONLY, LISTS, SEARCH, ROUTED, DOWN, DOWN_PUSH, FLAKY, FLAKY_PUSH];

const PASSED_OVER = "registry_gateway_group_passed_over_total";
const SEED_UA = "seed/groups";
const ACCEPT_MANIFESTS = [OCI_MANIFEST, "application/vnd.docker.distribution.manifest.v2+json"].join(", ");

const RULES: AccessRuleConfig[] = [
  { who: ["admin"], repositories: ["**"], actions: ["pull", "push", "delete", "catalog"] },
  // reader may pull everything but b/**: search must hide b/y from it, whichever member holds it.
  { who: ["reader"], repositories: ["b/**"], actions: [] },
  { who: ["reader"], repositories: ["**"], actions: ["pull"] },
];

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;

function assertRan(what: string, args: readonly string[], result: RunResult): void {
  assert.equal(result.code, 0, formatRun(what, args, result));
}

function assertRegistryError(res: GatewayResponse, status: number, code: string): void {
  assert.equal(res.status, status, res.body.toString());
  assert.equal(res.headers["content-type"], "application/json; charset=utf-8");
  assert.equal(res.headers["docker-distribution-api-version"], "registry/2.0");
  const body = res.json();
  assert.equal(body.errors[0].code, code);
  assert.equal(typeof body.errors[0].message, "string");
  assert.ok(body.errors[0].message.length > 10, `a clear message: ${body.errors[0].message}`);
}

/** A registry's own catalog, read directly (not through the gateway). */
async function catalogOf(registry: Registry): Promise<string[]> {
  const res = await fetch(`${registry.url}/v2/_catalog`);
  assert.equal(res.status, 200);
  return ((await res.json()) as { repositories: string[] }).repositories;
}

/** A manifest's status on a registry, read directly. */
async function manifestStatus(registry: Registry, repository: string, reference: string): Promise<number> {
  const res = await fetch(`${registry.url}/v2/${repository}/manifests/${reference}`, { method: "HEAD", headers: { accept: ACCEPT_MANIFESTS } });
  return res.status;
}

/** Access-log lines a registry wrote after `mark` lines (see logMark), for one repository. */
function linesSince(registry: Registry, mark: number, repository?: string): AccessLogLine[] {
  return accessLog(registry)
    .slice(mark)
    .filter((line) => repository === undefined || line.uri.startsWith(`/v2/${repository}/`));
}

const logMark = (registry: Registry) => accessLog(registry).length;

/** An OCI layout's image, copied by skopeo straight into a registry (plain HTTP, not through the gateway). */
async function seedOci(registry: Registry, image: OciImage, repository: string, tag: string): Promise<TinyImage> {
  const args = ["copy", "--dest-tls-verify=false", image.ociRef, `docker://${registry.host}/${repository}:${tag}`];
  assertRan("skopeo seed", args, await skopeo(args, { timeoutMs: 60_000 }));
  const manifest = await readFile(join(image.dir, "blobs", "sha256", image.manifestDigest.slice("sha256:".length)));
  assert.equal(sha256Digest(manifest), image.manifestDigest);
  return { repository, tag, manifest, manifestDigest: image.manifestDigest, configDigest: image.configDigest, layerDigest: image.layerDigests[0]! };
}

/** The target of a `Link: <…>; rel="next"` header; null when there is none. */
function nextOf(res: GatewayResponse): string | null {
  const link = res.headers.link;
  if (link === undefined) return null;
  const match = /^<([^>]+)>; rel="next"$/.exec(String(link));
  assert.ok(match, `a Link header of the distribution form: ${String(link)}`);
  return match[1]!;
}

describe("groups, prefix routes and merged lists", { timeout: 180_000 }, () => {
  let workDir: string;
  let hosted: Registry;
  let cache: Registry;
  let m1: Registry;
  let m2: Registry;
  let def: Registry;
  let teamA: Registry;
  let special: Registry;
  let doomed: Registry;
  let live: Registry;
  /** A "registry" answering 500 to every request, counting what it was asked. */
  let broken: Server;
  const brokenRequests: string[] = [];
  let gateway: TestGateway;
  let certs: string;
  let hosts: string;
  let image: OciImage;
  /** Real gzip layers (skopeo keeps its digests), for what skopeo pulls. */
  let cacheImage: OciImage;
  /** Only in the group's SECOND member. */
  let cacheOnly: TinyImage;
  /** In both members, with different content. */
  let inHosted: TinyImage;
  let inCacheToo: TinyImage;
  /** Only in the live member of the down sites. */
  let alive: TinyImage;
  /**
   * team/svc, a name pushTo owns: ours in hosted (v1) and doomed (v1); an attacker's in cache (v1, v2) and
   * in live (v1), as a public cache would hold it once someone publishes the name upstream.
   */
  let ownSvc: TinyImage;
  let doomedSvc: TinyImage;
  let evilSvc: TinyImage;
  let evilSvcV2: TinyImage;
  let evilLiveSvc: TinyImage;

  const ref = (host: string, repository: string, tag: string) => `docker://${host}:${gateway.port}/${repository}:${tag}`;
  const metricsNow = (): Promise<Samples> => scrape(gateway.admin.port);
  const passedOver = (before: Samples, after: Samples, site: string, member: string, reason: "not_found" | "error") =>
    delta(before, after, PASSED_OVER, { site, member, reason });

  before(async () => {
    workDir = await mkdtemp(join(tmpdir(), "rg-groups-"));
    const [registries, images] = await Promise.all([
      Promise.all(Array.from({ length: 9 }, () => startRegistry({ accessLog: true }))),
      Promise.all([
        buildOciImage(join(workDir, "image"), { layers: 1, layerSize: 64 * 1024, tag: "v1" }),
        buildOciImage(join(workDir, "cache-image"), { layers: 1, layerSize: 32 * 1024, tag: "v1" }),
      ]),
    ]);
    [hosted, cache, m1, m2, def, teamA, special, doomed, live] = registries as [Registry, Registry, Registry, Registry, Registry, Registry, Registry, Registry, Registry];
    [image, cacheImage] = images;

    // group: lib/only-in-cache only in cache; lib/both in both, with different content; team/svc and
    // evil/only-in-cache (names hosted owns) as described above.
    [cacheOnly, inHosted, inCacheToo, ownSvc, evilSvc, doomedSvc, evilLiveSvc] = await Promise.all([
      seedOci(cache, cacheImage, "lib/only-in-cache", "v1"),
      pushTinyImage(hosted.url, "lib/both", "v1", SEED_UA),
      pushTinyImage(cache.url, "lib/both", "v1", SEED_UA),
      pushTinyImage(hosted.url, "team/svc", "v1", SEED_UA),
      pushTinyImage(cache.url, "team/svc", "v1", SEED_UA),
      pushTinyImage(doomed.url, "team/svc", "v1", SEED_UA),
      pushTinyImage(live.url, "team/svc", "v1", SEED_UA),
      pushTinyImage(cache.url, "evil/only-in-cache", "v1", SEED_UA),
    ]);
    evilSvcV2 = await pushTinyImage(cache.url, "team/svc", "v2", SEED_UA);
    // lists: a/x, b/y in m1; b/y, c/z, d/w in m2; b/y's tags differ (and overlap) between them.
    await Promise.all([
      (async () => {
        for (const [repository, tag] of [["a/x", "v1"], ["b/y", "v1"], ["b/y", "shared"]]) await pushTinyImage(m1.url, repository!, tag!, SEED_UA);
      })(),
      (async () => {
        for (const [repository, tag] of [["b/y", "v2"], ["b/y", "shared"], ["b/y", "1.0"], ["c/z", "v1"], ["d/w", "v1"]]) {
          await pushTinyImage(m2.url, repository!, tag!, SEED_UA);
        }
      })(),
      // routes: a name under team-a/ held by the default backend, which no request can reach through the site.
      pushTinyImage(def.url, "team-a/hidden", "v1", SEED_UA),
      pushTinyImage(doomed.url, "gone/app", "v1", SEED_UA),
      pushTinyImage(live.url, "alive/app", "v1", SEED_UA).then((seeded) => (alive = seeded)),
    ]);

    broken = createServer((req, res) => {
      brokenRequests.push(`${req.method} ${req.url}`);
      res.writeHead(500, { "content-type": "application/json" }).end('{"errors":[{"code":"UNKNOWN","message":"storage failure"}]}');
    });
    await new Promise<void>((resolve) => broken.listen(0, "127.0.0.1", resolve));

    const htpasswd = join(workDir, "htpasswd");
    await writeFile(htpasswd, `${(await Promise.all([htpasswdLine("admin", "Admin123"), htpasswdLine("reader", "Reader123")])).join("\n")}\n`);
    gateway = await startTestGateway({
      // Members stop and change between list reads here: every read asks them (the cache is tested below).
      lists: { cacheFor: 0 },
      sites: [
        {
          name: "group",
          hosts: [GROUP],
          default: true,
          group: [
            { name: "hosted", backend: hosted.url },
            { name: "cache", backend: cache.url, repositories: ["lib/**"] },
          ],
          pushTo: "hosted",
        },
        {
          name: "readonly",
          hosts: [READONLY],
          group: [
            { name: "hosted", backend: hosted.url },
            { name: "cache", backend: cache.url },
          ],
        },
        {
          name: "lists",
          hosts: [LISTS],
          group: [
            { name: "m1", backend: m1.url },
            { name: "m2", backend: m2.url },
          ],
        },
        {
          name: "search",
          hosts: [SEARCH],
          group: [
            { name: "m1", backend: m1.url },
            { name: "m2", backend: m2.url },
          ],
          auth: { type: "htpasswd", htpasswd, rules: RULES },
        },
        {
          name: "routed",
          hosts: [ROUTED],
          backend: def.url,
          routes: [
            { prefix: "team-a/", backend: teamA.url },
            { prefix: "team-a/special/", backend: special.url },
          ],
        },
        {
          name: "down",
          hosts: [DOWN],
          group: [
            { name: "doomed", backend: doomed.url },
            { name: "live", backend: live.url },
          ],
        },
        {
          name: "down-push",
          hosts: [DOWN_PUSH],
          group: [
            { name: "hosted", backend: doomed.url },
            { name: "cache", backend: live.url, repositories: ["alive/**"] },
          ],
          pushTo: "hosted",
        },
        {
          name: "flaky",
          hosts: [FLAKY],
          group: [
            { name: "broken", backend: `http://127.0.0.1:${(broken.address() as AddressInfo).port}` },
            { name: "live", backend: live.url },
          ],
        },
        {
          name: "flaky-push",
          hosts: [FLAKY_PUSH],
          group: [
            { name: "broken", backend: `http://127.0.0.1:${(broken.address() as AddressInfo).port}`, repositories: ["team/**"] },
            { name: "live", backend: live.url },
          ],
          pushTo: "broken",
        },
      ],
    });
    certs = await certDir(gateway.caPem);
    hosts = await hostsFile(workDir, Object.fromEntries(ALL_HOSTS.map((host) => [host, "127.0.0.1"])));
  });

  after(async () => {
    await gateway?.stop();
    if (broken) await new Promise((resolve) => broken.close(resolve));
    await Promise.all([hosted, cache, m1, m2, def, teamA, special, doomed, live].map((registry) => registry?.stop()));
    await cleanupClients();
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  describe("group pulls and pushes", () => {
    it("skopeo pulls an image only the SECOND member holds; the first member's own log shows the 404s it gave", async () => {
      const hostedMark = logMark(hosted);
      const cacheMark = logMark(cache);
      const before = await metricsNow();
      const out = join(workDir, "pulled-cache-only");
      const args = ["copy", "--src-cert-dir", certs, ref(GROUP, "lib/only-in-cache", "v1"), `oci:${out}:v1`];
      assertRan("skopeo pull from the group", args, await skopeo(args, { hosts, timeoutMs: 60_000 }));
      const after = await metricsNow();

      // What skopeo got is the cache's image.
      const index = JSON.parse(await readFile(join(out, "index.json"), "utf8")) as { manifests: { digest: string }[] };
      assert.equal(index.manifests[0]!.digest, cacheOnly.manifestDigest);

      const hostedLines = linesSince(hosted, hostedMark, "lib/only-in-cache");
      const cacheLines = linesSince(cache, cacheMark, "lib/only-in-cache");
      // hosted was asked first, for the manifest and for each blob, and said 404 every time.
      assert.ok(
        hostedLines.some((l) => l.method === "GET" && l.uri === "/v2/lib/only-in-cache/manifests/v1" && l.status === 404 && /skopeo/i.test(l.userAgent)),
        `hosted's log shows the manifest 404 it gave skopeo:\n${hostedLines.map((l) => l.line).join("\n")}`,
      );
      for (const digest of [cacheOnly.configDigest, cacheOnly.layerDigest]) {
        assert.ok(hostedLines.some((l) => l.uri === `/v2/lib/only-in-cache/blobs/${digest}` && l.status === 404), `hosted 404 for blob ${digest}`);
        assert.ok(cacheLines.some((l) => l.method === "GET" && l.uri === `/v2/lib/only-in-cache/blobs/${digest}` && l.status === 200), `cache served blob ${digest}`);
      }
      assert.ok(hostedLines.every((l) => l.status === 404), hostedLines.map((l) => l.line).join("\n"));
      assert.ok(cacheLines.some((l) => l.method === "GET" && l.uri === "/v2/lib/only-in-cache/manifests/v1" && l.status === 200), "cache served the manifest");
      // Each of hosted's 404s is one pass-over, no more, no less; nothing counted as an error.
      assert.equal(passedOver(before, after, "group", "hosted", "not_found"), hostedLines.length);
      assert.equal(passedOver(before, after, "group", "hosted", "error"), 0);
      assert.equal(passedOver(before, after, "group", "cache", "not_found"), 0, "the last member is never passed over");
    });

    it("HEAD/GET the manifest by tag and by digest, and GET a blob, from the second member; each counted once", async () => {
      const hostedMark = logMark(hosted);
      const cacheMark = logMark(cache);
      const before = await metricsNow();
      const base = "/v2/lib/only-in-cache";
      const headers = { accept: ACCEPT_MANIFESTS };

      const headTag = await gateway.request(GROUP, { method: "HEAD", path: `${base}/manifests/v1`, headers });
      assert.equal(headTag.status, 200);
      assert.equal(headTag.headers["docker-content-digest"], cacheOnly.manifestDigest);
      assert.equal(headTag.headers["content-length"], String(cacheOnly.manifest.length));

      const getTag = await gateway.request(GROUP, { path: `${base}/manifests/v1`, headers });
      assert.equal(getTag.status, 200);
      assert.deepEqual(getTag.body, cacheOnly.manifest);

      const headDigest = await gateway.request(GROUP, { method: "HEAD", path: `${base}/manifests/${cacheOnly.manifestDigest}`, headers });
      assert.equal(headDigest.status, 200);
      assert.equal(headDigest.headers["docker-content-digest"], cacheOnly.manifestDigest);

      const getDigest = await gateway.request(GROUP, { path: `${base}/manifests/${cacheOnly.manifestDigest}`, headers });
      assert.equal(getDigest.status, 200);
      assert.equal(sha256Digest(getDigest.body), cacheOnly.manifestDigest);

      const blob = await gateway.request(GROUP, { path: `${base}/blobs/${cacheOnly.layerDigest}` });
      assert.equal(blob.status, 200);
      assert.equal(sha256Digest(blob.body), cacheOnly.layerDigest);

      const after = await metricsNow();
      assert.equal(passedOver(before, after, "group", "hosted", "not_found"), 5, "five requests, each passed over by hosted once");
      assert.equal(passedOver(before, after, "group", "hosted", "error"), 0);
      const hostedLines = linesSince(hosted, hostedMark, "lib/only-in-cache");
      assert.deepEqual(
        hostedLines.map((l) => `${l.method} ${l.status}`),
        ["HEAD 404", "GET 404", "HEAD 404", "GET 404", "GET 404"],
      );
      assert.deepEqual(
        linesSince(cache, cacheMark, "lib/only-in-cache").map((l) => `${l.method} ${l.status}`),
        ["HEAD 200", "GET 200", "HEAD 200", "GET 200", "GET 200"],
      );
    });

    it("answers from the FIRST member holding the image: the second is never asked, nothing is counted", async () => {
      const cacheMark = logMark(cache);
      const before = await metricsNow();
      const res = await gateway.request(GROUP, { path: "/v2/lib/both/manifests/v1", headers: { accept: ACCEPT_MANIFESTS } });
      assert.equal(res.status, 200);
      assert.equal(sha256Digest(res.body), inHosted.manifestDigest);
      assert.notEqual(inHosted.manifestDigest, inCacheToo.manifestDigest);
      const after = await metricsNow();
      assert.equal(passedOver(before, after, "group", "hosted", "not_found"), 0);
      assert.deepEqual(linesSince(cache, cacheMark, "lib/both"), []);
    });

    it("a name no member holds: the last member's 404 is relayed, in distribution's JSON", async () => {
      const before = await metricsNow();
      const res = await gateway.request(GROUP, { path: "/v2/lib/nowhere/manifests/v1", headers: { accept: ACCEPT_MANIFESTS } });
      assertRegistryError(res, 404, "MANIFEST_UNKNOWN");
      const after = await metricsNow();
      assert.equal(passedOver(before, after, "group", "hosted", "not_found"), 1);
      assert.equal(passedOver(before, after, "group", "cache", "not_found"), 0);
    });

    it("skopeo pushes to the group: the image lands in pushTo (hosted) and nowhere else", async () => {
      const hostedMark = logMark(hosted);
      const cacheMark = logMark(cache);
      const args = ["copy", "--dest-cert-dir", certs, image.ociRef, ref(GROUP, "pushed/app", "v1")];
      assertRan("skopeo push to the group", args, await skopeo(args, { hosts, timeoutMs: 60_000 }));

      assert.ok((await catalogOf(hosted)).includes("pushed/app"), "in hosted's catalog");
      assert.ok(!(await catalogOf(cache)).includes("pushed/app"), "not in cache's catalog");
      assert.equal(await manifestStatus(hosted, "pushed/app", image.manifestDigest), 200);
      assert.equal(await manifestStatus(cache, "pushed/app", image.manifestDigest), 404);
      const hostedLines = linesSince(hosted, hostedMark, "pushed/app");
      assert.ok(hostedLines.some((l) => l.method === "PUT" && l.uri === "/v2/pushed/app/manifests/v1" && l.status === 201), "the manifest PUT hit hosted");
      assert.ok(hostedLines.some((l) => l.method === "POST" && l.uri.startsWith("/v2/pushed/app/blobs/uploads/") && l.status === 202), "uploads started on hosted");
      // cache may be asked whether a blob exists (a HEAD is a pull-side request), never sent anything.
      const cacheLines = linesSince(cache, cacheMark, "pushed/app");
      assert.deepEqual(cacheLines.filter((l) => l.method !== "HEAD" && l.method !== "GET"), [], cacheLines.map((l) => l.line).join("\n"));

      // And it pulls back through the group, from hosted.
      const res = await gateway.request(GROUP, { method: "HEAD", path: "/v2/pushed/app/manifests/v1", headers: { accept: ACCEPT_MANIFESTS } });
      assert.equal(res.status, 200);
      assert.equal(res.headers["docker-content-digest"], image.manifestDigest);
    });

    it("skopeo re-tags, within the group, an image only the second member holds: the new tag lands in pushTo", async () => {
      // A common promotion: pull-through-cached image → pinned tag in the hosted registry, by pushing to the group.
      const args = ["copy", "--src-cert-dir", certs, "--dest-cert-dir", certs, ref(GROUP, "lib/only-in-cache", "v1"), ref(GROUP, "lib/only-in-cache", "pinned")];
      const hostedMark = logMark(hosted);
      const result = await skopeo(args, { hosts, timeoutMs: 60_000 });
      const hostedLines = linesSince(hosted, hostedMark, "lib/only-in-cache").map((l) => l.line);
      assert.equal(result.code, 0, `${formatRun("skopeo re-tag in the group", args, result)}\n--- hosted's log ---\n${hostedLines.join("\n")}`);
      assert.equal(await manifestStatus(hosted, "lib/only-in-cache", "pinned"), 200, "the pinned tag is in hosted");
      assert.equal(await manifestStatus(cache, "lib/only-in-cache", "pinned"), 404, "and not in cache");
    });

    it("a group without pushTo refuses pushes with 405 UNSUPPORTED, a clear message, and sends nothing to a member", async () => {
      const hostedMark = logMark(hosted);
      const cacheMark = logMark(cache);
      const start = await gateway.request(READONLY, { method: "POST", path: "/v2/lib/new/blobs/uploads/" });
      assertRegistryError(start, 405, "UNSUPPORTED");
      assert.match(start.json().errors[0].message, /group without pushTo/);

      const put = await gateway.request(READONLY, {
        method: "PUT",
        path: "/v2/lib/both/manifests/v2",
        headers: { "content-type": OCI_MANIFEST },
        body: inHosted.manifest,
      });
      assertRegistryError(put, 405, "UNSUPPORTED");
      const del = await gateway.request(READONLY, { method: "DELETE", path: `/v2/lib/both/manifests/${inHosted.manifestDigest}` });
      assertRegistryError(del, 405, "UNSUPPORTED");

      // Pulls still work there; once both members have logged that pull (hosted answers it 404 first), any
      // line a refused request had caused would be in their logs too.
      const pull = await gateway.request(READONLY, { method: "HEAD", path: "/v2/lib/only-in-cache/manifests/v1", headers: { accept: ACCEPT_MANIFESTS } });
      assert.equal(pull.status, 200);
      const pulled = (registry: Registry, mark: number) => () => linesSince(registry, mark, "lib/only-in-cache").length > 0;
      await waitFor(pulled(hosted, hostedMark), { what: "hosted's log line of the pull" });
      await waitFor(pulled(cache, cacheMark), { what: "the cache's log line of the pull" });
      // Only the refused requests' own paths count: a line an earlier test's request left in a registry's log
      // a moment late (or a health check's GET /v2/) is not one of these.
      const refusedPaths = (l: { uri: string }) => l.uri.startsWith("/v2/lib/new/") || l.uri.startsWith("/v2/lib/both/manifests/");
      assert.deepEqual(linesSince(hosted, hostedMark).filter(refusedPaths), []);
      assert.deepEqual(linesSince(cache, cacheMark).filter(refusedPaths), []);
    });
  });

  describe("names pushTo owns (group namespaces)", () => {
    /** A manifest request to the group by tag. */
    const manifest = (host: string, repository: string, tag: string, method = "GET") =>
      gateway.request(host, { method, path: `/v2/${repository}/manifests/${tag}`, headers: { accept: ACCEPT_MANIFESTS } });

    it("a tag hosted does not have yet: hosted's 404, never the cache's copy; the cache is not even asked", async () => {
      const hostedMark = logMark(hosted);
      const cacheMark = logMark(cache);
      const before = await metricsNow();
      assertRegistryError(await manifest(GROUP, "team/svc", "v2"), 404, "MANIFEST_UNKNOWN");
      assert.equal((await manifest(GROUP, "team/svc", "v2", "HEAD")).status, 404);
      assertRegistryError(await gateway.request(GROUP, { path: `/v2/team/svc/blobs/${evilSvcV2.layerDigest}` }), 404, "BLOB_UNKNOWN");
      // A real client pulling it fails too.
      const args = ["copy", "--src-cert-dir", certs, ref(GROUP, "team/svc", "v2"), `oci:${join(workDir, "pulled-svc-v2")}:v2`];
      const pull = await skopeo(args, { hosts, timeoutMs: 60_000 });
      assert.notEqual(pull.code, 0, formatRun("skopeo pull of team/svc:v2", args, pull));
      // The tag hosted has is hosted's content, not the cache's.
      const v1 = await manifest(GROUP, "team/svc", "v1");
      assert.equal(v1.status, 200);
      assert.equal(sha256Digest(v1.body), ownSvc.manifestDigest);
      assert.notEqual(ownSvc.manifestDigest, evilSvc.manifestDigest);
      const after = await metricsNow();

      assert.deepEqual(linesSince(cache, cacheMark, "team/svc"), [], "the cache was never asked for team/svc");
      const hostedLines = linesSince(hosted, hostedMark, "team/svc");
      assert.ok(hostedLines.some((l) => l.uri === "/v2/team/svc/manifests/v2" && l.status === 404 && /skopeo/i.test(l.userAgent)), "hosted gave skopeo its 404");
      assert.equal(passedOver(before, after, "group", "hosted", "not_found"), 0, "nothing passed over");
    });

    it("tag lists and the catalog leave out what the cache holds under names hosted owns", async () => {
      const cacheMark = logMark(cache);
      const tags = await gateway.request(GROUP, { path: "/v2/team/svc/tags/list" });
      assert.equal(tags.status, 200);
      assert.deepEqual(tags.json(), { name: "team/svc", tags: ["v1"] }, "v2 (the cache's) is not listed");
      assertRegistryError(await gateway.request(GROUP, { path: "/v2/evil/only-in-cache/tags/list" }), 404, "NAME_UNKNOWN");
      assert.deepEqual(linesSince(cache, cacheMark, "team/svc"), []);
      assert.deepEqual(linesSince(cache, cacheMark, "evil/only-in-cache"), []);

      assert.ok((await catalogOf(cache)).includes("evil/only-in-cache"), "the cache does hold evil/only-in-cache");
      const catalog = (await gateway.request(GROUP, { path: "/v2/_catalog" })).json().repositories as string[];
      assert.ok(catalog.includes("lib/only-in-cache") && catalog.includes("team/svc"), catalog.join(" "));
      assert.ok(!catalog.includes("evil/only-in-cache"), catalog.join(" "));
    });

    it("pushTo answering 5xx for a name it owns: 503 UNAVAILABLE, never the next member's copy; other names skip pushTo", async () => {
      const marked = brokenRequests.length;
      const liveMark = logMark(live);
      assertRegistryError(await manifest(FLAKY_PUSH, "team/svc", "v1"), 503, "UNAVAILABLE");
      assert.equal((await manifest(FLAKY_PUSH, "team/svc", "v1", "HEAD")).status, 503);
      const blob = await gateway.request(FLAKY_PUSH, { path: `/v2/team/svc/blobs/${evilLiveSvc.layerDigest}` });
      assertRegistryError(blob, 503, "UNAVAILABLE");
      assert.ok(!blob.body.toString().includes("storage failure"), "pushTo's own error body is not relayed");
      assert.deepEqual(brokenRequests.slice(marked), [
        "GET /v2/team/svc/manifests/v1",
        "HEAD /v2/team/svc/manifests/v1",
        `GET /v2/team/svc/blobs/${evilLiveSvc.layerDigest}`,
      ]);
      // A name broken does not serve: live alone, broken never asked.
      const res = await manifest(FLAKY_PUSH, "alive/app", "v1");
      assert.equal(res.status, 200);
      assert.equal(sha256Digest(res.body), alive.manifestDigest);
      assert.equal(brokenRequests.length, marked + 3);
      assert.deepEqual(linesSince(live, liveMark, "team/svc"), [], "live was never asked for team/svc");
    });

    it("a push of a name pushTo does not serve, or mounting from one, is refused 403 DENIED before any member sees it", async () => {
      const marked = brokenRequests.length;
      const liveMark = logMark(live);
      const outside = await gateway.request(FLAKY_PUSH, { method: "POST", path: "/v2/other/app/blobs/uploads/" });
      assertRegistryError(outside, 403, "DENIED");
      assert.match(outside.json().errors[0].message, /other\/app is not among the repositories/);
      const mount = await gateway.request(FLAKY_PUSH, { method: "POST", path: `/v2/team/new/blobs/uploads/?mount=${alive.layerDigest}&from=alive/app` });
      assertRegistryError(mount, 403, "DENIED");
      assert.match(mount.json().errors[0].message, /cannot mount from alive\/app/);
      assert.equal(brokenRequests.length, marked);
      assert.deepEqual(linesSince(live, liveMark).filter((l) => l.uri !== "/v2/"), []);
    });
  });

  describe("merged catalog and tags", () => {
    it("merges the members' catalogs into one sorted list without duplicates", async () => {
      const res = await gateway.request(LISTS, { path: "/v2/_catalog" });
      assert.equal(res.status, 200);
      assert.equal(res.headers["docker-distribution-api-version"], "registry/2.0");
      assert.equal(res.headers.link, undefined);
      assert.deepEqual(res.json(), { repositories: ["a/x", "b/y", "c/z", "d/w"] });
    });

    it("paginates with n, last and Link; following the Links yields every repository exactly once", async () => {
      const first = await gateway.request(LISTS, { path: "/v2/_catalog?n=2" });
      assert.equal(first.status, 200);
      assert.deepEqual(first.json().repositories, ["a/x", "b/y"]);
      assert.equal(first.headers.link, '</v2/_catalog?last=b%2Fy&n=2>; rel="next"');

      const seen: string[] = [];
      let path: string | null = "/v2/_catalog?n=1";
      let pages = 0;
      while (path !== null) {
        assert.ok(++pages <= 10, "the Links end");
        const page = await gateway.request(LISTS, { path });
        assert.equal(page.status, 200, path);
        const names = page.json().repositories as string[];
        assert.equal(names.length, 1, path);
        seen.push(...names);
        path = nextOf(page);
      }
      assert.deepEqual(seen, ["a/x", "b/y", "c/z", "d/w"]);
      assert.equal(pages, 4);

      const after = await gateway.request(LISTS, { path: "/v2/_catalog?n=2&last=b/y" });
      assert.deepEqual(after.json().repositories, ["c/z", "d/w"]);
      assert.equal(after.headers.link, undefined, "nothing follows d/w");
      const afterEncoded = await gateway.request(LISTS, { path: "/v2/_catalog?n=2&last=b%2Fy" });
      assert.deepEqual(afterEncoded.json().repositories, ["c/z", "d/w"]);
      // last need not be in the list.
      const between = await gateway.request(LISTS, { path: "/v2/_catalog?n=1&last=b" });
      assert.deepEqual(between.json().repositories, ["b/y"]);
      assert.equal(between.headers.link, '</v2/_catalog?last=b%2Fy&n=1>; rel="next"');
    });

    it("n=0 gives an empty list and no Link; an invalid n is 400 PAGINATION_NUMBER_INVALID", async () => {
      const empty = await gateway.request(LISTS, { path: "/v2/_catalog?n=0" });
      assert.equal(empty.status, 200);
      assert.deepEqual(empty.json(), { repositories: [] });
      assert.equal(empty.headers.link, undefined);
      for (const n of ["-1", "abc", "1.5"]) {
        assertRegistryError(await gateway.request(LISTS, { path: `/v2/_catalog?n=${n}` }), 400, "PAGINATION_NUMBER_INVALID");
        assertRegistryError(await gateway.request(LISTS, { path: `/v2/b/y/tags/list?n=${n}` }), 400, "PAGINATION_NUMBER_INVALID");
      }
    });

    it("merges a repository's tags across members, sorted, deduplicated, and paginates them (distribution 2.8 does not)", async () => {
      // The members themselves ignore n on tags: the gateway's pagination is its own.
      const direct = (await (await fetch(`${m2.url}/v2/b/y/tags/list?n=1`)).json()) as { tags: string[] };
      assert.equal(direct.tags.length, 3, "distribution 2.8 ignores n on tags/list");

      const all = await gateway.request(LISTS, { path: "/v2/b/y/tags/list" });
      assert.equal(all.status, 200);
      assert.deepEqual(all.json(), { name: "b/y", tags: ["1.0", "shared", "v1", "v2"] });
      assert.equal(all.headers.link, undefined);

      const first = await gateway.request(LISTS, { path: "/v2/b/y/tags/list?n=2" });
      assert.deepEqual(first.json(), { name: "b/y", tags: ["1.0", "shared"] });
      assert.equal(first.headers.link, '</v2/b/y/tags/list?last=shared&n=2>; rel="next"');
      const second = await gateway.request(LISTS, { path: nextOf(first)! });
      assert.deepEqual(second.json(), { name: "b/y", tags: ["v1", "v2"] });
      assert.equal(second.headers.link, undefined);

      const afterShared = await gateway.request(LISTS, { path: "/v2/b/y/tags/list?n=1&last=shared" });
      assert.deepEqual(afterShared.json().tags, ["v1"]);
      assert.equal(afterShared.headers.link, '</v2/b/y/tags/list?last=v1&n=1>; rel="next"');
      const none = await gateway.request(LISTS, { path: "/v2/b/y/tags/list?n=0" });
      assert.deepEqual(none.json(), { name: "b/y", tags: [] });
      assert.equal(none.headers.link, undefined);

      // A repository only one member holds: the other's 404 is not an error.
      const onlyM2 = await gateway.request(LISTS, { path: "/v2/c/z/tags/list" });
      assert.deepEqual(onlyM2.json(), { name: "c/z", tags: ["v1"] });
      // None holds it: NAME_UNKNOWN.
      assertRegistryError(await gateway.request(LISTS, { path: "/v2/no/such/tags/list" }), 404, "NAME_UNKNOWN");
    });
  });

  describe("repository-prefix routes", () => {
    it("skopeo pushes land by longest prefix: team-a/special/ beats team-a/, anything else goes to the default", async () => {
      const marks = { def: logMark(def), teamA: logMark(teamA), special: logMark(special) };
      const pushes = [
        ["team-a/app", "v1"],
        ["team-a/special/tool", "v1"],
        ["other/app", "v1"],
      ] as const;
      await Promise.all(
        pushes.map(async ([repository, tag]) => {
          const args = ["copy", "--dest-cert-dir", certs, image.ociRef, ref(ROUTED, repository, tag)];
          assertRan(`skopeo push ${repository}`, args, await skopeo(args, { hosts, timeoutMs: 60_000 }));
        }),
      );
      const manifestPuts = (registry: Registry, mark: number) =>
        linesSince(registry, mark)
          .filter((l) => l.method === "PUT" && l.uri.includes("/manifests/") && l.status === 201)
          .map((l) => l.uri);
      assert.deepEqual(manifestPuts(teamA, marks.teamA), ["/v2/team-a/app/manifests/v1"]);
      assert.deepEqual(manifestPuts(special, marks.special), ["/v2/team-a/special/tool/manifests/v1"]);
      assert.deepEqual(manifestPuts(def, marks.def), ["/v2/other/app/manifests/v1"]);
      // No request for a repository reached a backend it does not route to.
      const repositoryUris = (registry: Registry, mark: number) => linesSince(registry, mark).map((l) => l.uri).filter((uri) => uri !== "/v2/");
      assert.ok(repositoryUris(def, marks.def).every((uri) => uri.startsWith("/v2/other/app/")), repositoryUris(def, marks.def).join("\n"));
      assert.ok(repositoryUris(teamA, marks.teamA).every((uri) => uri.startsWith("/v2/team-a/app/")), repositoryUris(teamA, marks.teamA).join("\n"));
      assert.ok(repositoryUris(special, marks.special).every((uri) => uri.startsWith("/v2/team-a/special/tool/")));
      assert.deepEqual(await catalogOf(teamA), ["team-a/app"]);
      assert.deepEqual(await catalogOf(special), ["team-a/special/tool"]);
    });

    it("merges the catalog across routes, each route contributing only names that route to it", async () => {
      assert.ok((await catalogOf(def)).includes("team-a/hidden"), "the default backend does hold team-a/hidden");
      const res = await gateway.request(ROUTED, { path: "/v2/_catalog" });
      assert.equal(res.status, 200);
      assert.deepEqual(res.json(), { repositories: ["other/app", "team-a/app", "team-a/special/tool"] });
      const paged = await gateway.request(ROUTED, { path: "/v2/_catalog?n=2" });
      assert.deepEqual(paged.json().repositories, ["other/app", "team-a/app"]);
      assert.equal(paged.headers.link, '</v2/_catalog?last=team-a%2Fapp&n=2>; rel="next"');
      // And the name is unreachable through the site: team-a/ routes to teamA, which does not have it.
      const hidden = await gateway.request(ROUTED, { path: "/v2/team-a/hidden/manifests/v1", headers: { accept: ACCEPT_MANIFESTS } });
      assertRegistryError(hidden, 404, "MANIFEST_UNKNOWN"); // distribution 2.8's answer for an unknown repository's manifest
    });

    it("a mount from a repository served by another route is refused before any backend sees it; within one route it mounts", async () => {
      const layer = image.layerDigests[0]!;
      const mark = logMark(teamA);
      const stray = await gateway.request(ROUTED, { method: "POST", path: `/v2/team-a/copy/blobs/uploads/?mount=${layer}&from=other/app` });
      // team-a's registry would have mounted from ITS other/app, a repository this site never serves.
      assertRegistryError(stray, 403, "DENIED");
      assert.match(stray.body.toString(), /cannot mount from other\/app/);
      assert.deepEqual(linesSince(teamA, mark).map((l) => l.uri), []);
      const same = await gateway.request(ROUTED, { method: "POST", path: `/v2/team-a/copy/blobs/uploads/?mount=${layer}&from=team-a/app` });
      assert.equal(same.status, 201, same.body.toString());
      assert.deepEqual(
        linesSince(teamA, mark).map((l) => `${l.method} ${l.status}`),
        ["POST 201"],
      );
    });

    it("tags of a routed repository come from its route's backend", async () => {
      const res = await gateway.request(ROUTED, { path: "/v2/team-a/special/tool/tags/list" });
      assert.equal(res.status, 200);
      assert.deepEqual(res.json(), { name: "team-a/special/tool", tags: ["v1"] });
    });
  });

  describe("docker search over a group", () => {
    it("lists repositories from both members, and hides what the caller may not pull", async () => {
      const names = (res: GatewayResponse) => (res.json() as { results: { name: string }[] }).results.map((r) => r.name);
      const admin = await gateway.request(SEARCH, { path: "/v1/search?q=&n=25", headers: { authorization: basic("admin", "Admin123") } });
      assert.equal(admin.status, 200);
      assert.deepEqual(names(admin), ["a/x", "b/y", "c/z", "d/w"]);
      assert.equal(admin.json().num_results, 4);

      const reader = await gateway.request(SEARCH, { path: "/v1/search?q=", headers: { authorization: basic("reader", "Reader123") } });
      assert.equal(reader.status, 200);
      // a/x is m1's alone, c/z and d/w m2's alone; b/y (both) is hidden.
      assert.deepEqual(names(reader), ["a/x", "c/z", "d/w"]);
      assert.equal(reader.json().num_results, 3);
      assert.ok(!reader.body.toString().includes("b/y"), "the hidden name appears nowhere in the answer");

      const term = await gateway.request(SEARCH, { path: "/v1/search?q=y", headers: { authorization: basic("reader", "Reader123") } });
      assert.deepEqual(names(term), []);
      const anonymous = await gateway.request(SEARCH, { path: "/v1/search?q=" });
      assert.equal(anonymous.status, 200);
      assert.deepEqual(names(anonymous), []);
    });
  });

  describe("merged lists are reused for lists.cacheFor, filtered per caller after the cache", () => {
    const CACHE_MS = 3000;
    let cached: TestGateway;

    before(async () => {
      // The file's main gateway keeps nothing (its members change between reads); this one keeps lists 3 s.
      cached = await startTestGateway({
        lists: { cacheFor: "3s" },
        sites: [
          { name: "lists", hosts: [LISTS], default: true, group: [{ name: "m1", backend: m1.url }, { name: "m2", backend: m2.url }] },
          { name: "routed", hosts: [ROUTED], backend: def.url, routes: [{ prefix: "team-a/", backend: teamA.url }] },
          {
            name: "search",
            hosts: [SEARCH],
            group: [{ name: "m1", backend: m1.url }, { name: "m2", backend: m2.url }],
            auth: { type: "htpasswd", htpasswd: join(workDir, "htpasswd"), rules: RULES },
          },
        ],
      });
    });

    after(async () => {
      await cached?.stop();
    });

    const catalogWalks = (registry: Registry, mark: number) => linesSince(registry, mark).filter((line) => line.uri.startsWith("/v2/_catalog")).length;

    it("20 requests for /v2/_catalog?n=1 through a group and through routes walk each member's catalog once", async () => {
      const members = [m1, m2, def, teamA];
      const marks = members.map(logMark);
      for (const host of [LISTS, ROUTED]) {
        // Half at once (sharing the fetch in flight), half after it settled (served from the cache).
        const concurrent = await Promise.all(Array.from({ length: 10 }, () => cached.request(host, { path: "/v2/_catalog?n=1" })));
        const sequential: GatewayResponse[] = [];
        for (let i = 0; i < 10; i++) sequential.push(await cached.request(host, { path: "/v2/_catalog?n=1" }));
        for (const res of [...concurrent, ...sequential]) {
          assert.equal(res.status, 200, res.body.toString());
          assert.equal(res.json().repositories.length, 1);
          assert.match(String(res.headers.link), /rel="next"/);
        }
      }
      assert.deepEqual(
        members.map((member, i) => catalogWalks(member, marks[i]!)),
        [1, 1, 1, 1],
        "each member's catalog read once for 20 pages through each site",
      );

      // A group's tag list likewise, per repository.
      const tagMarks = [m1, m2].map(logMark);
      for (let i = 0; i < 10; i++) assert.equal((await cached.request(LISTS, { path: "/v2/b/y/tags/list?n=1" })).status, 200);
      assert.deepEqual(
        [m1, m2].map((member, i) => linesSince(member, tagMarks[i]!, "b/y").filter((line) => line.uri.includes("/tags/list")).length),
        [1, 1],
      );

      // Once the period is over, the next request walks the members again.
      await sleep(CACHE_MS + 200);
      assert.equal((await cached.request(LISTS, { path: "/v2/_catalog?n=1" })).status, 200);
      assert.deepEqual([m1, m2].map((member, i) => catalogWalks(member, marks[i]!)), [2, 2]);
    });

    it("docker search shares one walk between callers, and each sees only what it may pull", async () => {
      const marks = [m1, m2].map(logMark);
      const search = (authorization: string) => cached.request(SEARCH, { path: "/v1/search?q=&n=25", headers: { authorization } });
      const names = async (authorization: string) => ((await search(authorization)).json().results as { name: string }[]).map((row) => row.name);
      assert.deepEqual(await names(basic("admin", "Admin123")), ["a/x", "b/y", "c/z", "d/w"]);
      assert.deepEqual(await names(basic("reader", "Reader123")), ["a/x", "c/z", "d/w"], "b/** is hidden from reader, cached list or not");
      assert.deepEqual(await names(basic("admin", "Admin123")), ["a/x", "b/y", "c/z", "d/w"]);
      assert.deepEqual([m1, m2].map((member, i) => catalogWalks(member, marks[i]!)), [1, 1]);
    });
  });

  describe("a member answering 5xx", () => {
    it("passes a 5xx over to the next member, counted as an error, its body never relayed", async () => {
      const marked = brokenRequests.length;
      const before = await metricsNow();
      const res = await gateway.request(FLAKY, { path: "/v2/alive/app/manifests/v1", headers: { accept: ACCEPT_MANIFESTS } });
      assert.equal(res.status, 200);
      assert.equal(sha256Digest(res.body), alive.manifestDigest);
      const blob = await gateway.request(FLAKY, { path: `/v2/alive/app/blobs/${alive.configDigest}` });
      assert.equal(blob.status, 200);
      const after = await metricsNow();
      assert.deepEqual(brokenRequests.slice(marked), ["GET /v2/alive/app/manifests/v1", `GET /v2/alive/app/blobs/${alive.configDigest}`]);
      assert.equal(passedOver(before, after, "flaky", "broken", "error"), 2);
      assert.equal(passedOver(before, after, "flaky", "broken", "not_found"), 0);
      // The broken member's body never reaches the client.
      assert.ok(!res.body.toString().includes("storage failure"));
    });
  });

  describe("a member down", () => {
    it("before: the catalog holds both members' repositories; team/svc (hosted's) comes from hosted", async () => {
      const res = await gateway.request(DOWN, { path: "/v2/_catalog" });
      assert.deepEqual(res.json(), { repositories: ["alive/app", "gone/app", "team/svc"] });
      const svc = await gateway.request(DOWN_PUSH, { path: "/v2/team/svc/manifests/v1", headers: { accept: ACCEPT_MANIFESTS } });
      assert.equal(svc.status, 200);
      assert.equal(sha256Digest(svc.body), doomedSvc.manifestDigest);
    });

    it("with the first member stopped, manifest and blob pulls are served by the other, each pass-over counted as an error", async () => {
      await doomed.stop();
      const liveMark = logMark(live);
      const before = await metricsNow();
      for (const host of [DOWN, DOWN_PUSH]) {
        const head = await gateway.request(host, { method: "HEAD", path: "/v2/alive/app/manifests/v1", headers: { accept: ACCEPT_MANIFESTS } });
        assert.equal(head.status, 200, host);
        assert.equal(head.headers["docker-content-digest"], alive.manifestDigest);
        const blob = await gateway.request(host, { path: `/v2/alive/app/blobs/${alive.layerDigest}` });
        assert.equal(blob.status, 200, host);
        assert.equal(sha256Digest(blob.body), alive.layerDigest);
      }
      const after = await metricsNow();
      assert.equal(passedOver(before, after, "down", "doomed", "error"), 2, "each refused connection counted once, as an error");
      assert.equal(passedOver(before, after, "down-push", "hosted", "error"), 2);
      assert.equal(passedOver(before, after, "down", "doomed", "not_found"), 0);
      assert.equal(linesSince(live, liveMark, "alive/app").filter((l) => l.status === 200).length, 4, "live served all four");

      // What only the stopped member held is simply not found (the live member's 404), not a gateway error.
      const gone = await gateway.request(DOWN, { path: "/v2/gone/app/manifests/v1", headers: { accept: ACCEPT_MANIFESTS } });
      assertRegistryError(gone, 404, "MANIFEST_UNKNOWN");
    });

    it("with pushTo stopped, a name it owns is 503 UNAVAILABLE, never the live member's copy; live is not asked", async () => {
      const liveMark = logMark(live);
      const path = "/v2/team/svc/manifests/v1";
      assertRegistryError(await gateway.request(DOWN_PUSH, { path, headers: { accept: ACCEPT_MANIFESTS } }), 503, "UNAVAILABLE");
      assert.equal((await gateway.request(DOWN_PUSH, { method: "HEAD", path, headers: { accept: ACCEPT_MANIFESTS } })).status, 503);
      assertRegistryError(await gateway.request(DOWN_PUSH, { path: `/v2/team/svc/blobs/${evilLiveSvc.layerDigest}` }), 503, "UNAVAILABLE");
      // Its tags cannot be listed either: pushTo alone may answer.
      assertRegistryError(await gateway.request(DOWN_PUSH, { path: "/v2/team/svc/tags/list" }), 502, "UNAVAILABLE");
      assert.deepEqual(linesSince(live, liveMark, "team/svc"), [], "live was never asked for team/svc");
      // The same members without namespaces (DOWN) do serve live's copy: what the attacker relies on.
      const open = await gateway.request(DOWN, { path: "/v2/team/svc/manifests/v1", headers: { accept: ACCEPT_MANIFESTS } });
      assert.equal(sha256Digest(open.body), evilLiveSvc.manifestDigest);
    });

    it("the catalog and tag lists still answer, from the live member", async () => {
      const before = await metricsNow();
      const catalog = await gateway.request(DOWN, { path: "/v2/_catalog" });
      assert.equal(catalog.status, 200);
      assert.deepEqual(catalog.json(), { repositories: ["alive/app", "team/svc"] });
      const tags = await gateway.request(DOWN, { path: "/v2/alive/app/tags/list" });
      assert.equal(tags.status, 200);
      assert.deepEqual(tags.json(), { name: "alive/app", tags: ["v1"] });
      const after = await metricsNow();
      assert.equal(passedOver(before, after, "down", "doomed", "error"), 2, "the member left out of each list is counted");
    });

    it("the /v2/ version check still answers, so real clients can pull (skopeo)", async () => {
      // Every client asks GET /v2/ before anything else; when that fails the pull fails, whatever the
      // live member holds ("can't talk to a V1 container registry").
      for (const host of [DOWN, DOWN_PUSH]) {
        const ping = await gateway.request(host, { path: "/v2/" });
        assert.equal(ping.status, 200, `${host} GET /v2/ with its first member / pushTo stopped: ${ping.status} ${ping.body.toString()}`);
      }
      const liveMark = logMark(live);
      const out = join(workDir, "pulled-alive");
      const args = ["copy", "--src-cert-dir", certs, ref(DOWN, "alive/app", "v1"), `oci:${out}:v1`];
      assertRan("skopeo pull with a member down", args, await skopeo(args, { hosts, timeoutMs: 60_000 }));
      assert.ok(
        linesSince(live, liveMark, "alive/app").some((l) => l.method === "GET" && l.uri === "/v2/alive/app/manifests/v1" && /skopeo/i.test(l.userAgent)),
        "live served skopeo",
      );
    });
  });

  // The client users type, on a gateway of its own on [::1] (dockerd treats every 127.0.0.0/8 registry as
  // insecure, see docker-cli.test.ts): a group pull, a push to the group, and docker search.
  describe("docker CLI (dockerd 20.10) against a group", { timeout: 120_000 }, () => {
    const D_GROUP = "docker-group.registry.test";
    const D_SEARCH = "docker-search.registry.test";
    let v6: TestGateway;
    let engine: DockerEngine;
    let client: DockerClient;
    const hostPort = (host: string) => `${host}:${v6.port}`;

    async function docker(args: readonly string[], input?: string): Promise<RunResult> {
      return client.run(args, { input, timeoutMs: 60_000 });
    }

    before(async () => {
      const htpasswd = join(workDir, "htpasswd");
      v6 = await startTestGateway({
        listen: "[::1]:0",
        sites: [
          {
            name: "docker-group",
            hosts: [D_GROUP],
            group: [
              { name: "hosted", backend: hosted.url },
              { name: "cache", backend: cache.url, repositories: ["lib/**"] },
            ],
            pushTo: "hosted",
          },
          {
            name: "docker-search",
            hosts: [D_SEARCH],
            group: [
              { name: "m1", backend: m1.url },
              { name: "m2", backend: m2.url },
            ],
            auth: { type: "htpasswd", htpasswd, rules: RULES },
          },
        ],
      });
      const dockerHosts = await hostsFile(await mkdtemp(join(workDir, "docker-hosts-")), { [D_GROUP]: "::1", [D_SEARCH]: "::1" });
      engine = await startDockerEngine({ hostsFile: dockerHosts });
      for (const host of [D_GROUP, D_SEARCH]) await engine.trust(hostPort(host), v6.caPem);
      client = await engine.client();
    });

    after(async () => {
      await engine?.stop();
      await v6?.stop();
    });

    it("docker pulls an image only the second member holds, then pushes it under a new name: it lands in pushTo", async () => {
      const hostedMark = logMark(hosted);
      const source = `${hostPort(D_GROUP)}/lib/only-in-cache:v1`;
      const pull = await docker(["pull", source]);
      assertRan("docker pull", ["pull", source], pull);
      assert.match(pull.stdout, new RegExp(`Digest: ${cacheOnly.manifestDigest}`));
      assert.ok(
        linesSince(hosted, hostedMark, "lib/only-in-cache").some((l) => l.uri === "/v2/lib/only-in-cache/manifests/v1" && l.status === 404 && /docker/i.test(l.userAgent)),
        "hosted gave docker its 404 first",
      );

      const target = `${hostPort(D_GROUP)}/docker/copied:v1`;
      assertRan("docker tag", ["tag"], await docker(["tag", source, target]));
      const push = await docker(["push", target]);
      assertRan("docker push", ["push", target], push);
      assert.ok((await catalogOf(hosted)).includes("docker/copied"), "in hosted's catalog");
      assert.ok(!(await catalogOf(cache)).includes("docker/copied"), "not in cache's catalog");
    });

    it("docker pushes a new tag of a cache-only image to the same repository: it lands in pushTo", async () => {
      const target = `${hostPort(D_GROUP)}/lib/only-in-cache:docker-pinned`;
      assertRan("docker tag", ["tag"], await docker(["tag", `${hostPort(D_GROUP)}/lib/only-in-cache:v1`, target]));
      const push = await docker(["push", target]);
      assertRan("docker push", ["push", target], push);
      assert.equal(await manifestStatus(hosted, "lib/only-in-cache", "docker-pinned"), 200, "the new tag is in hosted");
    });

    it("docker search shows rows from both members and hides what the user may not pull", async () => {
      assertRan("docker login", ["login"], await docker(["login", "--username", "reader", "--password-stdin", hostPort(D_SEARCH)], "Reader123\n"));
      const result = await docker(["search", "--no-trunc", `${hostPort(D_SEARCH)}/`]);
      assertRan("docker search", ["search"], result);
      const [header = "", ...rows] = result.stdout.trimEnd().split("\n");
      assert.match(header, /^NAME\s+DESCRIPTION\s+STARS\s+OFFICIAL\s+AUTOMATED$/, result.stdout);
      assert.deepEqual(rows.map((row) => row.split(/\s+/)[0]), ["a/x", "c/z", "d/w"]);
    });
  });
});
