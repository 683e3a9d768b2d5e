// Where the admin token comes from, how the generated one is kept, and how it is compared.
import assert from "node:assert/strict";
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { AdminCredential, generatedAdminTokenPath, loadAdminToken, readAdminToken } from "../../src/admin-token.js";
import { ConfigError, parseConfig } from "../../src/config/load.js";
import { createLogger } from "../../src/observe/log.js";

const SITE = ["sites:", "  - hosts: [a.test]", "    backend: http://127.0.0.1:5000"];
const quiet = createLogger({ level: "silent", format: "json" });
const TOKEN = "abcdefghijklmnopqrstuvwxyz012345";

describe("admin token", () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "rg-admin-token-"));
  });
  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const config = (admin: Record<string, string> = {}, dataDir = join(dir, "data")) => ({ dataDir, admin: { listen: { host: "127.0.0.1", port: 0 }, allowNonLoopback: false, hosts: [], ...admin } });

  it("is generated once per data directory and kept across starts; a loosened file is replaced", async () => {
    const dataDir = join(dir, "generated");
    const first = await loadAdminToken(config({}, dataDir), quiet);
    const file = generatedAdminTokenPath(dataDir);
    const written = (await readFile(file, "utf8")).trim();
    assert.equal(first.accepts(`Bearer ${written}`), true);
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    assert.deepEqual(await readAdminToken(config({}, dataDir)), { token: written }, "the CLI reads the same file");

    const again = await loadAdminToken(config({}, dataDir), quiet);
    assert.equal(again.accepts(`Bearer ${written}`), true, "a restart keeps the token the CLI already knows");

    await chmod(file, 0o644);
    const replaced = await loadAdminToken(config({}, dataDir), quiet);
    const fresh = (await readFile(file, "utf8")).trim();
    assert.notEqual(fresh, written, "a token others could read is never trusted again");
    assert.equal(replaced.accepts(`Bearer ${written}`), false);
    assert.equal(replaced.accepts(`Bearer ${fresh}`), true);
    assert.equal((await stat(file)).mode & 0o777, 0o600);
  });

  it("comes from admin.token or admin.tokenFile when configured, and then nothing is generated", async () => {
    const dataDir = join(dir, "configured");
    assert.equal((await loadAdminToken(config({ token: TOKEN }, dataDir), quiet)).accepts(`Bearer ${TOKEN}`), true);
    const tokenFile = join(dir, "admin-token");
    await writeFile(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
    assert.equal((await loadAdminToken(config({ tokenFile }, dataDir), quiet)).accepts(`Bearer ${TOKEN}`), true);
    assert.deepEqual(await readAdminToken(config({ tokenFile }, dataDir)), { token: TOKEN });
    await assert.rejects(stat(generatedAdminTokenPath(dataDir)), { code: "ENOENT" });
    const missing = await readAdminToken(config({}, dataDir));
    assert.ok("problem" in missing && /does not exist/.test(missing.problem));
    await writeFile(tokenFile, "short\n");
    await assert.rejects(loadAdminToken(config({ tokenFile }, dataDir), quiet), /expected one line of at least 16 characters/);
  });

  it("accepts only `Bearer <token>`", () => {
    const credential = new AdminCredential(TOKEN);
    assert.equal(credential.accepts(`Bearer ${TOKEN}`), true);
    assert.equal(credential.accepts(`bearer ${TOKEN}`), true, "the scheme is case-insensitive");
    for (const header of [undefined, "", TOKEN, `Bearer ${TOKEN}x`, `Bearer ${TOKEN.slice(1)}`, `Basic ${Buffer.from(`a:${TOKEN}`).toString("base64")}`, "Bearer"]) {
      assert.equal(credential.accepts(header), false, String(header));
    }
  });

  it("config: admin.token from GATEWAY_ADMIN_TOKEN, a short token or both keys refused by key", () => {
    assert.equal(parseConfig(SITE.join("\n"), "t.yaml", { GATEWAY_ADMIN_TOKEN: TOKEN }).admin.token, TOKEN);
    const issues = (text: string, env: NodeJS.ProcessEnv = {}) => {
      try {
        parseConfig(text, "t.yaml", env);
      } catch (error) {
        if (error instanceof ConfigError) return error.issues.map((i) => `${i.key}: ${i.message}`);
        throw error;
      }
      return [];
    };
    assert.deepEqual(issues(SITE.join("\n"), { GATEWAY_ADMIN_TOKEN: "short" }), [
      "admin.token: expected at least 16 characters of A-Z a-z 0-9 - . _ ~ + / (e.g. openssl rand -base64 32) (set by GATEWAY_ADMIN_TOKEN)",
    ]);
    assert.deepEqual(issues(["admin:", `  token: ${TOKEN}`, "  tokenFile: /etc/token", ...SITE].join("\n")), ["admin.tokenFile: set token or tokenFile, not both"]);
  });
});
