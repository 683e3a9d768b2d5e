// A registry out of the box: a `managed` backend is a real distribution registry the
// gateway starts on a loopback port of its own, with storage under dataDir, restarts when it dies and
// stops on shutdown. And `npm start`'s configuration, run as the built CLI, accepts a push at once.
import assert from "node:assert/strict";
import { chmod, chown, mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { gatewayConfig, tokens, type GatewayConfigInput } from "../../src/config/schema.js";
import { REPO_ROOT, startGatewayProcess, type GatewayProcess } from "../helpers/cli.js";
import { certDir, cleanupClients, skopeo } from "../helpers/clients.js";
import { startTestGateway, type TestGateway } from "../helpers/gateway.js";
import { htpasswdLine } from "../helpers/htpasswd.js";
import { managedRegistryAuthorization } from "../helpers/managed-token.js";
import { startRegistry, type Registry } from "../helpers/registry.js";
import { pushTinyImage } from "../helpers/seed.js";
import { MANAGED_ISSUER, managedKeyPaths } from "../../src/backends/managed-auth.js";
import { MANAGED_SERVICE } from "../../src/config/rules.js";
import { loadSigningKey, signingKeyPaths } from "../../src/auth/signing-key.js";
import { buildOciImage, sha256Digest, type OciImage } from "../helpers/oci.js";
import { formatRun, run, waitFor, type RunResult } from "../helpers/process.js";

const HUB = "127.0.0.1";
const TEAM = "localhost";

function assertRan(what: string, args: readonly string[], result: RunResult): void {
  assert.equal(result.code, 0, formatRun(what, args, result));
}

/** `nobody`: another local user, with no groups of ours. */
const NOBODY = 65534;

/** Runs `cmd` as `nobody`. */
function asNobody(cmd: string, args: readonly string[]): Promise<RunResult> {
  return run("setpriv", [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, "--clear-groups", cmd, ...args], { timeoutMs: 15_000 });
}

/** The status another local user gets for `method url` straight from the registry's port (curl as nobody). */
async function statusAsNobody(method: string, url: string, headers: readonly string[] = []): Promise<number> {
  const args = ["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", method, ...headers.flatMap((h) => ["-H", h]), url];
  const result = await asNobody("curl", args);
  assertRan("curl as nobody", args, result);
  return Number(result.stdout);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ESRCH") return false;
    throw err;
  }
}

type LogLine = Record<string, any>;

/** skopeo copy to `ref` and back into a fresh OCI layout; both ends must have the image's manifest digest. */
async function pushAndPull(image: OciImage, ref: string, certs: string, out: string): Promise<void> {
  const push = ["copy", "--dest-cert-dir", certs, image.ociRef, ref];
  assertRan("skopeo push", push, await skopeo(push, { timeoutMs: 60_000 }));
  await assertPullable(image, ref, certs, out);
}

async function assertPullable(image: OciImage, ref: string, certs: string, out: string): Promise<void> {
  const inspect = ["inspect", "--raw", "--cert-dir", certs, ref];
  const raw = await skopeo(inspect, { timeoutMs: 30_000 });
  assertRan("skopeo inspect", inspect, raw);
  assert.equal(sha256Digest(raw.stdout), image.manifestDigest);
  const pull = ["copy", "--src-cert-dir", certs, ref, `oci:${out}:v1`];
  assertRan("skopeo pull", pull, await skopeo(pull, { timeoutMs: 60_000 }));
  const index = JSON.parse(await readFile(join(out, "index.json"), "utf8")) as { manifests: { digest: string }[] };
  assert.equal(index.manifests.at(-1)!.digest, image.manifestDigest);
}

