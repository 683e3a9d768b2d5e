// Runs alone: runs a docker engine, the heaviest component of the suite, pushing 300 MiB layers for a minute.
// The client users type. The real docker engine (Debian docker.io 20.10, test/helpers/docker.ts)
// against real distribution registries behind the gateway, in both auth modes, over TLS that the daemon
// trusts only through certs.d/HOST:PORT/ca.crt. The test names resolve to ::1 and the gateway listens
// there: dockerd treats every 127.0.0.0/8 registry as insecure (no certificate check, plain-HTTP
// fallback), so a test on 127.0.0.1 would prove nothing about TLS.
//
// The texts docker prints are asserted exactly: they are what the README quotes. Set
// RG_DOCKER_TRANSCRIPT=FILE to get every docker command with its output and duration.
import assert from "node:assert/strict";
import { appendFileSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import https from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect as tlsConnect } from "node:tls";
import { after, before, describe, it } from "node:test";
import type { AccessRuleConfig } from "../../src/config/schema.js";
import { cleanupClients, hostsFile, skopeo } from "../helpers/clients.js";
import { hostDockerState, startDockerEngine, type DockerClient, type DockerEngine } from "../helpers/docker.js";
import { startTestGateway, type TestGateway } from "../helpers/gateway.js";
import { buildOciImage } from "../helpers/oci.js";
import { formatRun, type RunResult } from "../helpers/process.js";
import { accessLog, startRegistry, type Registry } from "../helpers/registry.js";
import { htpasswdLine } from "../helpers/htpasswd.js";

const HUB = "hub.registry.test"; // htpasswd
const TEAM = "team.registry.test"; // token
const ALL_HOSTS = [HUB, TEAM];

const RULES: AccessRuleConfig[] = [
  { who: ["admin"], repositories: ["**"], actions: ["pull", "push", "delete", "catalog"] },
  // Push without delete: cancelling its own upload must still work.
  { who: ["ci"], repositories: ["ci/**"], actions: ["pull", "push"] },
  { who: ["reader"], repositories: ["**"], actions: ["pull"] },
];

const BIG_LAYER = 300 * 1024 * 1024;
const TRANSCRIPT = process.env.RG_DOCKER_TRANSCRIPT;


