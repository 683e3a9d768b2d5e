// The gateway in front of two real distribution registries, driven by real clients.
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { certDir, cleanupClients, hostsFile, podman, podmanStore, skopeo, type PodmanStore } from "../helpers/clients.js";
import { startTestGateway, type TestGateway } from "../helpers/gateway.js";
import { buildOciImage, sha256Digest, type OciImage } from "../helpers/oci.js";
import { freePort } from "../helpers/ports.js";
import { formatRun, run, waitFor, type RunResult } from "../helpers/process.js";
import { startRegistry, type Registry } from "../helpers/registry.js";
import { finishUpload, patchChunked, startUpload, type UploadTarget } from "../helpers/upload.js";

const HUB = "hub.registry.test";
const TEAM = "team.registry.test";
const GONE = "gone.registry.test";
const MiB = 1024 * 1024;

function assertRan(what: string, args: readonly string[], result: RunResult): void {
  assert.equal(result.code, 0, formatRun(what, args, result));
}

function assertRegistryError(res: { status: number; headers: Record<string, unknown>; json(): any }, status: number, code: string): void {
  assert.equal(res.status, status);
  assert.equal(res.headers["content-type"], "application/json; charset=utf-8");
  assert.equal(res.headers["docker-distribution-api-version"], "registry/2.0");
  const body = res.json();
  assert.equal(body.errors[0].code, code);
  assert.equal(typeof body.errors[0].message, "string");
}

async function catalog(registry: Registry): Promise<string[]> {
  const res = await fetch(`${registry.url}/v2/_catalog`);
  return ((await res.json()) as { repositories: string[] }).repositories;
}

