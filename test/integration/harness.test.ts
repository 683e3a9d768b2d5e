import assert from "node:assert/strict";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { cleanupClients, hostsFile, podman, podmanStore, skopeo, type PodmanStore } from "../helpers/clients.js";
import { buildOciImage, sha256Digest, type OciImage } from "../helpers/oci.js";
import { formatRun, run, type RunResult } from "../helpers/process.js";
import { startRegistry, type Registry } from "../helpers/registry.js";

// Proves the helpers against a bare registry, without the gateway in between.

function assertSucceeded(what: string, args: readonly string[], result: RunResult): void {
  assert.equal(result.code, 0, formatRun(what, args, result));
}

describe("test harness: real registry + skopeo + podman", () => {
  let registry: Registry;
  let workDir: string;
  let image: OciImage;
  let store: PodmanStore;
  const tag = "v1";
  let repoRef: string;

  before(async () => {
    workDir = await mkdtemp(join(tmpdir(), "rg-harness-"));
    [registry, image, store] = await Promise.all([
      startRegistry(),
      buildOciImage(join(workDir, "image"), { layers: 2, layerSize: 64 * 1024, tag }),
      podmanStore(),
    ]);
    repoRef = `${registry.host}/test/app:${tag}`;
  });

  after(async () => {
    await registry?.stop();
    await store?.remove();
    await cleanupClients();
    if (workDir) await rm(workDir, { recursive: true, force: true });
    if (registry) await assert.rejects(stat(registry.rootDir), { code: "ENOENT" });
  });

  it("pushes an OCI layout with skopeo", async () => {
    const args = ["copy", "--dest-tls-verify=false", image.ociRef, `docker://${repoRef}`];
    assertSucceeded("skopeo", args, await skopeo(args, { timeoutMs: 20_000 }));
  });

  it("reads back the same manifest digest", async () => {
    const args = ["inspect", "--raw", "--tls-verify=false", `docker://${repoRef}`];
    const result = await skopeo(args, { timeoutMs: 10_000 });
    assertSucceeded("skopeo", args, result);
    assert.equal(sha256Digest(result.stdout), image.manifestDigest);
  });

  it("pulls with podman into a vfs store", async () => {
    const pullArgs = ["pull", "--tls-verify=false", repoRef];
    assertSucceeded("podman", pullArgs, await podman(pullArgs, { store, timeoutMs: 20_000 }));

    const inspectArgs = ["image", "inspect", repoRef];
    const inspected = await podman(inspectArgs, { store, timeoutMs: 10_000 });
    assertSucceeded("podman", inspectArgs, inspected);
    const [info] = JSON.parse(inspected.stdout) as Array<{ RootFS: { Layers: string[] } }>;
    assert.ok(info, "podman image inspect printed no image");
    assert.equal(info.RootFS.Layers.length, 2);
    assert.deepEqual(info.RootFS.Layers, image.diffIds);
  });

  it("resolves a test host name through a private hosts file", async () => {
    const hosts = await hostsFile(workDir, { "hub.registry.test": "127.0.0.1" });
    const args = ["inspect", "--raw", "--tls-verify=false", `docker://hub.registry.test:${registry.port}/test/app:${tag}`];
    const result = await skopeo(args, { hosts, timeoutMs: 10_000 });
    assertSucceeded("skopeo (hosts namespace)", args, result);
    assert.equal(sha256Digest(result.stdout), image.manifestDigest);
  });

  it("starts a token-auth registry that challenges anonymous clients", async () => {
    const bundle = join(workDir, "token-signer.pem");
    const args = ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=token-signer",
      "-days", "1", "-keyout", join(workDir, "token-signer.key"), "-out", bundle];
    assertSucceeded("openssl", args, await run("openssl", args, { timeoutMs: 10_000 }));

    const guarded = await startRegistry({
      auth: { realm: "https://127.0.0.1:1/token", service: "registry.test", issuer: "gateway-test", rootCertBundle: bundle },
    });
    try {
      const response = await fetch(`${guarded.url}/v2/`);
      assert.equal(response.status, 401);
      assert.match(response.headers.get("www-authenticate") ?? "", /^Bearer realm="https:\/\/127\.0\.0\.1:1\/token"/);
    } finally {
      await guarded.stop();
    }
  });
});
