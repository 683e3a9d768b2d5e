// The Docker Hub front door: config/examples/dockerhub-mirror.yaml run in-process, a group
// of a hosted managed registry and a managed pull-through cache (distribution's proxy mode), with a local
// distribution registry standing in for Docker Hub (there is no internet here). An image pulled through the
// mirror is served from the cache once the upstream is gone, pushes land in the hosted registry, manifest GETs
// are limited Docker Hub style, and a gateway started while the upstream is down serves the cache offline.
// Names the hosted member owns (team/**) never come from Docker Hub, whoever publishes them there.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import path, { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { parse } from "yaml";
import { parseConfig } from "../../src/config/load.js";
import { cli, REPO_ROOT } from "../helpers/cli.js";
import { certDir, cleanupClients, hostsFile, skopeo } from "../helpers/clients.js";
import { startTestGateway, type GatewayResponse, type TestGateway } from "../helpers/gateway.js";
import { managedRegistryAuthorization } from "../helpers/managed-token.js";
import { buildOciImage, OCI_MANIFEST, sha256Digest, type OciImage } from "../helpers/oci.js";
import { formatRun, waitFor, type RunResult } from "../helpers/process.js";
import { accessLog, startRegistry, type Registry } from "../helpers/registry.js";

const EXAMPLE = join(REPO_ROOT, "config/examples/dockerhub-mirror.yaml");
const MIRROR = "mirror.registry.test";
/** The cache's credentials for the upstream: in config.yml, never in a log line. */
const PROXY_PASSWORD = `proxy-secret-${process.pid}-${Date.now()}`;
/**
 * The pull limit in the test, per minute instead of per 6 h: anonymous (per client IP) and for users. Above
 * the few anonymous skopeo pulls the tests make from 127.0.0.1; the limit test itself runs from 127.0.0.2.
 */
const ANONYMOUS_PULLS = 10;
const USER_PULLS = 20;

type LogLine = Record<string, any>;

function assertRan(what: string, args: readonly string[], result: RunResult): void {
  assert.equal(result.code, 0, formatRun(what, args, result));
}

function assertRegistryError(res: GatewayResponse, status: number, code: string): void {
  assert.equal(res.status, status, res.body.toString());
  assert.equal(res.json().errors[0].code, code, res.body.toString());
}

/**
 * The example as a config object for startTestGateway: its dataDir and storage under `dataDir`, ephemeral
 * listeners, the htpasswd file by absolute path, the cache's remote pointed at `remote` (with credentials),
 * and the pull limit shrunk from 100 (200 for users) per 6 h to ANONYMOUS_PULLS (USER_PULLS) per minute.
 */
function exampleConfig(dataDir: string, remote: string): any {
  const config = parse(readFileSync(EXAMPLE, "utf8").replaceAll("${DATA_DIR:-./data}", dataDir));
  config.listen = "127.0.0.1:0";
  config.admin = { listen: "127.0.0.1:0" };
  config.dataDir = dataDir;
  const [site] = config.sites;
  site.auth.htpasswd = join(REPO_ROOT, site.auth.htpasswd);
  const cache = site.group.find((member: { name: string }) => member.name === "dockerhub");
  Object.assign(cache.backend.managed.proxy, { remoteurl: remote, username: "mirror-bot", password: PROXY_PASSWORD });
  const [pulls] = site.limits;
  Object.assign(pulls, { rate: ANONYMOUS_PULLS, per: "1m", overrides: { admin: { rate: USER_PULLS }, reader: { rate: USER_PULLS } } });
  return config;
}

describe("config/examples/dockerhub-mirror.yaml", () => {
  it("passes config check and says what the comments say: hosted + Docker Hub cache, pushes to hosted, Docker Hub's limits", async () => {
    const check = await cli(["config", "check", "config/examples/dockerhub-mirror.yaml"]);
    assert.equal(check.code, 0, check.stderr);
    assert.match(check.stdout, /OK/);

    const config = parseConfig(readFileSync(EXAMPLE, "utf8"), EXAMPLE, {});
    const [site] = config.sites;
    assert.equal(config.sites.length, 1);
    assert.deepEqual(site!.hosts, [MIRROR]);
    assert.deepEqual(
      site!.group!.map((member) => [member.name, member.backend]),
      [
        ["hosted", { managed: { binary: "docker-registry", storage: path.resolve("data/hosted") } }],
        ["dockerhub", { managed: { binary: "docker-registry", storage: path.resolve("data/dockerhub-cache"), proxy: { remoteurl: "https://registry-1.docker.io" } } }],
      ],
    );
    assert.equal(site!.pushTo, "hosted");
    assert.deepEqual(
      site!.group!.map((member) => member.repositories),
      [["team/**"], undefined],
    );
    assert.equal(site!.auth.type, "token");
    assert.deepEqual(site!.limits, [
      { name: "pulls", operations: ["pull"], rate: 100, per: 6 * 3_600_000, key: "user", overrides: { admin: { rate: 200 }, reader: { rate: 200 } } },
    ]);
  });
});