describe("front door: TLS, routing and streaming to real registries", () => {
  let hub: Registry;
  let team: Registry;
  let gateway: TestGateway;
  let workDir: string;
  let image: OciImage;
  let certs: string;
  let hosts: string;
  let store: PodmanStore;

  before(async () => {
    workDir = await mkdtemp(join(tmpdir(), "rg-front-door-"));
    [hub, team, image, store] = await Promise.all([
      startRegistry(),
      startRegistry(),
      buildOciImage(join(workDir, "image"), { layers: 3, layerSize: 512 * 1024, tag: "v1" }),
      podmanStore(),
    ]);
    gateway = await startTestGateway({
      sites: [
        { hosts: [HUB], backend: hub.url, default: true },
        { hosts: [TEAM], backend: team.url },
        { hosts: [GONE], backend: `http://127.0.0.1:${await freePort()}` },
      ],
    });
    certs = await certDir(gateway.caPem);
    hosts = await hostsFile(workDir, { [HUB]: "127.0.0.1", [TEAM]: "127.0.0.1" });
  });

  after(async () => {
    await gateway?.stop();
    await Promise.all([hub?.stop(), team?.stop(), store?.remove()]);
    await cleanupClients();
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  for (const [host, repository] of [
    [HUB, "hub/app"],
    [TEAM, "team/app"],
  ] as const) {
    it(`skopeo copies an OCI image to ${host} and back over TLS trusting only the gateway CA`, async () => {
      const ref = `docker://${host}:${gateway.port}/${repository}:v1`;
      const push = ["copy", "--dest-cert-dir", certs, image.ociRef, ref];
      assertRan("skopeo push", push, await skopeo(push, { hosts, timeoutMs: 60_000 }));

      const inspect = ["inspect", "--raw", "--cert-dir", certs, ref];
      const raw = await skopeo(inspect, { hosts, timeoutMs: 30_000 });
      assertRan("skopeo inspect", inspect, raw);
      assert.equal(sha256Digest(raw.stdout), image.manifestDigest);

      const out = join(workDir, `pulled-${host}`);
      const pull = ["copy", "--src-cert-dir", certs, ref, `oci:${out}:v1`];
      assertRan("skopeo pull", pull, await skopeo(pull, { hosts, timeoutMs: 60_000 }));
      const index = JSON.parse(await readFile(join(out, "index.json"), "utf8")) as { manifests: { digest: string }[] };
      assert.equal(index.manifests[0]!.digest, image.manifestDigest);
    });
  }

  it("routed each host to its own backend", async () => {
    assert.deepEqual(await catalog(hub), ["hub/app"]);
    assert.deepEqual(await catalog(team), ["team/app"]);
  });

  it("refuses a client that does not trust the gateway CA", async () => {
    const args = ["inspect", "--raw", `docker://${HUB}:${gateway.port}/hub/app:v1`];
    const result = await skopeo(args, { hosts, timeoutMs: 30_000 });
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, /certificate signed by unknown authority/);
  });

  it("podman pulls through the gateway", async () => {
    const ref = `${HUB}:${gateway.port}/hub/app:v1`;
    const pull = ["pull", "--cert-dir", certs, ref];
    assertRan("podman pull", pull, await podman(pull, { store, hosts, timeoutMs: 90_000 }));
    const inspect = ["image", "inspect", ref];
    const inspected = await podman(inspect, { store, timeoutMs: 30_000 });
    assertRan("podman inspect", inspect, inspected);
    const [info] = JSON.parse(inspected.stdout) as Array<{ RootFS: { Layers: string[] } }>;
    assert.deepEqual(info!.RootFS.Layers, image.diffIds);
  });

  it("streams a 256 MiB upload sent as one chunked PATCH with no Content-Length, intact", async () => {
    const target: UploadTarget = { port: gateway.port, caPem: gateway.caPem, host: HUB };
    const location = await startUpload(target, "hub/big");
    assert.ok(location.startsWith(`https://${HUB}:${gateway.port}/v2/hub/big/blobs/uploads/`), location);
    const patched = await patchChunked(target, location, { bytes: 256 * MiB });
    assert.equal(patched.status, 202);
    assert.equal(patched.sent, 256 * MiB);
    assert.ok(patched.location?.startsWith(`https://${HUB}:${gateway.port}/`), patched.location);
    const done = await finishUpload(target, patched.location!, patched.digest);
    assert.equal(done.status, 201, done.body.toString());
    assert.equal(done.headers["docker-content-digest"], patched.digest);

    // HEAD keeps Content-Length: the registry recomputed the digest over all 256 MiB it received.
    const head = await gateway.request(HUB, { method: "HEAD", path: `/v2/hub/big/blobs/${patched.digest}` });
    assert.equal(head.status, 200);
    assert.equal(head.headers["content-length"], String(256 * MiB));
    assert.equal(head.headers["docker-content-digest"], patched.digest);
  });

  it("passes Range requests and 206 answers through untouched", async () => {
    const layer = image.layerDigests[0]!;
    const res = await gateway.request(HUB, { path: `/v2/hub/app/blobs/${layer}`, headers: { range: "bytes=10-19" } });
    assert.equal(res.status, 206);
    assert.equal(res.body.length, 10);
    assert.match(String(res.headers["content-range"]), /^bytes 10-19\/\d+$/);
  });

  it("a client abort mid-upload aborts the backend request and leaves no stuck sockets", async () => {
    const target: UploadTarget = { port: gateway.port, caPem: gateway.caPem, host: HUB };
    const location = await startUpload(target, "hub/aborted");
    let sawInFlight = false;
    const watcher = setInterval(() => (sawInFlight ||= gateway.upstreamSocketsInUse() > 0), 5);
    const result = await patchChunked(target, location, { bytes: 256 * MiB, abortAfter: 24 * MiB });
    clearInterval(watcher);
    assert.equal(result.status, 0);
    assert.ok(sawInFlight, "the upload never reached the backend");
    await waitFor(() => gateway.inFlight() === 0 && gateway.upstreamSocketsInUse() === 0, {
      timeoutMs: 5000,
      what: "the aborted exchange to be torn down on both sides",
    });
    // No connection from the gateway to the backend is left mid-request: the registry's view agrees.
    const sockets = await run("ss", ["-Htn", "state", "established", `( dport = :${gateway.port} )`]);
    assert.equal(sockets.stdout.trim(), "", "client connections to the gateway still open");
    // The gateway still serves afterwards.
    assert.equal((await gateway.request(HUB, { path: "/v2/" })).status, 200);
  });

  it("answers an unknown host with a registry error, not a TLS failure or HTML", async () => {
    const res = await gateway.request("unknown.registry.test", { path: "/v2/", expectCertFor: HUB });
    assertRegistryError(res, 421, "UNSUPPORTED");
    assert.match(res.json().errors[0].message, /unknown\.registry\.test/);
  });

  it("gives an unknown or absent SNI the default site's certificate", async () => {
    const unknown = await gateway.request(HUB, { path: "/v2/", servername: "unknown.registry.test" });
    assert.match(unknown.peerNames, new RegExp(`DNS:${HUB}`));
    const none = await gateway.request(HUB, { path: "/v2/", servername: null });
    assert.match(none.peerNames, new RegExp(`DNS:${HUB}`));
    const team = await gateway.request(TEAM, { path: "/v2/" });
    assert.match(team.peerNames, new RegExp(`DNS:${TEAM}`));
    assert.doesNotMatch(team.peerNames, new RegExp(`DNS:${HUB}`));
  });

  it("answers for a stopped backend with 502 in registry format, and keeps serving the others", async () => {
    const res = await gateway.request(GONE, { path: "/v2/" });
    assertRegistryError(res, 502, "UNAVAILABLE");
    assert.equal((await gateway.request(HUB, { path: "/v2/" })).status, 200);
  });

  it("reports readiness per backend on the admin listener", async () => {
    const health = await fetch(`http://127.0.0.1:${gateway.admin.port}/healthz`);
    assert.equal(health.status, 200);
    const ready = await fetch(`http://127.0.0.1:${gateway.admin.port}/readyz`);
    assert.equal(ready.status, 503, "a backend is down, so not ready");
    const body = (await ready.json()) as { backends: { backend: string; reachable: boolean }[] };
    assert.deepEqual(
      body.backends.map((b) => b.reachable),
      [true, true, false],
    );
  });
});
