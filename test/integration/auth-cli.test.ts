// The auth commands (passwd, token cert, config check) and the auth example configs, run as users
// run them: `node dist/main.js …`. The example configurations are served as written, on their fixed ports:
// the file holds them for its whole run.
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { X509Certificate } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { cli, startGatewayProcess } from "../helpers/cli.js";
import { gatewayRequest } from "../helpers/gateway.js";
import { holdShippedPorts } from "../helpers/ports.js";
import { run } from "../helpers/process.js";
import { startRegistry } from "../helpers/registry.js";

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;

describe("auth command line", () => {
  let dir: string;
  let releasePorts: (() => Promise<void>) | undefined;

  before(async () => {
    releasePorts = await holdShippedPorts();
    dir = await mkdtemp(join(tmpdir(), "rg-auth-cli-"));
  });

  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
    await releasePorts?.();
  });

  describe("passwd FILE USER", () => {
    it("creates the file (mode 0600) with a bcrypt entry Apache's htpasswd verifies", async () => {
      const file = join(dir, "new-htpasswd");
      const result = await cli(["passwd", file, "admin", "--password-stdin"], { input: "Admin123\n" });
      assert.equal(result.code, 0, result.stderr);
      assert.equal((await stat(file)).mode & 0o777, 0o600);
      const text = await readFile(file, "utf8");
      assert.match(text, /^admin:\$2y\$10\$[./A-Za-z0-9]{53}\n$/);
      const verified = await run("htpasswd", ["-vb", file, "admin", "Admin123"]);
      assert.equal(verified.code, 0, verified.stderr);
      const wrong = await run("htpasswd", ["-vb", file, "admin", "Admin123\n"]);
      assert.notEqual(wrong.code, 0, "the final line break of stdin is not part of the password");
    });

    it("updates a user in place and keeps every other line as it was", async () => {
      const file = join(dir, "existing-htpasswd");
      const reader = (await run("htpasswd", ["-nbm", "reader", "Reader123"])).stdout.trim();
      await writeFile(file, `# team users\nadmin:$2y$05$${"x".repeat(53)}\n${reader}\n`);
      assert.equal((await cli(["passwd", file, "admin", "--password-stdin", "--cost", "5"], { input: "NewPass1" })).code, 0);
      assert.equal((await cli(["passwd", file, "ci", "--password-stdin", "--cost", "5"], { input: "Ci123456" })).code, 0);
      const lines = (await readFile(file, "utf8")).trimEnd().split("\n");
      assert.equal(lines.length, 4);
      assert.equal(lines[0], "# team users");
      assert.match(lines[1]!, /^admin:\$2y\$05\$/);
      assert.equal(lines[2], reader);
      assert.match(lines[3]!, /^ci:\$2y\$05\$/);
      for (const [user, password] of [["admin", "NewPass1"], ["reader", "Reader123"], ["ci", "Ci123456"]]) {
        assert.equal((await run("htpasswd", ["-vb", file, user!, password!])).code, 0, user);
      }
    });

    it("refuses a user name with a colon, an empty password, and a non-terminal stdin without --password-stdin", async () => {
      const file = join(dir, "refused-htpasswd");
      const colon = await cli(["passwd", file, "a:b", "--password-stdin"], { input: "x" });
      assert.equal(colon.code, 1);
      assert.match(colon.stderr, /must not contain ':'/);
      const empty = await cli(["passwd", file, "a", "--password-stdin"], { input: "\n" });
      assert.equal(empty.code, 1);
      assert.match(empty.stderr, /password is empty/);
      const noTty = await cli(["passwd", file, "a"], { input: "secret\n" });
      assert.equal(noTty.code, 1);
      assert.match(noTty.stderr, /--password-stdin/);
      await assert.rejects(stat(file), { code: "ENOENT" });
    });
  });

  describe("token cert and config check", () => {
    it("token cert prints the signing certificate kept in dataDir, the same every time", async () => {
      const config = join(dir, "token.yaml");
      await writeFile(
        config,
        [`dataDir: ${JSON.stringify(join(dir, "token-data"))}`, "tokens: { algorithm: RS256 }", "sites:", "  - hosts: [a.test]", "    backend: http://127.0.0.1:5000", ""].join("\n"),
      );
      const first = await cli(["token", "cert", "--config", config]);
      assert.equal(first.code, 0, first.stderr);
      const cert = new X509Certificate(first.stdout);
      assert.equal(cert.publicKey.asymmetricKeyType, "rsa");
      assert.equal(first.stdout, await readFile(join(dir, "token-data", "tokens", "signing.crt"), "utf8"));
      assert.equal((await stat(join(dir, "token-data", "tokens", "signing.key"))).mode & 0o777, 0o600);
      assert.equal((await cli(["token", "cert", "--config", config])).stdout, first.stdout);
    });

    it("config check and serve name the htpasswd file and line that cannot be used", async () => {
      const users = join(dir, "broken-htpasswd");
      await writeFile(users, `# ok\nadmin:$2y$05$${"x".repeat(53)}\nbob:plain-text\n`);
      const config = join(dir, "broken.yaml");
      await writeFile(
        config,
        [
          `dataDir: ${JSON.stringify(join(dir, "broken-data"))}`,
          "listen: 127.0.0.1:0",
          "admin: { listen: 127.0.0.1:0 }",
          "sites:",
          "  - hosts: [a.test]",
          "    backend: http://127.0.0.1:5000",
          `    auth: { type: htpasswd, htpasswd: ${JSON.stringify(users)} }`,
          "",
        ].join("\n"),
      );
      const check = await cli(["config", "check", config]);
      assert.equal(check.code, 2);
      assert.match(check.stderr, new RegExp(`${users}:3: user "bob": unsupported password hash`));
      assert.ok(!check.stderr.includes("plain-text"));
      const serve = await cli(["serve", "--config", config]);
      assert.equal(serve.code, 1);
      assert.match(serve.stdout, new RegExp(`${users}:3: user \\\\"bob\\\\": unsupported password hash`));
    });

    it("config check refuses auth a site cannot have", async () => {
      const config = join(dir, "bad-auth.yaml");
      await writeFile(
        config,
        [
          "sites:",
          "  - hosts: [a.test]",
          "    backend: http://127.0.0.1:5000",
          "    auth: { type: htpasswd, htpasswd: /nonexistent/htpasswd, rules: [{ who: '*', repositories: [Team/*], actions: [pull, fly] }] }",
          "",
        ].join("\n"),
      );
      const check = await cli(["config", "check", config]);
      assert.equal(check.code, 2);
      assert.match(check.stderr, /bad-auth\.yaml:4:\d+ sites\[0\]\.auth\.rules\[0\]\.repositories\[0\]: expected a repository name or glob/);
      assert.match(check.stderr, /bad-auth\.yaml:4:\d+ sites\[0\]\.auth\.rules\[0\]\.actions\[1\]: expected one of "pull", "push", "delete", "catalog"/);

      await writeFile(
        config,
        [
          "sites:",
          "  - hosts: [a.test]",
          "    backend: http://127.0.0.1:5000",
          "    auth: { type: htpasswd, htpasswd: /nonexistent/htpasswd }",
          "    backendAuth: { type: passthrough }",
          "",
        ].join("\n"),
      );
      const passthrough = await cli(["config", "check", config]);
      assert.equal(passthrough.code, 2);
      assert.match(passthrough.stderr, /bad-auth\.yaml:5:\d+ sites\[0\]\.backendAuth\.type: passthrough would hand the users' own credentials/);

      await writeFile(config, ["sites:", "  - hosts: [a.test]", "    backend: http://127.0.0.1:5000", "    auth: { type: token, htpasswd: /nonexistent/htpasswd }", ""].join("\n"));
      const missing = await cli(["config", "check", config]);
      assert.equal(missing.code, 2);
      assert.match(missing.stderr, /bad-auth\.yaml:4:\d+ sites\[0\]\.auth\.htpasswd: /);
    });
  });

  describe("config/examples/auth-*.yaml run as written from the repository root", () => {
    for (const example of ["auth-htpasswd", "auth-token"] as const) {
      it(`${example}.yaml: admin and reader log in on both sites`, async () => {
        const [hub, team] = await Promise.all([startRegistry({ port: 5001 }), startRegistry({ port: 5002 })]);
        const gateway = await startGatewayProcess(`config/examples/${example}.yaml`, { DATA_DIR: join(dir, `${example}-data`) });
        try {
          const caPem = await readFile(gateway.caFile!, "utf8");
          for (const host of ["hub.registry.test", "team.registry.test"]) {
            const ping = await gatewayRequest(5443, caPem, host, { path: "/v2/" });
            assert.equal(ping.status, 401);
            let authorization = basic("admin", "Admin123");
            if (example === "auth-token") {
              const service = host.split(".")[0];
              assert.equal(ping.headers["www-authenticate"], `Bearer realm="https://${host}:5443/token",service="${service}"`);
              const token = await gatewayRequest(5443, caPem, host, { path: `/token?service=${service}&scope=registry:catalog:*`, headers: { authorization } });
              assert.equal(token.status, 200, token.body.toString());
              authorization = `Bearer ${token.json().token}`;
            }
            const catalog = await gatewayRequest(5443, caPem, host, { path: "/v2/_catalog", headers: { authorization } });
            assert.equal(catalog.status, 200, `${host}: ${catalog.body.toString()}`);
          }
          if (example === "auth-htpasswd") {
            const reader = basic("reader", "Reader123");
            const pull = await gatewayRequest(5443, caPem, "hub.registry.test", { path: "/v2/library/x/tags/list", headers: { authorization: reader } });
            assert.equal(pull.status, 404, "reader may pull (the repository just does not exist)");
            const push = await gatewayRequest(5443, caPem, "hub.registry.test", { method: "POST", path: "/v2/library/x/blobs/uploads/", headers: { authorization: reader } });
            assert.equal(push.status, 403);
          }
        } finally {
          await gateway.process.stop();
          await Promise.all([hub.stop(), team.stop()]);
        }
      });
    }
  });
});