/** Runs the docker CLI; the transcript (when asked for) gets the command, its output and its duration. */
async function docker(client: DockerClient, args: readonly string[], options: { input?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  const started = Date.now();
  const result = await client.run(args, options);
  if (TRANSCRIPT) {
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    appendFileSync(TRANSCRIPT, `$ docker ${args.join(" ")}    # exit ${result.code}, ${seconds} s\n${result.stdout}${result.stderr ? `--- stderr ---\n${result.stderr}` : ""}\n`);
  }
  return result;
}

async function dockerOk(client: DockerClient, args: readonly string[], options: { input?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  const result = await docker(client, args, options);
  assert.equal(result.code, 0, formatRun("docker", args, result));
  return result;
}

async function dockerFails(client: DockerClient, args: readonly string[], options: { input?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  const result = await docker(client, args, options);
  assert.notEqual(result.code, 0, formatRun("docker", args, result));
  assert.ok(!result.timedOut, formatRun("docker", args, result));
  return result;
}

/** `v1: digest: sha256:… size: N`, the last line of a successful docker push. */
function pushedDigest(result: RunResult, tag: string): string {
  const match = new RegExp(`^${tag}: digest: (sha256:[0-9a-f]{64}) size: \\d+$`, "m").exec(result.stdout);
  assert.ok(match, `no digest line in\n${result.stdout}`);
  return match[1]!;
}

/** Never an HTML page and never a JSON parser tripping over one. */
function assertNoHtml(result: RunResult): void {
  const text = result.stdout + result.stderr;
  assert.doesNotMatch(text, /invalid character '<'|<html|<!DOCTYPE/i);
}

const SCHEMA2 = "application/vnd.docker.distribution.manifest.v2+json";

/** What the backend itself holds for repository:reference, bypassing the gateway. */
async function backendManifest(registry: Registry, repository: string, reference: string) {
  const res = await fetch(`${registry.url}/v2/${repository}/manifests/${reference}`, { headers: { accept: SCHEMA2 } });
  assert.equal(res.status, 200, `${repository}:${reference} on the backend`);
  return { digest: res.headers.get("docker-content-digest"), manifest: (await res.json()) as { config: { digest: string }; layers: { digest: string; size: number }[] } };
}

/** An HTTPS request to the gateway on ::1 under a test name, verified against the gateway's CA alone. */
function gatewayGet(port: number, caPem: string, host: string, path: string, headers: Record<string, string> = {}) {
  return new Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string }>((resolve, reject) => {
    const req = https.request({ host: "::1", port, path, servername: host, ca: caPem, headers: { host: `${host}:${port}`, ...headers }, agent: false }, (res) => {
      let body = "";
      res.setEncoding("utf8").on("data", (chunk: string) => (body += chunk));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

describe("docker CLI (dockerd 20.10) through the gateway, TLS trusted only via certs.d", { timeout: 600_000 }, () => {
  let workDir: string;
  let hub: Registry;
  let team: Registry;
  let gateway: TestGateway;
  let engine: DockerEngine;
  let smallArchive: string;
  let bigArchive: string;
  let hostBefore: Record<string, string>;
  const hostPort = (host: string) => `${host}:${gateway.port}`;

  before(async () => {
    hostBefore = await hostDockerState();
    workDir = await mkdtemp(join(tmpdir(), "rg-docker-cli-"));
    const htpasswd = join(workDir, "htpasswd");
    const lines = await Promise.all([htpasswdLine("admin", "Admin123"), htpasswdLine("reader", "Reader123"), htpasswdLine("ci", "Ci123456")]);
    await writeFile(htpasswd, `${lines.join("\n")}\n`);

    [hub, team] = await Promise.all([startRegistry({ accessLog: true }), startRegistry({ accessLog: true })]);
    gateway = await startTestGateway({
      listen: "[::1]:0",
      tokens: { issuer: "registry-gateway" },
      sites: [
        { name: "hub", hosts: [HUB], backend: hub.url, default: true, auth: { type: "htpasswd", htpasswd, rules: RULES } },
        { name: "team", hosts: [TEAM], backend: team.url, auth: { type: "token", htpasswd, rules: RULES } },
      ],
    });
    assert.ok(gateway.caPem.includes("BEGIN CERTIFICATE"), "the gateway generated a CA");

    const hosts = await hostsFile(workDir, Object.fromEntries(ALL_HOSTS.map((host) => [host, "::1"])));
    engine = await startDockerEngine({ hostsFile: hosts });
    for (const host of ALL_HOSTS) await engine.trust(hostPort(host), gateway.caPem);

    // Images: OCI layouts → docker-archive (skopeo, no network) → `docker load` in each mode.
    const [small, big] = await Promise.all([
      // 1 MiB: above docker's "small layer" size (100 KiB), so a push tries up to three mount sources.
      buildOciImage(join(workDir, "small"), { layers: 1, layerSize: 1024 * 1024, tag: "v1" }),
      buildOciImage(join(workDir, "big"), { layers: 1, layerSize: BIG_LAYER, tag: "v1" }),
    ]);
    smallArchive = join(workDir, "small.tar");
    bigArchive = join(workDir, "big.tar");
    for (const [image, archive, name] of [[small, smallArchive, "rg-test/small:v1"], [big, bigArchive, "rg-test/big:v1"]] as const) {
      const args = ["copy", image.ociRef, `docker-archive:${archive}:${name}`];
      const result = await skopeo(args, { timeoutMs: 120_000 });
      assert.equal(result.code, 0, formatRun("skopeo", args, result));
    }
    await Promise.all([rm(join(workDir, "small"), { recursive: true }), rm(join(workDir, "big"), { recursive: true })]);
  });

  after(async () => {
    await engine?.stop();
    await gateway?.stop();
    await Promise.all([hub?.stop(), team?.stop()]);
    await cleanupClients();
    if (workDir) await rm(workDir, { recursive: true, force: true });
    // Last, so a failure here is not hidden by a failing test; compared after the daemon has stopped.
    if (hostBefore) assert.deepEqual(await hostDockerState(), hostBefore, "the docker engine left the host's network settings and paths alone");
  });

  it("presents, for every test name on [::1], a certificate that verifies against the gateway's CA alone", async () => {
    for (const host of ALL_HOSTS) {
      const names = await new Promise<string>((resolve, reject) => {
        const socket = tlsConnect({ host: "::1", port: gateway.port, servername: host, ca: gateway.caPem }, () => {
          resolve(socket.getPeerCertificate().subjectaltname ?? "");
          socket.end();
        });
        socket.on("error", reject);
      });
      assert.ok(names.split(", ").includes(`DNS:${host}`), `${host} in ${names}`);
    }
  });

  it("runs dockerd without changing the host's network settings or paths", async () => {
    assert.deepEqual(await hostDockerState(), hostBefore);
    const client = await engine.client();
    assert.match(engine.log(), new RegExp(`API listen on ${engine.dir}/docker.sock`));
    const info = await dockerOk(client, ["info", "--format", "{{.DockerRootDir}} {{.Driver}} {{json .RegistryConfig.InsecureRegistryCIDRs}}"]);
    // The reason the tests use ::1: every 127.0.0.0/8 registry is insecure to dockerd, whatever certs.d says.
    assert.equal(info.stdout.trim(), `${engine.dir}/root vfs ["127.0.0.0/8"]`);
  });

  it("trusts the gateway through certs.d only: without ca.crt docker refuses the certificate", async () => {
    const caFile = join(engine.etcDocker, "certs.d", hostPort(HUB), "ca.crt");
    await rm(caFile);
    try {
      const client = await engine.client();
      const login = await dockerFails(client, ["login", "--username", "admin", "--password-stdin", hostPort(HUB)], { input: "Admin123\n" });
      assert.equal(login.stderr, `Error response from daemon: Get "https://${hostPort(HUB)}/v2/": x509: certificate signed by unknown authority\n`);
    } finally {
      await engine.trust(hostPort(HUB), gateway.caPem);
    }
  });

  for (const mode of ["htpasswd", "token"] as const) {
    describe(`${mode} site`, () => {
      const host = mode === "htpasswd" ? HUB : TEAM;
      const repo = mode === "htpasswd" ? "hub" : "team";
      const backend = () => (mode === "htpasswd" ? hub : team);
      const ref = (repository: string, tag = "v1") => `${hostPort(host)}/${repository}:${tag}`;
      let admin: DockerClient;
      let smallDigest: string;
      let bigDigest: string;

      before(async () => {
        admin = await engine.client();
      });

      it("docker login with a wrong password is refused", async () => {
        const client = await engine.client();
        const result = await dockerFails(client, ["login", "--username", "admin", "--password-stdin", hostPort(host)], { input: "wrong\n" });
        assertNoHtml(result);
        // Basic: docker reports the status of its own /v2/ check and never reads the body. Token: the token
        // endpoint's JSON error message.
        const expected =
          mode === "htpasswd"
            ? `Error response from daemon: login attempt to https://${hostPort(host)}/v2/ failed with status: 401 Unauthorized\n`
            : `Error response from daemon: Get "https://${hostPort(host)}/v2/": unauthorized: invalid username or password\n`;
        assert.equal(result.stderr, expected);
        assert.equal(await readFile(join(client.configDir, "config.json"), "utf8").catch(() => "none"), "none", "nothing stored");
      });

      it("docker login as admin: Login Succeeded", async () => {
        const result = await dockerOk(admin, ["login", "--username", "admin", "--password-stdin", hostPort(host)], { input: "Admin123\n" });
        assert.equal(result.stdout, "Login Succeeded\n");
        const config = JSON.parse(await readFile(join(admin.configDir, "config.json"), "utf8")) as { auths: Record<string, unknown> };
        assert.deepEqual(Object.keys(config.auths), [hostPort(host)]);
      });

      it("pushes a small image: the backend holds the digest docker printed", async () => {
        await dockerOk(admin, ["load", "--input", smallArchive]);
        await dockerOk(admin, ["tag", "rg-test/small:v1", ref(`${repo}/small`)]);
        const push = await dockerOk(admin, ["push", ref(`${repo}/small`)]);
        smallDigest = pushedDigest(push, "v1");
        assert.equal((await backendManifest(backend(), `${repo}/small`, "v1")).digest, smallDigest);
      });

      it("pushes an image with a ≥ 300 MiB layer", async () => {
        await dockerOk(admin, ["load", "--input", bigArchive], { timeoutMs: 300_000 });
        await dockerOk(admin, ["tag", "rg-test/big:v1", ref(`${repo}/big`)]);
        const push = await dockerOk(admin, ["push", ref(`${repo}/big`)], { timeoutMs: 300_000 });
        bigDigest = pushedDigest(push, "v1");
        const { digest, manifest } = await backendManifest(backend(), `${repo}/big`, "v1");
        assert.equal(digest, bigDigest);
        assert.equal(manifest.layers.length, 1);
        assert.ok(manifest.layers[0]!.size >= BIG_LAYER, `layer of ${manifest.layers[0]!.size} bytes`);
      });

      it("docker rmi, then pull: the layers come back through the gateway with the same digests", async () => {
        for (const [name, digest] of [["small", smallDigest], ["big", bigDigest]] as const) {
          const id = (await dockerOk(admin, ["image", "inspect", "--format", "{{.Id}}", ref(`${repo}/${name}`)])).stdout.trim();
          await dockerOk(admin, ["rmi", "--force", id]);
          await dockerFails(admin, ["image", "inspect", id]);
          const pull = await dockerOk(admin, ["pull", ref(`${repo}/${name}`)], { timeoutMs: 300_000 });
          assert.match(pull.stdout, /: Pull complete$/m);
          assert.doesNotMatch(pull.stdout, /Already exists/);
          assert.ok(pull.stdout.includes(`Digest: ${digest}\nStatus: Downloaded newer image for ${ref(`${repo}/${name}`)}\n`), pull.stdout);
          const repoDigest = await dockerOk(admin, ["inspect", "--format", "{{index .RepoDigests 0}}", ref(`${repo}/${name}`)]);
          assert.equal(repoDigest.stdout.trim(), `${hostPort(host)}/${repo}/${name}@${digest}`);
          assert.equal((await dockerOk(admin, ["image", "inspect", "--format", "{{.Id}}", ref(`${repo}/${name}`)])).stdout.trim(), id);
        }
      });

      it("pulls by digest", async () => {
        const byDigest = `${hostPort(host)}/${repo}/small@${smallDigest}`;
        await dockerOk(admin, ["rmi", "--force", (await dockerOk(admin, ["image", "inspect", "--format", "{{.Id}}", ref(`${repo}/small`)])).stdout.trim()]);
        const pull = await dockerOk(admin, ["pull", byDigest]);
        assert.ok(pull.stdout.includes(`Digest: ${smallDigest}\nStatus: Downloaded newer image for ${byDigest}\n`), pull.stdout);
        assert.equal((await dockerOk(admin, ["inspect", "--format", "{{index .RepoDigests 0}}", byDigest])).stdout.trim(), byDigest);
      });

      it("docker manifest inspect shows the pushed manifest", async () => {
        const result = await dockerOk(admin, ["manifest", "inspect", "--verbose", ref(`${repo}/big`)]);
        const { manifest: backendCopy } = await backendManifest(backend(), `${repo}/big`, "v1");
        const shown = JSON.parse(result.stdout) as { Ref: string; Descriptor: { digest: string; mediaType: string }; SchemaV2Manifest: typeof backendCopy };
        assert.equal(shown.Ref, ref(`${repo}/big`));
        assert.equal(shown.Descriptor.digest, bigDigest);
        assert.equal(shown.Descriptor.mediaType, SCHEMA2);
        assert.deepEqual(shown.SchemaV2Manifest, backendCopy);
      });

      it("reader logs in and pulls; a push as reader is refused naming the repository and the right", async () => {
        const reader = await engine.client();
        const login = await dockerOk(reader, ["login", "--username", "reader", "--password-stdin", hostPort(host)], { input: "Reader123\n" });
        assert.equal(login.stdout, "Login Succeeded\n");
        await dockerOk(reader, ["pull", ref(`${repo}/small`)]);
        await dockerOk(reader, ["tag", ref(`${repo}/small`), ref(`${repo}/readers-own`)]);
        const push = await dockerFails(reader, ["push", ref(`${repo}/readers-own`)]);
        assertNoHtml(push);
        // htpasswd: the 403 DENIED JSON message. Token: the insufficient_scope challenge's error_description
        // (without it docker prints only "denied: requested access to the resource is denied"). Same words.
        const expected = `denied: requested access to the resource is denied: push on repository ${repo}/readers-own is not granted to reader\n`;
        assert.equal(push.stderr, expected);
        assert.equal((await fetch(`${backend().url}/v2/${repo}/readers-own/tags/list`)).status, 404, "nothing reached the backend");
      });

      it("after docker logout, an anonymous pull is refused", async () => {
        const client = await engine.client();
        await dockerOk(client, ["login", "--username", "admin", "--password-stdin", hostPort(host)], { input: "Admin123\n" });
        await dockerOk(client, ["pull", ref(`${repo}/small`)]);
        const logout = await dockerOk(client, ["logout", hostPort(host)]);
        assert.equal(logout.stdout, `Removing login credentials for ${hostPort(host)}\n`);
        const pull = await dockerFails(client, ["pull", ref(`${repo}/small`)]);
        assertNoHtml(pull);
        // htpasswd: docker answers the Basic challenge itself when it has no credentials. Token: docker gets an
        // anonymous token, and the manifest request's insufficient_scope challenge says what is missing.
        const expected =
          mode === "htpasswd"
            ? `Error response from daemon: Head "https://${hostPort(host)}/v2/${repo}/small/manifests/v1": no basic auth credentials\n`
            : `Error response from daemon: pull access denied for ${hostPort(host)}/${repo}/small, repository does not exist or may require 'docker login': ` +
              `denied: requested access to the resource is denied: pull on repository ${repo}/small is not granted to anonymous\n`;
        assert.equal(pull.stderr, expected);
      });

      it("a push whose cross-repository mounts fall back cancels the spare upload without a warning", async () => {
        const ci = await engine.client();
        await dockerOk(ci, ["login", "--username", "ci", "--password-stdin", hostPort(host)], { input: "Ci123456\n" });
        await dockerOk(ci, ["load", "--input", smallArchive]);
        // ci/a gets the layer by upload, ci/b by a mount from ci/a: docker now knows two sources.
        await dockerOk(ci, ["tag", "rg-test/small:v1", ref("ci/a")]);
        await dockerOk(ci, ["push", ref("ci/a")]);
        await dockerOk(ci, ["tag", "rg-test/small:v1", ref("ci/b")]);
        const mounted = await dockerOk(ci, ["push", ref("ci/b")]);
        assert.match(mounted.stdout, /: Mounted from ci\/a$/m);
        // Unlink the layer from both sources on the backend: both mounts now fall back to an upload (202),
        // and docker cancels the first spare upload with a DELETE that only has push behind it.
        const { manifest } = await backendManifest(backend(), "ci/a", "v1");
        const layer = manifest.layers[0]!.digest;
        for (const source of ["ci/a", "ci/b"]) {
          const res = await fetch(`${backend().url}/v2/${source}/blobs/${layer}`, { method: "DELETE" });
          assert.equal(res.status, 202, `unlinking ${layer} from ${source}`);
        }
        assert.match(engine.log(), /API listen on /, "the daemon's log is captured");
        const logBefore = engine.log().length;
        await dockerOk(ci, ["tag", "rg-test/small:v1", ref("ci/c")]);
        const push = await dockerOk(ci, ["push", ref("ci/c")]);
        assert.doesNotMatch(push.stdout, /Mounted from/);
        const daemonLog = engine.log().slice(logBefore);
        if (TRANSCRIPT) {
          const requests = accessLog(backend()).filter((line) => line.uri.startsWith("/v2/ci/c/"));
          appendFileSync(TRANSCRIPT, `--- backend requests for ci/c ---\n${requests.map((r) => r.line).join("\n")}\n--- dockerd log ---\n${daemonLog}\n`);
        }
        assert.doesNotMatch(daemonLog, /failed to cancel upload/);
        // The cancel did happen, and reached the backend.
        const cancels = accessLog(backend()).filter((line) => line.method === "DELETE" && line.uri.startsWith("/v2/ci/c/blobs/uploads/"));
        assert.equal(cancels.length, 1, "docker cancelled one spare upload");
        assert.equal(cancels[0]!.status, 204, cancels[0]!.line);
      });

      it("docker search lists the repositories the caller may pull, and hides the rest", async () => {
        const searched = async (client: DockerClient, term: string) => {
          const result = await dockerOk(client, ["search", "--no-trunc", `${hostPort(host)}/${term}`]);
          const [header = "", ...rows] = result.stdout.trimEnd().split("\n");
          assert.match(header, /^NAME\s+DESCRIPTION\s+STARS\s+OFFICIAL\s+AUTOMATED$/, result.stdout);
          return rows.map((row) => row.split(/\s+/)[0]);
        };
        assert.deepEqual(await searched(admin, "small"), [`${repo}/small`]);
        assert.deepEqual(await searched(admin, "ci/"), ["ci/a", "ci/b", "ci/c"]);
        // ci may pull ci/** only: the same search finds nothing of the site's own repositories.
        const ci = await engine.client();
        await dockerOk(ci, ["login", "--username", "ci", "--password-stdin", hostPort(host)], { input: "Ci123456\n" });
        assert.deepEqual(await searched(ci, "small"), []);
        assert.deepEqual(await searched(ci, "a"), ["ci/a"]);
      });

      it("backend down: docker shows the gateway's 502 status, never HTML", async () => {
        // Last in this mode: the backend stops for good; admin is still logged in. docker 20.10 reads error
        // bodies of 4xx answers only: for a 5xx it prints the status line. (A push would print the same after
        // retrying each layer for 50 s: 5, 10, 15 and 20 s; dockerd 20.10 has no option to shorten that.)
        await backend().stop();
        const pull = await dockerFails(admin, ["pull", ref(`${repo}/small`)]);
        assertNoHtml(pull);
        assert.equal(pull.stderr, "Error response from daemon: received unexpected HTTP status: 502 Bad Gateway\n");
        const login = await dockerFails(await engine.client(), ["login", "--username", "admin", "--password-stdin", hostPort(host)], { input: "Admin123\n" });
        assertNoHtml(login);
        assert.equal(login.stderr, `Error response from daemon: login attempt to https://${hostPort(host)}/v2/ failed with status: 502 Bad Gateway\n`);

        // What docker got: the gateway's JSON error.
        let authorization = `Basic ${Buffer.from("admin:Admin123").toString("base64")}`;
        if (mode === "token") {
          const token = await gatewayGet(gateway.port, gateway.caPem, host, `/token?service=team&scope=repository:${repo}/small:pull`, { authorization });
          assert.equal(token.status, 200, token.body);
          authorization = `Bearer ${(JSON.parse(token.body) as { token: string }).token}`;
        }
        const raw = await gatewayGet(gateway.port, gateway.caPem, host, `/v2/${repo}/small/manifests/v1`, { authorization });
        assert.equal(raw.status, 502, raw.body);
        assert.equal(raw.headers["content-type"], "application/json; charset=utf-8");
        assert.equal(raw.headers["docker-distribution-api-version"], "registry/2.0");
        assert.equal((JSON.parse(raw.body) as { errors: { code: string }[] }).errors[0]!.code, "UNAVAILABLE");
      });
    });
  }
});