describe("Docker Hub front door: a group of a hosted registry and a pull-through cache", () => {
  let workDir: string;
  let dataDir: string;
  let upstream: Registry | undefined;
  let upstreamPort: number;
  let gateway: TestGateway | undefined;
  let certs: string;
  let hosts: string;
  let hubImage: OciImage;
  let ownImage: OciImage;
  let otherImage: OciImage;
  let freshImage: OciImage;
  const hostedStorage = () => join(dataDir, "hosted");
  const cacheStorage = () => join(dataDir, "dockerhub-cache");
  const repositoryDir = (storage: string, repository: string) => join(storage, "docker", "registry", "v2", "repositories", repository);
  const ref = (repository: string) => `docker://${MIRROR}:${gateway!.port}/${repository}`;
  const logs = (msg: string): LogLine[] => (gateway?.logs ?? []).filter((l) => l.msg === msg) as LogLine[];
  const registryStarted = (storage: string) => logs("managed registry started").find((l) => l.storage === storage);

  /** skopeo copy from the mirror, anonymously, into a fresh OCI layout; the manifest digest must be the image's. */
  async function pull(repository: string, image: OciImage, out: string): Promise<number> {
    const started = Date.now();
    const args = ["copy", "--src-cert-dir", certs, ref(repository), `oci:${join(workDir, out)}:v1`];
    assertRan("skopeo pull through the mirror", args, await skopeo(args, { hosts, timeoutMs: 60_000 }));
    const index = JSON.parse(await readFile(join(workDir, out, "index.json"), "utf8")) as { manifests: { digest: string }[] };
    assert.equal(index.manifests.at(-1)!.digest, image.manifestDigest);
    return Date.now() - started;
  }

  /** The cache has the image once its manifest and every blob are linked into the repository (blobs are stored in the background). */
  async function cached(repository: string, image: OciImage): Promise<boolean> {
    const dir = repositoryDir(cacheStorage(), repository);
    const links = [
      join(dir, "_manifests", "revisions", "sha256", image.manifestDigest.slice(7), "link"),
      ...[image.configDigest, ...image.layerDigests].map((digest) => join(dir, "_layers", "sha256", digest.slice(7), "link")),
    ];
    for (const link of links) {
      try {
        await stat(link);
      } catch {
        return false;
      }
    }
    return true;
  }

  async function seedUpstream(registry: Registry, image: OciImage, repository: string): Promise<void> {
    const args = ["copy", "--dest-tls-verify=false", image.ociRef, `docker://${registry.host}/${repository}`];
    assertRan("skopeo push to the upstream", args, await skopeo(args, { timeoutMs: 60_000 }));
  }

  before(async () => {
    workDir = await mkdtemp(join(tmpdir(), "rg-mirror-"));
    dataDir = join(workDir, "data");
    [upstream, hubImage, ownImage, otherImage, freshImage] = await Promise.all([
      startRegistry({ accessLog: true }),
      buildOciImage(join(workDir, "hub-image"), { layers: 2, layerSize: 256 * 1024, tag: "v1" }),
      buildOciImage(join(workDir, "own-image"), { layers: 2, layerSize: 128 * 1024, tag: "v1" }),
      buildOciImage(join(workDir, "other-image"), { layers: 1, layerSize: 128 * 1024, tag: "v1" }),
      buildOciImage(join(workDir, "fresh-image"), { layers: 1, layerSize: 64 * 1024, tag: "v1" }),
    ]);
    upstreamPort = upstream.port;
    await seedUpstream(upstream, hubImage, "library/hello:v1");
    const started = Date.now();
    gateway = await startTestGateway(exampleConfig(dataDir, upstream.url), { managed: { remoteRetryMs: 200 } });
    console.log(`# gateway with the hosted registry and the cache ready in ${Date.now() - started} ms`);
    certs = await certDir(gateway.caPem);
    hosts = await hostsFile(workDir, { [MIRROR]: "127.0.0.1" });
  });

  after(async () => {
    await gateway?.stop();
    await upstream?.stop();
    await cleanupClients();
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  it("runs the cache as distribution's pull-through cache: config.yml has the proxy section; the password is in no log line", async () => {
    const cacheStarted = registryStarted(cacheStorage());
    assert.ok(cacheStarted, "no 'managed registry started' line for the cache");
    assert.equal(cacheStarted.mode, "pull-through cache");
    assert.equal(cacheStarted.remote, upstream!.url);
    assert.ok(registryStarted(hostedStorage()), "no 'managed registry started' line for hosted");
    assert.notEqual(registryStarted(hostedStorage())!.url, cacheStarted.url);

    const config = parse(await readFile(join(cacheStorage(), "config.yml"), "utf8"));
    assert.deepEqual(config.proxy, { remoteurl: upstream!.url, username: "mirror-bot", password: PROXY_PASSWORD });
    assert.equal(config.storage.maintenance, undefined);
    assert.equal((await stat(join(cacheStorage(), "config.yml"))).mode & 0o777, 0o600);
    const hosted = parse(await readFile(join(hostedStorage(), "config.yml"), "utf8"));
    assert.equal(hosted.proxy, undefined);
    assert.doesNotMatch(JSON.stringify(gateway!.logs), new RegExp(PROXY_PASSWORD));
  });

  it("(a) pulls an image of the upstream through the mirror, which keeps it in the cache's storage, not in hosted", async () => {
    const tookMs = await pull("library/hello:v1", hubImage, "pulled-1");
    console.log(`# first pull (cache → upstream) in ${tookMs} ms`);
    const started = Date.now();
    await waitFor(() => cached("library/hello", hubImage), { timeoutMs: 10_000, what: "the cache to hold the manifest and every blob" });
    console.log(`# blobs in the cache's storage ${Date.now() - started} ms after the pull returned`);
    await assert.rejects(stat(repositoryDir(hostedStorage(), "library/hello")), { code: "ENOENT" });
  });

  /** skopeo push through the mirror as admin; the image must land in hosted, be served by it, and come back through the mirror. */
  async function pushToHosted(image: OciImage, repository: string): Promise<void> {
    const push = ["copy", "--dest-cert-dir", certs, "--dest-creds", "admin:Admin123", image.ociRef, ref(`${repository}:v1`)];
    assertRan("skopeo push through the mirror", push, await skopeo(push, { hosts, timeoutMs: 60_000 }));
    await stat(repositoryDir(hostedStorage(), repository));
    await assert.rejects(stat(repositoryDir(cacheStorage(), repository)), { code: "ENOENT" });
    const hostedUrl = registryStarted(hostedStorage())!.url as string;
    // The registry answers only the gateway's tokens.
    const authorization = await managedRegistryAuthorization(dataDir, [{ type: "repository", name: repository, action: "pull" }]);
    const direct = await fetch(`${hostedUrl}/v2/${repository}/manifests/v1`, { headers: { accept: OCI_MANIFEST, authorization } });
    assert.equal(direct.status, 200);
    assert.equal(sha256Digest(Buffer.from(await direct.arrayBuffer())), image.manifestDigest);
    await pull(`${repository}:v1`, image, `pulled-${repository.replaceAll("/", "-")}`);
  }

  it("(d) a push goes to the hosted member and is pulled back through the mirror; the catalog merges both members", async () => {
    await pushToHosted(ownImage, "team/app");
    const login = await gateway!.request(MIRROR, {
      path: "/token?service=mirror&scope=registry:catalog:*",
      headers: { authorization: `Basic ${Buffer.from("admin:Admin123").toString("base64")}` },
    });
    assert.equal(login.status, 200, login.body.toString());
    const catalog = await gateway!.request(MIRROR, { path: "/v2/_catalog", headers: { authorization: `Bearer ${login.json().token}` } });
    assert.equal(catalog.status, 200, catalog.body.toString());
    assert.deepEqual(catalog.json().repositories, ["library/hello", "team/app"]);
  });

  it("a name hosted owns is never fetched from the upstream, though published there: 404, and the upstream is not asked", async () => {
    // Someone publishes team/svc on "Docker Hub"; hosted has team/app (pushed above) but no team/svc.
    await seedUpstream(upstream!, otherImage, "team/svc:v1");
    const mark = accessLog(upstream!).length;
    const out = join(workDir, "pulled-team-svc");
    const args = ["copy", "--src-cert-dir", certs, ref("team/svc:v1"), `oci:${out}:v1`];
    const result = await skopeo(args, { hosts, timeoutMs: 60_000 });
    assert.notEqual(result.code, 0, formatRun("skopeo pull of team/svc through the mirror", args, result));
    assert.match(result.stderr, /manifest unknown/i);
    const token = (await gateway!.request(MIRROR, { path: "/token?service=mirror&scope=repository:team/svc:pull" })).json().token as string;
    const res = await gateway!.request(MIRROR, { path: "/v2/team/svc/manifests/v1", headers: { authorization: `Bearer ${token}`, accept: OCI_MANIFEST } });
    assertRegistryError(res, 404, "MANIFEST_UNKNOWN");
    assert.deepEqual(
      accessLog(upstream!).slice(mark).filter((line) => line.uri.startsWith("/v2/team/")).map((line) => line.line),
      [],
      "the upstream was asked for team/svc",
    );
    await assert.rejects(stat(repositoryDir(cacheStorage(), "team/svc")), { code: "ENOENT" });
  });

  it("(b, c) with the upstream stopped, the image is pulled again, from the cache", async () => {
    await upstream!.stop();
    upstream = undefined;
    await assert.rejects(fetch(`http://127.0.0.1:${upstreamPort}/v2/`), "the upstream still answers");
    const tookMs = await pull("library/hello:v1", hubImage, "pulled-2");
    console.log(`# pull with the upstream stopped in ${tookMs} ms`);
    // What the cache never fetched is unknown, not an error of the mirror.
    const token = (await gateway!.request(MIRROR, { path: `/token?service=mirror&scope=repository:library/never-pulled:pull` })).json().token as string;
    const unknown = await gateway!.request(MIRROR, {
      path: "/v2/library/never-pulled/manifests/v1",
      headers: { authorization: `Bearer ${token}`, accept: OCI_MANIFEST },
    });
    assertRegistryError(unknown, 404, "MANIFEST_UNKNOWN");
  });

  it("(d) with the upstream stopped, a push still goes to the hosted member", async () => {
    // skopeo first asks whether each blob is there already (HEAD): hosted says 404, and the cache, whose
    // upstream is gone, must not turn that into a failed push.
    const login = await gateway!.request(MIRROR, {
      path: "/token?service=mirror&scope=repository:team/other:pull,push",
      headers: { authorization: `Basic ${Buffer.from("admin:Admin123").toString("base64")}` },
    });
    const head = await gateway!.request(MIRROR, {
      method: "HEAD",
      path: `/v2/team/other/blobs/${otherImage.layerDigests[0]}`,
      headers: { authorization: `Bearer ${login.json().token}` },
    });
    assert.equal(head.status, 404, "a blob no member has: HEAD must say 404, or clients will not upload it");
    await pushToHosted(otherImage, "team/other");
  });

  it("(e) manifest GETs beyond the limit get 429 TOOMANYREQUESTS; HEADs are free; an authenticated user gets more", async () => {
    // Another client address than the pulls above: a counter of its own.
    const localAddress = "127.0.0.2";
    const tokenFor = async (authorization?: string) => {
      const res = await gateway!.request(MIRROR, {
        path: "/token?service=mirror&scope=repository:library/hello:pull",
        headers: authorization ? { authorization } : {},
        localAddress,
      });
      assert.equal(res.status, 200, res.body.toString());
      return res.json().token as string;
    };
    const manifest = (method: string, token: string) =>
      gateway!.request(MIRROR, {
        method,
        path: "/v2/library/hello/manifests/v1",
        headers: { authorization: `Bearer ${token}`, accept: OCI_MANIFEST },
        localAddress,
      });

    const anonymous = await tokenFor();
    for (let i = 0; i < 5; i++) assert.equal((await manifest("HEAD", anonymous)).status, 200, "HEAD is free");
    for (let i = 1; i <= ANONYMOUS_PULLS; i++) {
      const res = await manifest("GET", anonymous);
      assert.equal(res.status, 200, res.body.toString());
      assert.equal(res.headers["ratelimit-limit"], `${ANONYMOUS_PULLS};w=60`);
      assert.equal(res.headers["ratelimit-remaining"], `${ANONYMOUS_PULLS - i};w=60`);
    }
    const refused = await manifest("GET", anonymous);
    assertRegistryError(refused, 429, "TOOMANYREQUESTS");
    assert.match(String(refused.headers["retry-after"]), /^\d+$/);
    assert.equal((await manifest("HEAD", anonymous)).status, 200, "HEAD is still free");

    // admin, from the same address: a counter of its own, with the authenticated allowance.
    const admin = await tokenFor(`Basic ${Buffer.from("admin:Admin123").toString("base64")}`);
    const statuses: number[] = [];
    for (let i = 0; i <= USER_PULLS; i++) statuses.push((await manifest("GET", admin)).status);
    assert.deepEqual(statuses, [...Array<number>(USER_PULLS).fill(200), 429]);
  });

  it("a gateway started while the upstream is down serves the cache offline, and turns it back into the pull-through cache once the upstream answers", async () => {
    assert.equal(upstream, undefined, "runs after the upstream was stopped");
    await gateway!.stop();
    gateway = undefined;
    const started = Date.now();
    gateway = await startTestGateway(exampleConfig(dataDir, `http://127.0.0.1:${upstreamPort}`), { managed: { remoteRetryMs: 200 } });
    console.log(`# gateway restarted with the upstream down in ${Date.now() - started} ms`);
    const offline = registryStarted(cacheStorage());
    assert.equal(offline?.mode, "offline cache (read-only)", JSON.stringify(offline));
    const config = parse(await readFile(join(cacheStorage(), "config.yml"), "utf8"));
    assert.equal(config.proxy, undefined);
    assert.deepEqual(config.storage.maintenance, { readonly: { enabled: true } });
    const tookMs = await pull("library/hello:v1", hubImage, "pulled-offline");
    console.log(`# pull from the offline cache in ${tookMs} ms`);
    // The offline cache answers 404 for what it does not hold: a push's blob checks pass on to hosted.
    await pushToHosted(otherImage, "team/offline");

    // The upstream comes back (empty but for a new image): the cache is restarted in proxy mode.
    const back = Date.now();
    upstream = await startRegistry({ port: upstreamPort });
    await seedUpstream(upstream, freshImage, "library/fresh:v1");
    const restarted = await waitFor(() => logs("managed registry restarted as a pull-through cache")[0], {
      timeoutMs: 15_000,
      what: "the cache to be restarted as a pull-through cache",
    });
    console.log(`# upstream started → cache in proxy mode ${Date.parse(restarted.time) - back} ms later`);
    assert.equal(restarted.url, offline!.url, "restarted on the same port");
    assert.equal(restarted.mode, "pull-through cache");
    const proxied = parse(await readFile(join(cacheStorage(), "config.yml"), "utf8"));
    assert.equal(proxied.proxy?.remoteurl, upstream.url);
    assert.equal(proxied.storage.maintenance, undefined);

    await pull("library/fresh:v1", freshImage, "pulled-fresh");
    // The upstream no longer has library/hello:v1; distribution falls back to the tag it cached.
    await pull("library/hello:v1", hubImage, "pulled-after-upstream-lost-it");
    assert.doesNotMatch(JSON.stringify(gateway.logs), new RegExp(PROXY_PASSWORD));
  });

  it("an offline cache that dies as its upstream comes back is restarted once, by one process on its port", async () => {
    await upstream!.stop();
    upstream = undefined;
    await gateway!.stop();
    // The restart after the crash waits long enough for the upstream to come back and be noticed meanwhile.
    const backoffMs = 3000;
    gateway = await startTestGateway(exampleConfig(dataDir, `http://127.0.0.1:${upstreamPort}`), {
      managed: { remoteRetryMs: 200, backoff: { initialMs: backoffMs, maxMs: backoffMs } },
    });
    const offline = registryStarted(cacheStorage());
    assert.equal(offline?.mode, "offline cache (read-only)", JSON.stringify(offline));
    const ofCache = (l: LogLine) => l.storage === cacheStorage();

    process.kill(offline!.pid, "SIGKILL");
    await waitFor(() => logs("managed registry exited (signal SIGKILL): restarting in 3000 ms").find(ofCache), { what: "the cache's exit line" });
    upstream = await startRegistry({ port: upstreamPort });
    const restarted = await waitFor(() => (gateway?.logs ?? []).find((l) => /^managed registry restarted/.test(String(l.msg)) && ofCache(l)), {
      timeoutMs: 15_000,
      what: "the cache's restart",
    });
    assert.equal(restarted.mode, "pull-through cache");
    // Long enough for a second restart, had one been left pending.
    await new Promise((resolve) => setTimeout(resolve, backoffMs + 1000));
    const history = (gateway?.logs ?? []).filter((l) => /^managed registry (started|restarted|exited)/.test(String(l.msg)) && ofCache(l));
    assert.deepEqual(
      history.map((l) => l.msg),
      ["managed registry started", "managed registry exited (signal SIGKILL): restarting in 3000 ms", restarted.msg],
      JSON.stringify(history),
    );
    process.kill(restarted.pid as number, 0); // it is the one that runs
    await pull("library/hello:v1", hubImage, "pulled-after-crash");
  });
});
