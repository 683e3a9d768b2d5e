// Admin actions need the admin token. Any local process can connect to the loopback admin listener: before
// the token, another local user could make the gateway reload, or order a certificate from the ACME CA at
// every call. Reads (/healthz, /readyz, /metrics) stay open.
import assert from "node:assert/strict";
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, describe, it } from "node:test";
import { generatedAdminTokenPath } from "../../src/admin-token.js";
import { gatewayConfig, type GatewayConfigInput } from "../../src/config/schema.js";
import { cli, startGatewayProcess, type GatewayProcess } from "../helpers/cli.js";
import { startTestGateway, type TestGateway } from "../helpers/gateway.js";
import { freePort } from "../helpers/ports.js";
import { formatRun, run } from "../helpers/process.js";
import { rawExchange } from "../helpers/raw-http.js";
import { startRegistry, type Registry } from "../helpers/registry.js";

const HUB = "hub.registry.test";

describe("admin actions need the admin token", () => {
  let workDir: string;
  let dataDir: string;
  let registry: Registry;
  let gateway: TestGateway;
  let token: string;
  /** How often the gateway read its configuration for a reload: a refused reload never gets that far. */
  let configReads = 0;

  const admin = (path: string, init: RequestInit = {}) => fetch(`http://127.0.0.1:${gateway.admin.port}${path}`, init);
  const hubSerial = () => gateway.certificates.info().find((c) => c.site === "hub")!.serial;

  before(async () => {
    workDir = await mkdtemp(join(tmpdir(), "rg-admin-auth-"));
    dataDir = join(workDir, "data");
    registry = await startRegistry();
    const settings: GatewayConfigInput = { dataDir, sites: [{ name: "hub", hosts: [HUB], backend: registry.url }] };
    const reread = { listen: "127.0.0.1:0", admin: { listen: "127.0.0.1:0" }, log: { level: "debug" as const }, ...settings };
    gateway = await startTestGateway(settings, {
      configSource: async () => {
        configReads++;
        return gatewayConfig.parse(reread);
      },
    });
    token = (await readFile(generatedAdminTokenPath(dataDir), "utf8")).trim();
  });

  after(async () => {
    await gateway?.stop();
    await registry?.stop();
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  it("generates the token at start into dataDir/admin/token: 0600 in a 0700 directory", async () => {
    assert.match(token, /^[A-Za-z0-9_-]{43}$/);
    const file = generatedAdminTokenPath(dataDir);
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    assert.equal((await stat(dirname(file))).mode & 0o777, 0o700);
  });

  it("refuses POST /reload and /cert/rotate without the token, or with a wrong one, and does nothing", async () => {
    const serial = hubSerial();
    const wrong = `${token.slice(0, -1)}${token.endsWith("A") ? "B" : "A"}`;
    const attempts: Record<string, Record<string, string>> = {
      none: {},
      "wrong token": { authorization: `Bearer ${wrong}` },
      "the token as Basic": { authorization: `Basic ${Buffer.from(`admin:${token}`).toString("base64")}` },
      "the token without a scheme": { authorization: token },
    };
    for (const path of ["/reload", "/cert/rotate", "/cert/rotate?site=hub"]) {
      for (const [what, headers] of Object.entries(attempts)) {
        const res = await admin(path, { method: "POST", headers });
        assert.equal(res.status, 401, `${path}, ${what}`);
        assert.equal(res.headers.get("content-type"), "application/json; charset=utf-8");
        assert.equal(res.headers.get("docker-distribution-api-version"), "registry/2.0");
        assert.equal(((await res.json()) as { errors: { code: string }[] }).errors[0]!.code, "UNAUTHORIZED", `${path}, ${what}`);
      }
    }
    const inQuery = await admin(`/reload?token=${token}`, { method: "POST" });
    assert.equal(inQuery.status, 401, "the token is taken from the Authorization header only");
    assert.equal(configReads, 0, "no reload happened");
    assert.equal(hubSerial(), serial, "no certificate was rotated");
  });

  it("answers a POST waiting on Expect: 100-continue without inviting its body: 401 without the token, and the connection closed", async () => {
    const head = [`POST /reload HTTP/1.1`, `Host: 127.0.0.1:${gateway.admin.port}`, `Content-Length: ${1024 ** 3}`, "Expect: 100-continue", "", ""].join("\r\n");
    const exchange = await rawExchange({ port: gateway.admin.port }, head, { idleMs: 3000 });
    assert.doesNotMatch(exchange.raw.toString("latin1"), /^HTTP\/1\.1 100 /m, "the client was invited to send its body before the token check");
    assert.equal(exchange.responses.length, 1, exchange.raw.toString("latin1"));
    assert.equal(exchange.responses[0]!.status, 401);
    assert.equal(exchange.closed, true, "the connection stayed open with an unread body announced");
    assert.equal(configReads, 0, "no reload happened");
  });

  it("accepts them with the token", async () => {
    const authorization = `Bearer ${token}`;
    const reloaded = await admin("/reload", { method: "POST", headers: { authorization } });
    assert.equal(reloaded.status, 200);
    assert.deepEqual(await reloaded.json(), { ok: true, sites: ["hub"], warnings: [] });
    assert.equal(configReads, 1);

    const serial = hubSerial();
    const rotated = await admin("/cert/rotate?site=hub", { method: "POST", headers: { authorization } });
    assert.equal(rotated.status, 200);
    assert.equal(((await rotated.json()) as { certificates: { outcome: string }[] }).certificates[0]!.outcome, "rotated");
    assert.notEqual(hubSerial(), serial);
  });

  it("answers GET /healthz, /readyz and /metrics without a token", async () => {
    for (const path of ["/healthz", "/readyz", "/metrics"]) assert.equal((await admin(path)).status, 200, path);
  });

  it("never logs the token", () => {
    assert.ok(gateway.logs.some((line) => line.tokenFile === generatedAdminTokenPath(dataDir)), "the start names the file");
    assert.ok(!JSON.stringify(gateway.logs).includes(token));
  });

  it("another local user cannot reload: the token file is not readable to them, and no token means 401", async (t) => {
    if (process.getuid?.() !== 0) return t.skip("needs root to run curl as another user");
    // Only the gateway's own modes stand between the other user and the token: every directory above is open.
    await chmod(workDir, 0o755);
    await chmod(dataDir, 0o755);
    const file = generatedAdminTokenPath(dataDir);
    const cat = await run("runuser", ["-u", "nobody", "--", "cat", file]);
    assert.notEqual(cat.code, 0, formatRun("cat as nobody", [file], cat));
    assert.match(cat.stderr, /Permission denied/);

    const url = `http://127.0.0.1:${gateway.admin.port}/reload`;
    const script = `curl -s -o /dev/null -w '%{http_code}' -X POST -H "Authorization: Bearer $(cat '${file}' 2>/dev/null)" '${url}'`;
    const curl = await run("runuser", ["-u", "nobody", "--", "sh", "-c", script]);
    assert.equal(curl.stdout, "401", formatRun("curl as nobody", [script], curl));
    const bare = await run("runuser", ["-u", "nobody", "--", "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", url]);
    assert.equal(bare.stdout, "401", formatRun("curl as nobody", [url], bare));
    assert.equal(configReads, 1, "only the reload with the token (previous test) happened");
  });
});

describe("the CLI sends the admin token the configuration leads to", () => {
  let workDir: string;
  let registry: Registry;
  let gateway: GatewayProcess;
  let configPath: string;
  const ADMIN_TOKEN = "k6Vb8sB0yW1cQ2mN4pR7tX9zA3dF5hJ8";

  before(async () => {
    workDir = await mkdtemp(join(tmpdir(), "rg-admin-cli-"));
    configPath = join(workDir, "gateway.yaml");
    const [backend, httpsPort, adminPort] = await Promise.all([startRegistry(), freePort(), freePort()]);
    registry = backend;
    await writeFile(
      configPath,
      [
        `listen: "127.0.0.1:${httpsPort}"`,
        `admin: { listen: "127.0.0.1:${adminPort}" }`,
        `dataDir: ${join(workDir, "data")}`,
        "workers: 1",
        "sites:",
        `  - { name: hub, hosts: [${HUB}], backend: "${registry.url}" }`,
        "",
      ].join("\n"),
    );
    gateway = await startGatewayProcess(configPath, { GATEWAY_ADMIN_TOKEN: ADMIN_TOKEN });
  });

  after(async () => {
    await gateway?.process.stop();
    await registry?.stop();
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  it("GATEWAY_ADMIN_TOKEN in the CLI's environment: reload works; without it, the refusal says why", async () => {
    const args = ["reload", "--config", configPath];
    const reloaded = await cli(args, { env: { GATEWAY_ADMIN_TOKEN: ADMIN_TOKEN } });
    assert.equal(reloaded.code, 0, formatRun("registry-gateway", args, reloaded));
    assert.equal(reloaded.stdout, "reloaded: sites hub\n");

    const refused = await cli(args);
    assert.equal(refused.code, 1, formatRun("registry-gateway", args, refused));
    assert.match(refused.stderr, /refused the admin token: .*admin[/\\]token does not exist/);
    assert.equal(gateway.logs().filter((line) => String(line.msg).startsWith("configuration reloaded")).length, 1, "only the reload with the token happened");
    assert.ok(!gateway.process.output().includes(ADMIN_TOKEN), "the gateway never logs the token");
  });
});