describe("managed backend: the gateway runs the registry", () => {
  let workDir: string;
  let dataDir: string;
  let image: OciImage;
  let gateway: TestGateway | undefined;
  let certs: string;
  const ref = () => `docker://${HUB}:${gateway!.port}/hub/app:v1`;
  const lines = (msg: string): LogLine[] => (gateway?.logs ?? []).filter((l) => l.msg === msg) as LogLine[];
  /** The pid of the hub's registry as last (re)started. */
  const hubPid = (): number =>
    (gateway?.logs ?? [])
      .filter((l: LogLine) => /^managed registry (re)?started$/.test(l.msg) && l.storage === join(dataDir, "registry"))
      .map((l: LogLine) => l.pid as number)
      .at(-1)!;

  before(async () => {
    workDir = await mkdtemp(join(tmpdir(), "rg-managed-"));
    dataDir = join(workDir, "data");
    image = await buildOciImage(join(workDir, "image"), { layers: 2, layerSize: 256 * 1024, tag: "v1" });
    const started = Date.now();
    // The gateway's configuration may come from the environment, secrets included: none of it is the registry's.
    process.env.GATEWAY_ADMIN_TOKEN = "admin-token-the-registry-must-not-see";
    try {
      gateway = await startTestGateway({ dataDir, sites: [{ hosts: [HUB], backend: { managed: {} }, default: true }] });
    } finally {
      delete process.env.GATEWAY_ADMIN_TOKEN;
    }
    console.log(`# gateway with a managed registry ready in ${Date.now() - started} ms`);
    certs = await certDir(gateway.caPem);
  });

  after(async () => {
    await gateway?.stop();
    await cleanupClients();
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  it("starts docker-registry on a loopback port with storage and config under dataDir, reported by /readyz", async () => {
    const [started] = lines("managed registry started");
    assert.ok(started, "no 'managed registry started' log line");
    assert.equal(started.storage, join(dataDir, "registry"));
    assert.match(started.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.ok(alive(started.pid));
    const config = await readFile(join(dataDir, "registry", "config.yml"), "utf8");
    assert.match(config, new RegExp(`rootdirectory: ${join(dataDir, "registry")}`));
    assert.match(config, /secret: [0-9a-f]{64}/);
    assert.equal((await stat(join(dataDir, "registry", "config.yml"))).mode & 0o777, 0o600);
    // Its trust: the managed registries' own key pair, private to the gateway's user.
    assert.match(config, new RegExp(`rootcertbundle: ${managedKeyPaths(dataDir).certPath}`));
    assert.equal((await stat(managedKeyPaths(dataDir).keyPath)).mode & 0o777, 0o600);
    assert.equal((await stat(join(dataDir, "managed-registries"))).mode & 0o777, 0o700);
    const environment = (await readFile(`/proc/${started.pid}/environ`, "utf8")).split("\0");
    assert.deepEqual(environment.filter((entry) => entry.startsWith("GATEWAY_")), [], "the registry inherited the gateway's GATEWAY_* variables");

    const ready = await fetch(`http://127.0.0.1:${gateway!.admin.port}/readyz`);
    const body = (await ready.json()) as { backends: { backend: string; reachable: boolean; status: number }[] };
    assert.equal(ready.status, 200, JSON.stringify(body));
    // 401: /readyz asks without a token, and the registry answers nobody but the gateway.
    assert.deepEqual(body.backends, [{ pool: "127.0.0.1", backend: started.url, reachable: true, status: 401, healthy: true, outstanding: 0 }]);
  });

  it("skopeo copies an OCI image to it and back through the gateway, trusting only the gateway CA", async () => {
    await pushAndPull(image, ref(), certs, join(workDir, "pulled-1"));
    // The blobs are in the registry's storage under dataDir.
    await stat(join(dataDir, "registry", "docker", "registry", "v2", "repositories", "hub", "app"));
  });

  it("restarts the registry after it is killed (SIGKILL); the image is still there", async () => {
    const before = lines("managed registry started")[0]!;
    process.kill(before.pid, "SIGKILL");
    const killedAt = Date.now();
    const exited = await waitFor(() => lines("managed registry exited (signal SIGKILL): restarting in 1000 ms")[0], { what: "the exit log line" });
    assert.equal(exited.signal, "SIGKILL");
    assert.equal(exited.code, null);
    assert.ok(Array.isArray(exited.output));
    const restarted = await waitFor(() => lines("managed registry restarted")[0], { timeoutMs: 10_000, what: "the restart log line" });
    assert.notEqual(restarted.pid, before.pid);
    assert.equal(restarted.url, before.url);
    assert.ok(alive(restarted.pid));
    await assertPullable(image, ref(), certs, join(workDir, "pulled-2"));
    const tookMs = Date.now() - killedAt;
    console.log(`# killed → pulled again in ${tookMs} ms`);
    assert.ok(tookMs < 10_000, `${tookMs} ms`);
  });

  it("a reload keeps an unchanged registry, starts a new one, and stops the one no longer named", async () => {
    const pid = hubPid();
    const hub = { hosts: [HUB], backend: { managed: {} }, default: true };
    const team = { hosts: [TEAM], backend: { managed: { storage: join(workDir, "team-storage") } } };
    const parse = (sites: unknown[]) =>
      gatewayConfig.parse({ listen: "127.0.0.1:0", admin: { listen: "127.0.0.1:0" }, log: { level: "debug" }, dataDir, sites });

    const grown = await gateway!.reload(parse([hub, team]));
    assert.equal(grown.ok, true, JSON.stringify(grown));
    const teamStarted = lines("managed registry started").find((l) => l.storage === join(workDir, "team-storage"));
    assert.ok(teamStarted, "the new site's registry did not start");
    assert.ok(alive(pid), "the unchanged registry was restarted");
    assert.equal(lines("managed registry started").length, 2);
    const teamRef = `docker://${TEAM}:${gateway!.port}/team/app:v1`;
    await pushAndPull(image, teamRef, certs, join(workDir, "pulled-team"));

    const shrunk = await gateway!.reload(parse([hub]));
    assert.equal(shrunk.ok, true, JSON.stringify(shrunk));
    await waitFor(() => !alive(teamStarted.pid), { what: "the removed site's registry to stop" });
    assert.ok(alive(pid));
  });

  it("a reload that fails stops what it started and leaves the running registry serving", async () => {
    const hub = { hosts: [HUB], backend: { managed: {} }, default: true };
    const parse = (sites: unknown[]) =>
      gatewayConfig.parse({ listen: "127.0.0.1:0", admin: { listen: "127.0.0.1:0" }, log: { level: "debug" }, dataDir, sites });
    const doomedStorage = join(workDir, "doomed-storage");
    // The new site's registry starts; then its htpasswd file is missing, so the state is never built.
    const broken = await gateway!.reload(
      parse([hub, { hosts: [TEAM], backend: { managed: { storage: doomedStorage } }, auth: { type: "htpasswd", htpasswd: join(workDir, "no-such-htpasswd") } }]),
    );
    assert.equal(broken.ok, false);
    const doomed = lines("managed registry started").find((l) => l.storage === doomedStorage);
    assert.ok(doomed, "the new site's registry was not started");
    assert.equal(alive(doomed.pid), false, "the failed reload left its registry running");

    const missing = await gateway!.reload(parse([hub, { hosts: [TEAM], backend: { managed: { binary: "no-such-docker-registry", storage: doomedStorage } } }]));
    assert.equal(missing.ok, false);
    assert.match(missing.ok ? "" : missing.errors.join("\n"), /sites\[1\] \(localhost\) backend\.managed: .*apt-get install docker-registry/);

    assert.ok(alive(hubPid()));
    await assertPullable(image, ref(), certs, join(workDir, "pulled-3"));
  });

  it("shutdown stops the registry", async () => {
    const pid = hubPid();
    assert.ok(alive(pid));
    const running = gateway!;
    gateway = undefined;
    await running.shutdown(1000);
    assert.equal(alive(pid), false, `registry ${pid} still runs after shutdown`);
    assert.ok(running.logs.some((l) => l.msg === "managed registry stopped" && l.pid === pid));
  });

  it("without the registry binary the start fails naming the package to install", async () => {
    await assert.rejects(
      startTestGateway({ dataDir: join(workDir, "missing"), sites: [{ hosts: [HUB], backend: { managed: { binary: "no-such-docker-registry" } } }] }),
      (err: Error) => {
        assert.match(err.message, /^sites\[0\] \(127\.0\.0\.1\) backend\.managed: "no-such-docker-registry" was not found on PATH/);
        assert.match(err.message, /apt-get install docker-registry/);
        return true;
      },
    );
    await assert.rejects(
      startTestGateway({ dataDir: join(workDir, "missing"), sites: [{ hosts: [HUB], backend: { managed: { binary: "/nonexistent/docker-registry" } } }] }),
      /\/nonexistent\/docker-registry is not an executable file.*apt-get install docker-registry/,
    );
  });
});

describe("managed backend: no other local user reaches the registry, by its port or on disk", () => {
  let workDir: string;
  let storage: string;
  let image: OciImage;
  let gateway: TestGateway | undefined;
  let certs: string;
  let registryUrl: string;
  let sites: GatewayConfigInput["sites"];
  const ref = () => `docker://${HUB}:${gateway!.port}/hub/app:v1`;

  before(async () => {
    workDir = await mkdtemp(join(tmpdir(), "rg-managed-private-"));
    // As an operator may have made them (or an older gateway left them): open to every local user.
    await chmod(workDir, 0o755);
    storage = join(workDir, "storage");
    await mkdir(storage, { mode: 0o755 });
    await chmod(storage, 0o755);
    const htpasswd = join(workDir, "htpasswd");
    await writeFile(htpasswd, `${await htpasswdLine("alice", "alice-pw")}\n`);
    image = await buildOciImage(join(workDir, "image"), { layers: 1, layerSize: 64 * 1024, tag: "v1" });
    sites = [
      { hosts: [HUB], backend: { managed: { storage } }, default: true },
      // A token-auth site on the same registry: its users' tokens must not open the registry itself.
      { hosts: [TEAM], backend: { managed: { storage } }, auth: { type: "token", htpasswd, rules: [{ who: ["alice"], repositories: ["**"], actions: ["pull", "push", "delete"] }] } },
    ];
    gateway = await startTestGateway({ dataDir: join(workDir, "data"), sites });
    registryUrl = (gateway.logs.find((l) => l.msg === "managed registry started") as LogLine).url;
    certs = await certDir(gateway.caPem);
    await pushAndPull(image, ref(), certs, join(workDir, "pulled-1"));
  });

  after(async () => {
    await gateway?.stop();
    await cleanupClients();
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  it("its port answers another user 401 for the catalog, a manifest, a blob, a DELETE and an upload; the image stays", async () => {
    const accept = `Accept: application/vnd.oci.image.manifest.v1+json`;
    const attempts: [string, string, string[]][] = [
      ["GET", "/v2/_catalog", []],
      ["GET", "/v2/hub/app/tags/list", []],
      ["GET", "/v2/hub/app/manifests/v1", [accept]],
      ["GET", `/v2/hub/app/blobs/${image.layerDigests[0]}`, []],
      ["DELETE", `/v2/hub/app/manifests/${image.manifestDigest}`, []],
      ["POST", "/v2/hub/app/blobs/uploads/", []],
    ];
    for (const [method, path, headers] of attempts) {
      assert.equal(await statusAsNobody(method, `${registryUrl}${path}`, headers), 401, `${method} ${path}`);
    }
    // Nothing was deleted: the gateway still serves the image.
    await assertPullable(image, ref(), certs, join(workDir, "pulled-2"));
  });

  it("a token the gateway issued to a user of a site does not open the registry's port", async () => {
    const basic = `Basic ${Buffer.from("alice:alice-pw").toString("base64")}`;
    const issued = await gateway!.request(TEAM, { path: "/token?service=localhost&scope=repository:hub/app:pull,push,delete", headers: { authorization: basic } });
    assert.equal(issued.status, 200, issued.body.toString());
    const bearer = `Authorization: Bearer ${(issued.json() as { token: string }).token}`;
    // The token is good at the gateway...
    const viaGateway = await gateway!.request(TEAM, { path: "/v2/hub/app/tags/list", headers: { authorization: bearer.slice("Authorization: ".length) } });
    assert.equal(viaGateway.status, 200, viaGateway.body.toString());
    // ...and worth nothing at the registry: it is for the site's service, not the registry's.
    assert.equal(await statusAsNobody("GET", `${registryUrl}/v2/hub/app/tags/list`, [bearer]), 401);
    assert.equal(await statusAsNobody("DELETE", `${registryUrl}/v2/hub/app/manifests/${image.manifestDigest}`, [bearer]), 401);
  });

  it("its storage directory, images, config.yml and http-secret are not readable by another user", async () => {
    assert.equal((await stat(storage)).mode & 0o777, 0o700);
    const hex = image.layerDigests[0]!.slice("sha256:".length);
    const blob = join(storage, "docker", "registry", "v2", "blobs", "sha256", hex.slice(0, 2), hex, "data");
    await stat(blob); // it is there, for the gateway's user
    for (const [cmd, args] of [
      ["ls", [storage]],
      ["ls", [join(storage, "docker", "registry", "v2", "repositories")]],
      ["cat", [blob]],
      ["cat", [join(storage, "config.yml")]],
      ["cat", [join(storage, "http-secret")]],
    ] as const) {
      const result = await asNobody(cmd, args);
      assert.notEqual(result.code, 0, formatRun(`${cmd} as nobody`, args, result));
      assert.match(result.stderr, /Permission denied/, formatRun(`${cmd} as nobody`, args, result));
    }
  });

  it("a reload changing tokens.key and tokens.issuer keeps the registry (same process) and its pulls; so does one that fails", async () => {
    const registryPid = (gateway!.logs.find((l) => l.msg === "managed registry started") as LogLine).pid as number;
    // Another token signing key pair, as an operator would configure one.
    const otherKeys = signingKeyPaths(join(workDir, "other-keys"));
    await loadSigningKey({ dataDir: join(workDir, "other-keys"), tokens: tokens.parse({}) });
    const parse = (issuer: string, extra: GatewayConfigInput["sites"] = []) =>
      gatewayConfig.parse({
        listen: "127.0.0.1:0",
        admin: { listen: "127.0.0.1:0" },
        log: { level: "debug" },
        dataDir: join(workDir, "data"),
        tokens: { issuer, key: otherKeys.keyPath, cert: otherKeys.certPath },
        sites: [...sites, ...extra],
      });

    const reloaded = await gateway!.reload(parse("another-issuer"));
    assert.equal(reloaded.ok, true, JSON.stringify(reloaded));
    await assertPullable(image, ref(), certs, join(workDir, "pulled-after-reload"));
    // The site's token endpoint signs with the new key and issuer: its tokens still work through the gateway.
    const basic = `Basic ${Buffer.from("alice:alice-pw").toString("base64")}`;
    const issued = await gateway!.request(TEAM, { path: "/token?service=localhost&scope=repository:hub/app:pull", headers: { authorization: basic } });
    assert.equal(issued.status, 200, issued.body.toString());
    const tags = await gateway!.request(TEAM, { path: "/v2/hub/app/tags/list", headers: { authorization: `Bearer ${(issued.json() as { token: string }).token}` } });
    assert.equal(tags.status, 200, tags.body.toString());

    // Yet another issuer, in a configuration that cannot be built (a missing htpasswd file): refused, and
    // the configuration in service goes on reaching the registry.
    const broken = await gateway!.reload(
      parse("a-third-issuer", [{ hosts: ["broken.localhost"], backend: { managed: { storage } }, auth: { type: "htpasswd", htpasswd: join(workDir, "no-such-htpasswd") } }]),
    );
    assert.equal(broken.ok, false);
    await assertPullable(image, ref(), certs, join(workDir, "pulled-after-failed-reload"));

    assert.ok(alive(registryPid), "the registry was restarted by a reload");
    assert.deepEqual(
      gateway!.logs.filter((l) => /^managed registry (started|restarted|exited)/.test(String(l.msg))).map((l) => [l.msg, l.pid]),
      [["managed registry started", registryPid]],
    );
  });

  it("a storage directory that belongs to another user is refused at start", async () => {
    const foreign = join(workDir, "foreign-storage");
    await mkdir(foreign);
    await chown(foreign, NOBODY, NOBODY);
    await assert.rejects(
      startTestGateway({ dataDir: join(workDir, "data-foreign"), sites: [{ hosts: [HUB], backend: { managed: { storage: foreign } } }] }),
      /backend\.managed: the storage directory .*foreign-storage belongs to uid 65534, not to the gateway's user/,
    );
  });
});

describe("managed backend: its token goes to it alone, never to a registry given as a URL", () => {
  let workDir: string;
  let dataDir: string;
  let remote: Registry | undefined;
  let gateway: TestGateway | undefined;

  before(async () => {
    workDir = await mkdtemp(join(tmpdir(), "rg-managed-token-"));
    dataDir = join(workDir, "data");
    // The managed registries' key pair, made before the gateway starts, so that the remote registry can trust it.
    const managedToken = await managedRegistryAuthorization(dataDir, []);
    assert.match(managedToken, /^Bearer /);
    // A registry given as a URL that WOULD take a managed registry's token (same certificate, same service):
    // seeded while open, then restarted on the same storage with auth.
    const rootDir = join(workDir, "remote");
    const open = await startRegistry({ rootDir });
    await pushTinyImage(open.url, "lib/only-remote", "v1", "seed");
    await open.stop();
    remote = await startRegistry({
      rootDir,
      auth: { realm: "https://nowhere.invalid/token", service: MANAGED_SERVICE, issuer: MANAGED_ISSUER, rootCertBundle: managedKeyPaths(dataDir).certPath },
    });
    gateway = await startTestGateway({
      dataDir,
      sites: [
        // passthrough: the client's own Authorization goes to the backends, so a managed registry's token
        // left in the request by the member tried first would reach the next one.
        // hosted serves every name (and owns those remote does not declare): asked first for lib/, then remote.
        {
          hosts: [HUB],
          backendAuth: { type: "passthrough" },
          group: [
            { name: "hosted", backend: { managed: {} } },
            { name: "remote", backend: remote.url, repositories: ["lib/**"] },
          ],
          pushTo: "hosted",
        },
      ],
    });
  });

  after(async () => {
    await gateway?.stop();
    await remote?.stop();
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  it("a pull the managed member has not passes over to the URL member without the managed member's token", async () => {
    const path = "/v2/lib/only-remote/manifests/v1";
    const accept = "application/vnd.oci.image.manifest.v1+json";
    // hosted (managed) answers 404 with the gateway's token; remote gets the client's Authorization: none.
    const anonymous = await gateway!.request(HUB, { path, headers: { accept } });
    assert.equal(anonymous.status, 401, anonymous.body.toString());
    // The control: with a token it accepts, sent by the client, remote serves the image.
    const authorization = await managedRegistryAuthorization(dataDir, [{ type: "repository", name: "lib/only-remote", action: "pull" }]);
    const withToken = await gateway!.request(HUB, { path, headers: { accept, authorization } });
    assert.equal(withToken.status, 200, withToken.body.toString());
  });
});

describe("npm start: config/gateway.yaml serves a working registry at once", () => {
  let workDir: string;
  let gateway: GatewayProcess | undefined;

  before(async () => {
    workDir = await mkdtemp(join(tmpdir(), "rg-npm-start-"));
  });

  after(async () => {
    await gateway?.process.stop();
    await cleanupClients();
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  it("accepts a skopeo push and serves it back, registry storage under DATA_DIR/registry; SIGTERM stops both", async () => {
    const dataDir = join(workDir, "data");
    const image = await buildOciImage(join(workDir, "image"), { layers: 2, layerSize: 128 * 1024, tag: "v1" });
    const started = Date.now();
    gateway = await startGatewayProcess("config/gateway.yaml", {
      DATA_DIR: dataDir,
      GATEWAY_LISTEN: "127.0.0.1:0",
      GATEWAY_ADMIN_LISTEN: "127.0.0.1:0",
    });
    console.log(`# node dist/main.js serve --config config/gateway.yaml ready in ${Date.now() - started} ms`);
    const registry = gateway.logs().find((l) => l.msg === "managed registry started");
    assert.ok(registry, gateway.process.output());
    assert.equal(registry.storage, join(dataDir, "registry"));

    const certs = await certDir(await readFile(gateway.caFile!, "utf8"));
    for (const host of ["localhost", "127.0.0.1"]) {
      await pushAndPull(image, `docker://${host}:${gateway.httpsPort}/library/app:v1`, certs, join(workDir, `pulled-${host}`));
    }
    await stat(join(dataDir, "registry", "docker", "registry", "v2", "repositories", "library", "app"));
    // What it serves through the gateway, another local user cannot get from the registry's port.
    assert.equal(await statusAsNobody("GET", `${registry.url}/v2/_catalog`), 401);
    assert.equal(await statusAsNobody("DELETE", `${registry.url}/v2/library/app/manifests/v1`), 401);

    const status = await gateway.process.stop(10_000);
    assert.equal(status.code, 0, gateway.process.output());
    assert.equal(alive(registry.pid), false, `registry ${registry.pid} outlived the gateway`);
    gateway = undefined;
  });
});

describe("npm start's prestart: scripts/install-test-deps.sh --registry-only", () => {
  let workDir: string;

  before(async () => {
    workDir = await mkdtemp(join(tmpdir(), "rg-prestart-"));
  });

  after(async () => {
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  /** A PATH of fake commands: each named one is a shell script that records its arguments and exits as told. */
  async function fakePath(name: string, commands: Record<string, string>): Promise<{ path: string; calls: () => Promise<string> }> {
    const dir = join(workDir, name);
    await mkdir(dir);
    const log = join(dir, "calls.log");
    for (const [command, body] of Object.entries(commands)) {
      await writeFile(join(dir, command), `#!/bin/sh\necho "${command} $*" >> ${log}\n${body}\n`);
      await chmod(join(dir, command), 0o755);
    }
    return { path: dir, calls: () => readFile(log, "utf8").catch(() => "") };
  }

  const script = (args: string[], path: string) =>
    run("/bin/bash", [join(REPO_ROOT, "scripts/install-test-deps.sh"), ...args], { env: { PATH: path }, timeoutMs: 30_000 });

  it("is what npm start runs first", async () => {
    const pkg = JSON.parse(await readFile(join(REPO_ROOT, "package.json"), "utf8")) as { scripts: Record<string, string> };
    assert.match(pkg.scripts.prestart!, /^bash scripts\/install-test-deps\.sh --registry-only && npm run build$/);
  });

  it("does nothing when docker-registry is installed", async () => {
    const fake = await fakePath("present", { "docker-registry": "exit 0", "apt-get": "exit 0", id: "echo 0" });
    const result = await script(["--registry-only"], fake.path);
    assert.equal(result.code, 0, formatRun("install-test-deps.sh", ["--registry-only"], result));
    assert.equal(await fake.calls(), "");
  });

  it("installs only docker-registry with apt when missing, as root", async () => {
    const fake = await fakePath("root", { "apt-get": "exit 0", id: "echo 0" });
    const result = await script(["--registry-only"], fake.path);
    assert.equal(result.code, 0, formatRun("install-test-deps.sh", ["--registry-only"], result));
    const calls = (await fake.calls()).trim().split("\n").filter((line) => line.startsWith("apt-get"));
    assert.deepEqual(calls, ["apt-get update -qq", "apt-get install -y -qq --no-install-recommends docker-registry"]);
  });

  it("where it cannot install, says how and lets the start go on; npm test's install still fails", async () => {
    const fake = await fakePath("user", { "apt-get": "exit 0", id: "echo 1000" });
    const result = await script(["--registry-only"], fake.path);
    assert.equal(result.code, 0, formatRun("install-test-deps.sh", ["--registry-only"], result));
    assert.match(result.stderr, /not root: install them with: sudo apt-get install -y --no-install-recommends docker-registry/);
    assert.doesNotMatch(await fake.calls(), /apt-get/);

    const noApt = await script(["--registry-only"], (await fakePath("no-apt", { id: "echo 0" })).path);
    assert.equal(noApt.code, 0);
    assert.match(noApt.stderr, /no apt-get here: install docker-registry/);

    const failing = await script(["--registry-only"], (await fakePath("apt-fails", { "apt-get": "exit 100", id: "echo 0" })).path);
    assert.equal(failing.code, 0);
    assert.match(failing.stderr, /installing docker-registry failed/);

    const forTests = await script([], fake.path);
    assert.equal(forTests.code, 1, formatRun("install-test-deps.sh", [], forTests));
    assert.match(forTests.stderr, /not root: install them with: sudo apt-get install/);
  });
});
