import assert from "node:assert/strict";
import { cp, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { buildWebAssets } from "../../../src/web/asset-build.js";
import { loadWebAssets } from "../../../src/web/assets.js";

const SOURCES = fileURLToPath(new URL("../../../web/", import.meta.url));

describe("web assets", () => {
  let dir: string;
  let sources: string;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "rg-web-assets-"));
    sources = path.join(dir, "src");
    await cp(SOURCES, sources, { recursive: true });
  });
  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("are written under content-hashed names that the manifest maps and the loader serves", async () => {
    const out = path.join(dir, "out");
    const manifest = buildWebAssets(sources, out);
    assert.match(manifest["app.css"] ?? "", /^\/assets\/app\.[0-9a-f]{8}\.css$/);
    assert.match(manifest["app.js"] ?? "", /^\/assets\/app\.[0-9a-f]{8}\.js$/);
    assert.deepEqual(JSON.parse(await readFile(path.join(out, "assets.json"), "utf8")), manifest);
    const assets = loadWebAssets(out);
    assert.deepEqual(assets.urls, { css: manifest["app.css"], js: manifest["app.js"] });
    const css = assets.lookup(assets.urls.css);
    assert.equal(css?.contentType, "text/css; charset=utf-8");
    assert.deepEqual(css?.body, await readFile(path.join(sources, "app.css")));
    assert.equal(assets.lookup(assets.urls.js)?.contentType, "text/javascript; charset=utf-8");
    for (const unknown of ["/assets/app.css", "/assets/assets.json", "/assets/../assets.json", "/"]) assert.equal(assets.lookup(unknown), undefined);
  });

  it("get a new name when their content changes, and the old files are gone", async () => {
    const out = path.join(dir, "changing");
    const before = buildWebAssets(sources, out);
    assert.deepEqual(buildWebAssets(sources, out), before, "same content, same names");
    await writeFile(path.join(sources, "app.css"), `${await readFile(path.join(sources, "app.css"), "utf8")}\n.changed {}\n`);
    const after = buildWebAssets(sources, out);
    assert.notEqual(after["app.css"], before["app.css"]);
    assert.equal(after["app.js"], before["app.js"]);
    assert.deepEqual((await readdir(path.join(out, "assets"))).sort(), [after["app.css"], after["app.js"]].map((url) => path.basename(url ?? "")).sort());
  });

  it("fail to load with an error naming the build step when they were never built", () => {
    assert.throws(() => loadWebAssets(path.join(dir, "never-built")), /npm run build/);
  });

  it("are found from the package root by default (built by npm run build)", () => {
    const assets = loadWebAssets();
    assert.ok(assets.lookup(assets.urls.js)?.body.toString("utf8").includes("data-live-search"));
  });
});
