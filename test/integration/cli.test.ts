// The command line as users run it — serve, config check, cert ca — and graceful shutdown. The shipped
// configurations are served as written, on their fixed ports: the file holds them for its whole run.
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { cli, startGatewayProcess } from "../helpers/cli.js";
import { gatewayRequest } from "../helpers/gateway.js";
import { holdShippedPorts } from "../helpers/ports.js";
import { waitFor } from "../helpers/process.js";
import { startRegistry, type Registry } from "../helpers/registry.js";
import { patchChunked, startUpload } from "../helpers/upload.js";

const HUB = "hub.registry.test";

describe("command line", () => {
  let dir: string;
  let registry: Registry;
  let releasePorts: (() => Promise<void>) | undefined;

  before(async () => {
    releasePorts = await holdShippedPorts();
    dir = await mkdtemp(join(tmpdir(), "rg-cli-"));
    registry = await startRegistry();
  });

  after(async () => {
    await registry?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
    await releasePorts?.();
  });

  const writeConfig = async (name: string, text: string) => {
    const path = join(dir, name);
    await writeFile(path, text);
    return path;
  };

  it("config check accepts the shipped configurations", async () => {
    for (const file of ["config/gateway.yaml", "config/examples/two-registries.yaml"]) {
      const result = await cli(["config", "check", file]);
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, /OK/);
    }
  });

  it("config check lists every error with file:line:column, the key and what is expected", async () => {
    const path = await writeConfig(
      "broken.yaml",
      [
        "listen: 127.0.0.1:5443",
        "sites:",
        "  - hosts: [hub.registry.test]",
        "    bakend: http://127.0.0.1:5001",
        "  - hosts: [team.registry.test]",
        "    backend: ftp://127.0.0.1:5002",
        "",
      ].join("\n"),
    );
    const result = await cli(["config", "check", path]);
    assert.equal(result.code, 2);
    const lines = result.stderr.trim().split("\n");
    const line = (pattern: RegExp) => lines.find((l) => pattern.test(l));
    assert.ok(line(new RegExp(`^${path}:4:5 sites\\[0\\]\\.bakend: unknown key "bakend" \\(expected one of: .*backend`)), result.stderr);
    assert.ok(line(new RegExp(`^${path}:3:5 sites\\[0\\]: expected one of backend \\(a registry\\)`)), result.stderr);
    assert.ok(line(new RegExp(`^${path}:6:5 sites\\[1\\]\\.backend: expected an http:// or https:// URL`)), result.stderr);
    assert.equal(lines.length, 3, result.stderr);
  });

  it("config check names a missing certificate file", async () => {
    const path = await writeConfig(
      "missing-cert.yaml",
      [
        "sites:",
        "  - hosts: [files.registry.test]",
        "    backend: http://127.0.0.1:5003",
        "    tls:",
        "      source: files",
        "      cert: /nonexistent/domain.crt",
        "      key: /nonexistent/domain.key",
        "",
      ].join("\n"),
    );
    const result = await cli(["config", "check", path]);
    assert.equal(result.code, 2);
    assert.match(result.stderr, new RegExp(`^${path}:6:7 sites\\[0\\]\\.tls\\.cert: file not found: /nonexistent/domain.crt$`, "m"));
    assert.match(result.stderr, new RegExp(`^${path}:7:7 sites\\[0\\]\\.tls\\.key: file not found: /nonexistent/domain.key$`, "m"));
  });

  it("serve refuses an invalid config the same way, before listening", async () => {
    const path = await writeConfig("bad-url.yaml", "sites:\n  - hosts: [a.test]\n    backend: not a url\n");
    const result = await cli(["serve", "--config", path]);
    assert.equal(result.code, 2);
    assert.match(result.stderr, new RegExp(`${path}:3:5 sites\\[0\\]\\.backend: expected an absolute http:// or https:// URL`));
  });

  it("serve exits with a clear error when its port is in use", async () => {
    const blocker = net.createServer().listen(0, "127.0.0.1");
    await new Promise((resolve) => blocker.once("listening", resolve));
    const port = (blocker.address() as net.AddressInfo).port;
    try {
      const path = await writeConfig(
        "busy.yaml",
        `listen: 127.0.0.1:${port}\nadmin: { listen: "127.0.0.1:0" }\ndataDir: ${dir}/busy\nsites:\n  - hosts: [a.test]\n    backend: ${registry.url}\n`,
      );
      const result = await cli(["serve", "--config", path]);
      assert.equal(result.code, 1);
      assert.match(result.stdout + result.stderr, new RegExp(`cannot listen for HTTPS on 127.0.0.1:${port}: the address is already in use`));
    } finally {
      blocker.close();
    }
  });

  it("cert ca prints the CA that signs the served certificate", async () => {
    const dataDir = join(dir, "ca-data");
    const path = await writeConfig(
      "ca.yaml",
      `listen: 127.0.0.1:0\nadmin: { listen: "127.0.0.1:0" }\ndataDir: ${dataDir}\nsites:\n  - hosts: [${HUB}]\n    backend: ${registry.url}\n`,
    );
    const printed = await cli(["cert", "ca", "--config", path]);
    assert.equal(printed.code, 0, printed.stderr);
    assert.match(printed.stdout, /^-----BEGIN CERTIFICATE-----\n[\s\S]+-----END CERTIFICATE-----\n$/);

    const gateway = await startGatewayProcess(path);
    try {
      assert.equal((await readFile(gateway.caFile!, "utf8")).trim(), printed.stdout.trim(), "the running gateway reuses the printed CA");
      const ready = gateway.logs().find((l) => l.dockerCertsD);
      assert.deepEqual(ready?.dockerCertsD, [`/etc/docker/certs.d/${HUB}:${gateway.httpsPort}/ca.crt`]);
      // Verification with only the printed CA succeeds for the site's name.
      const res = await gatewayRequest(gateway.httpsPort, printed.stdout, HUB, { path: "/v2/" });
      assert.equal(res.status, 200);
    } finally {
      await gateway.process.stop();
    }
  });

  it("SIGTERM stops accepting, lets an upload in flight finish, then exits 0", async () => {
    const path = await writeConfig(
      "drain.yaml",
      `listen: 127.0.0.1:0\nadmin: { listen: "127.0.0.1:0" }\ndataDir: ${dir}/drain\ntimeouts: { drain: 20s }\nsites:\n  - hosts: [${HUB}]\n    backend: ${registry.url}\n`,
    );
    const gateway = await startGatewayProcess(path);
    const caPem = await readFile(gateway.caFile!, "utf8");
    const target = { port: gateway.httpsPort, caPem, host: HUB };
    const location = await startUpload(target, "drain/app");
    // 40 × 64 KiB, 100 ms apart: about 4 s of upload, SIGTERM 1 s in.
    const upload = patchChunked(target, location, { bytes: 40 * 64 * 1024, chunkSize: 64 * 1024, delayMs: 100 });
    await new Promise((resolve) => setTimeout(resolve, 1000));
    process.kill(gateway.process.pid, "SIGTERM");
    await new Promise((resolve) => setTimeout(resolve, 300));

    await assert.rejects(gatewayRequest(gateway.httpsPort, caPem, HUB, { path: "/v2/" }), /ECONNREFUSED/);
    const result = await upload;
    assert.equal(result.status, 202, "the upload in flight completed");
    assert.equal(result.sent, 40 * 64 * 1024);
    const exit = await gateway.process.exited();
    assert.deepEqual(exit, { code: 0, signal: null });
    assert.ok(gateway.logs().some((l) => l.msg === "gateway stopped"));
  });

  it("config/examples/two-registries.yaml runs as written from the repository root", async () => {
    const [hub, team] = await Promise.all([startRegistry({ port: 5001 }), startRegistry({ port: 5002 })]);
    const gateway = await startGatewayProcess("config/examples/two-registries.yaml", { DATA_DIR: join(dir, "example-data") });
    try {
      assert.equal(gateway.httpsPort, 5443);
      assert.equal(gateway.adminPort, 9091);
      assert.equal(gateway.caFile, join(dir, "example-data", "ca", "ca.crt"));
      const caPem = await readFile(gateway.caFile!, "utf8");
      // Ready once its health checks have reached both backends (on a loaded machine the first may not).
      await waitFor(async () => (await fetch("http://127.0.0.1:9091/readyz")).status === 200, { timeoutMs: 20_000, what: "/readyz 200" });
      for (const host of [HUB, "team.registry.test"]) {
        const res = await gatewayRequest(5443, caPem, host, { path: "/v2/" });
        assert.equal(res.status, 200, host);
      }
    } finally {
      await gateway.process.stop();
      await Promise.all([hub.stop(), team.stop()]);
    }
  });

  it("the default config/gateway.yaml (npm start) starts on a fresh machine", async () => {
    const gateway = await startGatewayProcess("config/gateway.yaml", { DATA_DIR: join(dir, "default-data") });
    try {
      assert.equal(gateway.httpsPort, 5443);
      const health = await fetch("http://127.0.0.1:9091/healthz");
      assert.equal(health.status, 200);
      const caPem = await readFile(gateway.caFile!, "utf8");
      // Its managed backend: a registry the gateway started, answering at once.
      const res = await gatewayRequest(5443, caPem, "localhost", { path: "/v2/" });
      assert.equal(res.status, 200, res.body.toString());
      const ready = await fetch("http://127.0.0.1:9091/readyz");
      assert.equal(ready.status, 200, await ready.text());
    } finally {
      await gateway.process.stop();
    }
  });
});
