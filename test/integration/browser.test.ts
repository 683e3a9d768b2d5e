// The registry browser in a real browser (headless Chromium) in front of a real distribution registry:
// images pushed by skopeo, a reader who may pull only public/**, an admin who may delete. The registry's
// access log shows what the gateway did to it; the browser's request log shows what the pages loaded.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { Browser, BrowserContext, Page } from "playwright-core";
import type { AccessRuleConfig } from "../../src/config/schema.js";
import { launchBrowser } from "../helpers/browser.js";
import { certDir, cleanupClients, hostsFile, skopeo } from "../helpers/clients.js";
import { startTestGateway, type TestGateway } from "../helpers/gateway.js";
import { htpasswdLine } from "../helpers/htpasswd.js";
import { buildOciImage, imageConfig, OCI_INDEX, OCI_MANIFEST, sha256Digest, singleLayerManifest, type OciImage } from "../helpers/oci.js";
import { pushBlob, pushTinyImage } from "../helpers/seed.js";
import { artifactManifest, EMPTY_CONFIG, pushBlobThrough, putManifest, type SiteClient } from "../helpers/referrers.js";
import { formatRun, waitFor } from "../helpers/process.js";
import { accessLog, startRegistry, type Registry } from "../helpers/registry.js";

const HOST = "browser.test";
const TOKEN_HOST = "token-browser.test";
const CLOSED_HOST = "closed.test";
const RULES: AccessRuleConfig[] = [
  { who: ["admin"], repositories: ["**"], actions: ["pull", "push", "delete", "catalog"] },
  { who: ["reader"], repositories: ["public/**"], actions: ["pull"] },
];
const SESSION_COOKIE = "__Host-registry-session";
const SIGNATURE = "application/vnd.example.signature.v1";

describe("registry browser", () => {
  let workDir: string;
  let htpasswd: string;
  let registry: Registry;
  let gateway: TestGateway;
  let image: OciImage;
  let chromium: Browser;
  let context: BrowserContext;
  let page: Page;
  let origin: string;
  const requested: string[] = [];

  const users = async (adminPassword: string) =>
    writeFile(htpasswd, `${await htpasswdLine("admin", adminPassword)}\n${await htpasswdLine("reader", "Reader123")}\n`);

  before(async () => {
    workDir = await mkdtemp(join(tmpdir(), "rg-browser-"));
    htpasswd = join(workDir, "htpasswd");
    await users("Admin123");
    [registry, image] = await Promise.all([startRegistry({ accessLog: true }), buildOciImage(join(workDir, "image"), { layers: 1, layerSize: 1024, tag: "v1" })]);
    const auth = { htpasswd, rules: RULES };
    gateway = await startTestGateway({
      logins: { maxFailures: 3 },
      sites: [
        { name: "web", hosts: [HOST], backend: registry.url, auth: { type: "htpasswd", ...auth } },
        { name: "tokens", hosts: [TOKEN_HOST], backend: registry.url, auth: { type: "token", ...auth } },
        { name: "closed", hosts: [CLOSED_HOST], backend: registry.url, browser: { enabled: false } },
      ],
    });
    origin = `https://${HOST}:${gateway.port}`;
    const [certs, hosts] = await Promise.all([certDir(gateway.caPem), hostsFile(workDir, { [HOST]: "127.0.0.1" })]);
    for (const target of ["public/app:v1", "public/app:same", "private/secret:v1"]) {
      const push = ["copy", "--dest-cert-dir", certs, "--dest-creds", "admin:Admin123", image.ociRef, `docker://${HOST}:${gateway.port}/${target}`];
      const pushed = await skopeo(push, { hosts, timeoutMs: 60_000 });
      assert.equal(pushed.code, 0, formatRun("skopeo push", push, pushed));
    }
    chromium = await launchBrowser([HOST]);
    // The gateway's test CA is not the browser's to trust: what is tested is the pages, not the chain.
    context = await chromium.newContext({ ignoreHTTPSErrors: true });
    context.on("request", (request) => requested.push(request.url()));
    page = await context.newPage();
  });

  after(async () => {
    await context?.close();
    await chromium?.close();
    await gateway?.stop();
    await registry?.stop();
    await cleanupClients();
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  const signIn = async (user: string, password: string) => {
    await page.goto(`${origin}/login`);
    await page.fill("input[name=username]", user);
    await page.fill("input[name=password]", password);
    await Promise.all([page.waitForURL(`${origin}/`), page.click("main form button")]);
    // The views may say "Signed in as" before the name, for screen readers.
    assert.ok((await page.textContent(".user"))?.endsWith(user));
  };

  const signOut = async () => {
    await Promise.all([page.waitForURL(`${origin}/`), page.click("header form button")]);
    assert.equal(await page.locator(".user").count(), 0);
    assert.equal((await context.cookies(origin)).filter((c) => c.name === SESSION_COOKIE).length, 0);
  };

  /** The repositories the page links to, by their links (the views may lay a name out in parts). */
  const repositories = async () => (await page.locator("a.repository").evaluateAll((links) => links.map((a) => a.getAttribute("href")))).map((href) => href!.replace(/^\/repo\//, ""));

  /** The browser's session cookie, as the Cookie header a forged request would carry. */
  const sessionHeader = async () => `${SESSION_COOKIE}=${(await context.cookies(origin)).find((c) => c.name === SESSION_COOKIE)!.value}`;

  /** A POST /delete outside the pages' own forms, with the browser's session. */
  const postDelete = async (form: Record<string, string>, headers: Record<string, string> = {}) =>
    gateway.request(HOST, {
      method: "POST",
      path: "/delete",
      headers: { cookie: await sessionHeader(), "content-type": "application/x-www-form-urlencoded", ...headers },
      body: new URLSearchParams(form).toString(),
    });

  it("a reader sees only what they may pull, the pull command, and no delete; a forged delete is refused", async () => {
    await page.goto(`${origin}/`);
    assert.deepEqual(await repositories(), [], "anonymous may pull nothing here");
    await signIn("reader", "Reader123");
    assert.deepEqual(await repositories(), ["public/app"]);
    const cookie = (await context.cookies(origin)).find((c) => c.name === SESSION_COOKIE)!;
    assert.ok(cookie.httpOnly && cookie.secure && cookie.sameSite === "Strict" && cookie.path === "/");

    await page.click("a.repository");
    assert.deepEqual((await page.locator("a.tag").allTextContents()).sort(), ["same", "v1"]);
    // The deleted-tag notice takes a tag name, not a stranger's sentence shown on this origin.
    await page.goto(`${origin}/repo/public/app?deleted=${encodeURIComponent("v1 deleted. Your session expired: call 555-0100")}`);
    assert.equal(await page.locator(".notice").count(), 0, "no notice for text that is no tag");
    await page.goto(`${origin}/repo/public/app?deleted=v9`);
    assert.match((await page.textContent(".notice")) ?? "", /Tag v9 deleted/, "the control: a tag name");
    await page.click("a.tag >> text=v1");
    assert.equal(await page.textContent("#pull-by-tag"), `docker pull ${HOST}:${gateway.port}/public/app:v1`);
    assert.equal(await page.textContent("#pull-by-digest"), `docker pull ${HOST}:${gateway.port}/public/app@${image.manifestDigest}`);
    assert.equal(await page.locator("a.delete").count(), 0);

    const hidden = await page.goto(`${origin}/repo/private/secret`);
    assert.equal(hidden?.status(), 404);
    const csrf = await page.inputValue("header form input[name=csrf]");
    const forged = await postDelete({ repository: "public/app", tag: "v1", csrf });
    assert.equal(forged.status, 403);
    assert.equal(accessLog(registry).filter((line) => line.method === "DELETE").length, 0);
    await signOut();
  });

  it("a tag's page lists what refers to it (a signature pushed after it); the index's fallback tag is no tag of its own", async () => {
    const admin: SiteClient = (options) => gateway.request(HOST, { ...options, headers: { authorization: `Basic ${Buffer.from("admin:Admin123").toString("base64")}`, ...options.headers } });
    const subject = { mediaType: OCI_MANIFEST, digest: image.manifestDigest, size: image.manifestSize };
    await pushBlobThrough(admin, "public/app", EMPTY_CONFIG);
    const layer = await pushBlobThrough(admin, "public/app", Buffer.from("signature"));
    const signature = artifactManifest(subject, SIGNATURE, layer);
    const pushed = await putManifest(admin, "public/app", sha256Digest(signature), signature);
    assert.equal(pushed.status, 201, pushed.body.toString());
    await signIn("reader", "Reader123");
    await page.goto(`${origin}/tag/public/app:v1`);
    const referrers = await page.locator("#referrers .referrer").allTextContents();
    assert.equal(referrers.length, 1);
    assert.ok(referrers[0]!.includes(SIGNATURE), referrers[0]);
    await page.goto(`${origin}/repo/public/app`);
    assert.deepEqual((await page.locator("a.tag").allTextContents()).sort(), ["same", "v1"]);
    await signOut();
  });

  it("an admin deletes a tag: the confirmation names the tags that go with it, the registry deletes its manifest", async () => {
    await signIn("admin", "Admin123");
    assert.deepEqual(await repositories(), ["private/secret", "public/app"]);
    const withoutToken = await postDelete({ repository: "public/app", tag: "v1" });
    assert.equal(withoutToken.status, 403, "a delete without its CSRF token");
    const csrf = await page.inputValue("header form input[name=csrf]");
    const crossSite = await postDelete({ repository: "public/app", tag: "v1", csrf }, { origin: "https://elsewhere.test", "sec-fetch-site": "cross-site" });
    assert.equal(crossSite.status, 403, "a delete sent from another site");
    assert.equal(accessLog(registry).filter((line) => line.method === "DELETE").length, 0);

    await page.goto(`${origin}/tag/public/app:v1`);
    await page.click("a.delete");
    // A view may name the tag alone or as repository:tag.
    const alsoRemoved = await page.locator("#also-removed li, .also-removed li").allTextContents();
    assert.deepEqual(alsoRemoved.map((text) => text.trim().replace(/^.*:/, "")), ["same"]);
    // Every other tag was checked (two tags): the page does not warn that the list may be short.
    assert.doesNotMatch(await page.locator("main").innerText(), /Not every other tag/);
    // The POST names the image confirmed: a tag that names another one by then deletes nothing.
    assert.equal(await page.inputValue("main form input[name=digest]"), image.manifestDigest);
    const moved = await postDelete({ repository: "public/app", tag: "v1", csrf, digest: `sha256:${"0".repeat(64)}` });
    assert.equal(moved.status, 409, "a delete of an image other than the tag's");
    assert.match(moved.headers["content-type"] ?? "", /^text\/html/);
    assert.equal((await postDelete({ repository: "public/app", tag: "v1", csrf })).status, 409, "a delete naming no image");
    assert.equal(accessLog(registry).filter((line) => line.method === "DELETE").length, 0);
    await Promise.all([page.waitForURL(`${origin}/repo/public/app?deleted=v1`), page.click("main form button")]);
    assert.match((await page.textContent(".notice")) ?? "", /v1 deleted/);
    const deletes = accessLog(registry).filter((line) => line.method === "DELETE");
    assert.deepEqual(
      deletes.map((line) => [line.uri, line.status]),
      [[`/v2/public/app/manifests/${image.manifestDigest}`, 202]],
    );
    const gone = await fetch(`${registry.url}/v2/public/app/manifests/v1`, { headers: { accept: OCI_MANIFEST } });
    assert.equal(gone.status, 404);
    await signOut();
  });

  it("a session ends when the user's password changes", async () => {
    await signIn("admin", "Admin123");
    const cookie = await sessionHeader();
    const asAdmin = () => gateway.request(HOST, { path: "/delete?repository=private/secret&tag=v1", headers: { cookie } });
    assert.equal((await asAdmin()).status, 200, "the confirmation page, signed in");
    await users("Changed456");
    const refused = await waitFor(async () => {
      const res = await asAdmin();
      return res.status === 303 ? res : null;
    }, { what: "the old session refused after the htpasswd reload" });
    assert.match(String(refused.headers.location), /^\/login\?next=/);
    await users("Admin123");
  });

  it("without the session key, a visitor without a cookie is anonymous and one with a cookie is told sign-in is unavailable", async () => {
    // A file where the secrets directory would be: the key can be neither read nor created.
    const dataDir = await mkdtemp(join(tmpdir(), "rg-browser-nokey-"));
    await writeFile(join(dataDir, "secrets"), "");
    const keyless = await startTestGateway({ dataDir, sites: [{ name: "web", hosts: [HOST], backend: registry.url, auth: { type: "htpasswd", htpasswd, rules: RULES } }] });
    try {
      const anonymous = await keyless.request(HOST, { path: "/" });
      assert.equal(anonymous.status, 200, anonymous.body.toString());
      const login = await keyless.request(HOST, { path: "/login" });
      assert.equal(login.status, 503);
      assert.match(login.body.toString(), /Sign-in is unavailable right now/);
      for (let i = 0; i < 2; i++) {
        const withCookie = await keyless.request(HOST, { path: "/", headers: { cookie: `${SESSION_COOKIE}=anything` } });
        assert.equal(withCookie.status, 503);
        assert.match(String(withCookie.headers["content-type"]), /^text\/html/);
        assert.match(withCookie.body.toString(), /Sign-in is unavailable right now/);
      }
      const warnings = keyless.logs.filter((line) => String(line.msg).includes("session key cannot be had"));
      assert.equal(warnings.length, 1, "warned once, not per request");
    } finally {
      await keyless.stop();
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  it("a repository's page describes one page of tags, remembers what a digest was, and reads one config of an index", async () => {
    const seeded = await pushTinyImage(registry.url, "public/many", "t00", "seed");
    for (let i = 1; i < 30; i++) {
      const put = await fetch(`${registry.url}/v2/public/many/manifests/t${String(i).padStart(2, "0")}`, { method: "PUT", body: seeded.manifest, headers: { "content-type": OCI_MANIFEST } });
      assert.equal(put.status, 201);
    }
    const children = [];
    for (const architecture of ["amd64", "arm64", "s390x"]) {
      const layer = randomBytes(300);
      const config = imageConfig({ os: "linux", architecture }, {}, [sha256Digest(layer)]);
      for (const blob of [layer, config]) await pushBlob(registry.url, "public/multi", blob);
      const manifest = singleLayerManifest(config, layer);
      const put = await fetch(`${registry.url}/v2/public/multi/manifests/${sha256Digest(manifest)}`, { method: "PUT", body: manifest, headers: { "content-type": OCI_MANIFEST } });
      assert.equal(put.status, 201);
      children.push({ mediaType: OCI_MANIFEST, digest: sha256Digest(manifest), size: manifest.length, platform: { os: "linux", architecture } });
    }
    const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: children }));
    assert.equal((await fetch(`${registry.url}/v2/public/multi/manifests/v1`, { method: "PUT", body: index, headers: { "content-type": OCI_INDEX } })).status, 201);

    const login = await gateway.request(HOST, { method: "POST", path: "/login", headers: { "content-type": "application/x-www-form-urlencoded", origin }, body: "username=reader&password=Reader123" });
    const cookie = String(login.headers["set-cookie"]).split(";")[0]!;
    const show = async (path: string) => {
      const before = accessLog(registry).length;
      const res = await gateway.request(HOST, { path, headers: { cookie } });
      assert.equal(res.status, 200, path);
      const reads = accessLog(registry).slice(before).filter((line) => line.userAgent === "registry-gateway-browser");
      const rows = res.body.toString().match(/class="tag-link tag"/g)?.length ?? 0;
      return { body: res.body.toString(), rows, blobs: reads.filter((line) => line.uri.includes("/blobs/")).length, manifests: reads.filter((line) => line.uri.includes("/manifests/")).length };
    };
    const first = await show("/repo/public/many");
    assert.equal(first.rows, 25);
    assert.match(first.body, /href="\/repo\/public\/many\?page=2"/);
    const second = await show("/repo/public/many?page=2");
    assert.equal(second.rows, 5);
    assert.doesNotMatch(second.body, /page=3/);
    const again = await show("/repo/public/many");
    assert.deepEqual([again.rows, again.manifests, again.blobs], [25, 25, 0], "the digest's summary is remembered: its manifest read, no config");
    const multi = await show("/repo/public/multi");
    assert.equal(multi.rows, 1);
    assert.deepEqual([multi.manifests, multi.blobs], [4, 1], "the index and its three children, and the first child's config alone");
  });

  it("on a group site, the tag a delete confirms and deletes is the one where deletes go, not the first member's", async () => {
    const first = await startRegistry();
    const GROUP_HOST = "group-browser.test";
    const grouped = await startTestGateway({
      sites: [{ name: "grouped", hosts: [GROUP_HOST], group: [{ name: "first", backend: first.url, repositories: ["public/**"] }, { name: "push", backend: registry.url }], pushTo: "push", auth: { type: "htpasswd", htpasswd, rules: RULES } }],
    });
    try {
      const elsewhere = await pushTinyImage(first.url, "public/grouped", "v1", "seed");
      const here = await pushTinyImage(registry.url, "public/grouped", "v1", "seed");
      const groupOrigin = `https://${GROUP_HOST}:${grouped.port}`;
      const login = await grouped.request(GROUP_HOST, { method: "POST", path: "/login", headers: { "content-type": "application/x-www-form-urlencoded", origin: groupOrigin }, body: "username=admin&password=Admin123" });
      const cookie = String(login.headers["set-cookie"]).split(";")[0]!;
      const confirm = await grouped.request(GROUP_HOST, { path: "/delete?repository=public/grouped&tag=v1", headers: { cookie } });
      assert.equal(confirm.status, 200);
      const field = (name: string) => new RegExp(`name="${name}" value="([^"]+)"`).exec(confirm.body.toString())?.[1];
      assert.equal(field("digest"), here.manifestDigest, "the image in the member deletes go to");
      const deleted = await grouped.request(GROUP_HOST, {
        method: "POST",
        path: "/delete",
        headers: { cookie, origin: groupOrigin, "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ repository: "public/grouped", tag: "v1", digest: field("digest")!, csrf: field("csrf")! }).toString(),
      });
      assert.equal(deleted.status, 303, deleted.body.toString());
      assert.ok(accessLog(registry).some((line) => line.method === "DELETE" && line.uri === `/v2/public/grouped/manifests/${here.manifestDigest}` && line.status === 202));
      const kept = await fetch(`${first.url}/v2/public/grouped/manifests/v1`, { headers: { accept: OCI_MANIFEST } });
      assert.equal(kept.status, 200, "the first member's tag is not the gateway's to delete");
      assert.notEqual(elsewhere.manifestDigest, here.manifestDigest);
    } finally {
      await grouped.stop();
      await first.stop();
    }
  });

  it("no page loads anything from another origin", () => {
    assert.ok(requested.length > 10);
    const foreign = requested.filter((url) => !url.startsWith(`${origin}/`));
    assert.deepEqual(foreign, []);
  });

  it("pages carry the security headers; assets are long-cached; the registry API is unchanged", async () => {
    const home = await gateway.request(HOST, { path: "/" });
    assert.equal(home.status, 200);
    assert.match(String(home.headers["content-security-policy"]), /default-src 'none'; script-src 'self'.*frame-ancestors 'none'; base-uri 'none'/);
    assert.equal(home.headers["x-content-type-options"], "nosniff");
    assert.equal(home.headers["referrer-policy"], "same-origin");
    assert.equal(home.headers["cache-control"], "no-store");
    assert.equal(home.headers["www-authenticate"], undefined);
    const css = /href="(\/assets\/[^"]+\.css)"/.exec(home.body.toString())![1]!;
    const asset = await gateway.request(HOST, { path: css });
    assert.equal(asset.status, 200);
    assert.equal(asset.headers["cache-control"], "public, max-age=31536000, immutable");
    assert.equal((await gateway.request(HOST, { path: "/assets/nothing.js" })).status, 404);
    const badLogin = await gateway.request(HOST, { method: "POST", path: "/login", headers: { "content-type": "application/x-www-form-urlencoded" }, body: "username=admin&password=wrong" });
    assert.equal(badLogin.status, 401);
    assert.equal(badLogin.headers["www-authenticate"], undefined, "the browser's own password dialog is never invited");
    const api = await gateway.request(HOST, { path: "/v2/" });
    assert.equal(api.status, 401);
    assert.match(String(api.headers["www-authenticate"]), /^Basic /);
    const closed = await gateway.request(CLOSED_HOST, { path: "/" });
    assert.equal(closed.status, 404);
    assert.equal(closed.json().errors[0].code, "NAME_UNKNOWN");
  });

  it("sign-in failures count in the registry API's failed-login throttle, and its refusals count for the API", async () => {
    // Another client address: its failures are its own.
    const from = { localAddress: "127.0.0.2" };
    const signIn = (password: string) =>
      gateway.request(HOST, { ...from, method: "POST", path: "/login", headers: { "content-type": "application/x-www-form-urlencoded" }, body: `username=reader&password=${password}` });
    for (let i = 0; i < 3; i++) assert.equal((await signIn("wrong")).status, 401);
    const throttled = await signIn("Reader123");
    assert.equal(throttled.status, 429, "the right password too, once the failures are used up");
    assert.ok(Number(throttled.headers["retry-after"]) > 0);
    assert.equal(throttled.headers["set-cookie"], undefined);
    const basic = `Basic ${Buffer.from("reader:Reader123").toString("base64")}`;
    const api = await gateway.request(HOST, { ...from, path: "/v2/public/app/tags/list", headers: { authorization: basic } });
    assert.equal(api.status, 429, "the registry API shares the throttle");
  });

  it("a token-auth site signs its users in too", async () => {
    const login = await gateway.request(TOKEN_HOST, {
      method: "POST",
      path: "/login",
      headers: { "content-type": "application/x-www-form-urlencoded", origin: `https://${TOKEN_HOST}:${gateway.port}` },
      body: "username=reader&password=Reader123&next=%2Frepo%2Fpublic%2Fapp",
    });
    assert.equal(login.status, 303, login.body.toString());
    assert.equal(login.headers.location, "/repo/public/app");
    const cookie = String(login.headers["set-cookie"]).split(";")[0]!;
    assert.match(String(login.headers["set-cookie"]), /Max-Age=28800; Path=\/; Secure; HttpOnly; SameSite=Strict/);
    const tags = await gateway.request(TOKEN_HOST, { path: "/repo/public/app", headers: { cookie } });
    assert.equal(tags.status, 200);
    // Signed in: the page carries the session's sign-out form with its CSRF token.
    assert.match(tags.body.toString(), /name="csrf"/);
    // The cookie names the site it was made for: no session on another site of the same gateway.
    const elsewhere = await gateway.request(HOST, { path: "/", headers: { cookie } });
    assert.doesNotMatch(elsewhere.body.toString(), /name="csrf"/);
  });
});
