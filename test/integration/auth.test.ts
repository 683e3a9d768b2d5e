// Who may do what — htpasswd (Basic) and Docker token auth in front of real registries, driven by
// real clients (podman, skopeo), plus a stock distribution running `auth: token` that trusts our tokens.
import assert from "node:assert/strict";
import { copyFile, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { base64url, generateKeyPair, SignJWT } from "jose";
import { loadSigningKey, type SigningKey } from "../../src/auth/signing-key.js";
import { gatewayConfig, type AccessRuleConfig } from "../../src/config/schema.js";
import { REPO_ROOT } from "../helpers/cli.js";
import { certDir, cleanupClients, hostsFile, podman, podmanStore, skopeo, type PodmanStore } from "../helpers/clients.js";
import { startTestGateway, type GatewayResponse, type TestGateway } from "../helpers/gateway.js";
import { buildOciImage, sha256Digest, type OciImage } from "../helpers/oci.js";
import { formatRun, waitFor, type RunResult } from "../helpers/process.js";
import { startRegistry, type Registry } from "../helpers/registry.js";
import { htpasswdLine } from "../helpers/htpasswd.js";

const HUB = "hub.registry.test"; // htpasswd
const TEAM = "team.registry.test"; // token
const VAULT = "vault.registry.test"; // htpasswd in front, a token-auth distribution behind
const VAULT_SERVICE = "vault-backend";
const ISSUER = "registry-gateway";

const RULES: AccessRuleConfig[] = [
  { who: ["admin"], repositories: ["**"], actions: ["pull", "push", "delete", "catalog"] },
  { who: ["ci"], repositories: ["ci/**"], actions: ["pull", "push"] },
  { who: ["reader"], repositories: ["**"], actions: ["pull"] },
  { who: "*", repositories: ["public/**"], actions: ["pull"] },
];

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;
const claimsOf = (token: string) => JSON.parse(Buffer.from(token.split(".")[1]!, "base64url").toString()) as Record<string, any>;

function assertRan(what: string, args: readonly string[], result: RunResult): void {
  assert.equal(result.code, 0, formatRun(what, args, result));
}

function assertRegistryError(res: GatewayResponse, status: number, code: string): void {
  assert.equal(res.status, status, res.body.toString());
  assert.equal(res.headers["content-type"], "application/json; charset=utf-8");
  assert.equal(res.headers["docker-distribution-api-version"], "registry/2.0");
  assert.equal(res.json().errors[0].code, code);
}


describe("auth: htpasswd and token auth with access rules, real registries and clients", () => {
  let workDir: string;
  let dataDir: string;
  let htpasswd: string;
  let hub: Registry;
  let team: Registry;
  let vault: Registry;
  let gateway: TestGateway;
  let signingKey: SigningKey;
  let image: OciImage;
  let certs: string;
  let hosts: string;
  let store: PodmanStore;
  const ref = (host: string, repository: string, tag = "v1") => `${host}:${gateway.port}/${repository}:${tag}`;

  before(async () => {
    workDir = await mkdtemp(join(tmpdir(), "rg-auth-"));
    dataDir = join(workDir, "data");
    htpasswd = join(workDir, "htpasswd");
    // The example users (cost 10, as shipped) and a CI user.
    await copyFile(join(REPO_ROOT, "config/examples/htpasswd"), htpasswd);
    await writeFile(htpasswd, `${await readFile(htpasswd, "utf8")}${await htpasswdLine("ci", "Ci123456")}\n`);

    // What `registry-gateway token cert` prints, made before the backend that must trust it starts.
    signingKey = await loadSigningKey(gatewayConfig.parse({ dataDir, sites: [{ hosts: ["x.test"], backend: "http://127.0.0.1:1" }] }));
    const rootCertBundle = join(workDir, "token-signing.crt");
    await writeFile(rootCertBundle, signingKey.certPem);

    [hub, team, vault, image, store] = await Promise.all([
      startRegistry(),
      startRegistry(),
      startRegistry({ auth: { realm: `https://${VAULT}/token`, service: VAULT_SERVICE, issuer: ISSUER, rootCertBundle } }),
      buildOciImage(join(workDir, "image"), { layers: 2, layerSize: 128 * 1024, tag: "v1" }),
      podmanStore(),
    ]);
    gateway = await startTestGateway({
      dataDir,
      tokens: { issuer: ISSUER },
      sites: [
        { name: "hub", hosts: [HUB], backend: hub.url, default: true, auth: { type: "htpasswd", htpasswd, rules: RULES } },
        { name: "team", hosts: [TEAM], backend: team.url, auth: { type: "token", htpasswd, rules: RULES } },
        {
          name: "vault",
          hosts: [VAULT],
          backend: vault.url,
          auth: { type: "htpasswd", htpasswd, rules: RULES },
          backendAuth: { type: "token", service: VAULT_SERVICE },
        },
      ],
    });
    certs = await certDir(gateway.caPem);
    hosts = await hostsFile(workDir, { [HUB]: "127.0.0.1", [TEAM]: "127.0.0.1", [VAULT]: "127.0.0.1" });
  });

  after(async () => {
    await gateway?.stop();
    await Promise.all([hub?.stop(), team?.stop(), vault?.stop(), store?.remove()]);
    await cleanupClients();
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  describe("htpasswd site", () => {
    it("skopeo copy --dest-creds pushes as admin", async () => {
      const args = ["copy", "--dest-cert-dir", certs, "--dest-creds", "admin:Admin123", image.ociRef, `docker://${ref(HUB, "hub/app")}`];
      assertRan("skopeo push", args, await skopeo(args, { hosts }));
    });

    it("podman login, pull and push as admin; after podman logout it is refused", async () => {
      const login = ["login", "--cert-dir", certs, "--username", "admin", "--password-stdin", `${HUB}:${gateway.port}`];
      assertRan("podman login", login, await podman(login, { store, hosts, input: "Admin123\n" }));
      const pull = ["pull", "--cert-dir", certs, ref(HUB, "hub/app")];
      assertRan("podman pull", pull, await podman(pull, { store, hosts, timeoutMs: 90_000 }));
      assertRan("podman tag", [], await podman(["tag", ref(HUB, "hub/app"), ref(HUB, "hub/copy")], { store }));
      const push = ["push", "--cert-dir", certs, ref(HUB, "hub/copy")];
      assertRan("podman push", push, await podman(push, { store, hosts, timeoutMs: 90_000 }));
      const listed = (await (await fetch(`${hub.url}/v2/_catalog`)).json()) as { repositories: string[] };
      assert.deepEqual(listed.repositories, ["hub/app", "hub/copy"]);

      const logout = ["logout", `${HUB}:${gateway.port}`];
      assertRan("podman logout", logout, await podman(logout, { store }));
      const refused = await podman(pull, { store, hosts, timeoutMs: 60_000 });
      assert.notEqual(refused.code, 0, formatRun("podman pull after logout", pull, refused));
      assert.match(refused.stderr, /authentication required|unauthorized/i);
    });

    it("reader pulls, and a push as reader is refused with DENIED", async () => {
      const out = join(workDir, "pulled-by-reader");
      const pull = ["copy", "--src-cert-dir", certs, "--src-creds", "reader:Reader123", `docker://${ref(HUB, "hub/app")}`, `oci:${out}:v1`];
      assertRan("skopeo pull as reader", pull, await skopeo(pull, { hosts }));
      const index = JSON.parse(await readFile(join(out, "index.json"), "utf8")) as { manifests: { digest: string }[] };
      assert.equal(index.manifests[0]!.digest, image.manifestDigest);

      const push = ["copy", "--dest-cert-dir", certs, "--dest-creds", "reader:Reader123", image.ociRef, `docker://${ref(HUB, "hub/readers-own")}`];
      const refused = await skopeo(push, { hosts });
      assert.notEqual(refused.code, 0, formatRun("skopeo push as reader", push, refused));
      assert.match(refused.stderr, /denied: requested access to the resource is denied/);

      const direct = await gateway.request(HUB, { method: "POST", path: "/v2/hub/readers-own/blobs/uploads/", headers: { authorization: basic("reader", "Reader123") } });
      assertRegistryError(direct, 403, "DENIED");
      assert.equal(direct.headers["www-authenticate"], undefined, "a 403 carries no challenge");
    });

    it("asks anonymous clients for Basic credentials, except where anyone may pull", async () => {
      const ping = await gateway.request(HUB, { path: "/v2/" });
      assertRegistryError(ping, 401, "UNAUTHORIZED");
      assert.equal(ping.headers["www-authenticate"], 'Basic realm="hub", charset="UTF-8"');

      const push = ["copy", "--dest-cert-dir", certs, "--dest-creds", "admin:Admin123", image.ociRef, `docker://${ref(HUB, "public/base")}`];
      assertRan("skopeo push public/base", push, await skopeo(push, { hosts }));
      const anonymous = await gateway.request(HUB, { path: "/v2/public/base/manifests/v1", headers: { accept: "application/vnd.oci.image.manifest.v1+json" } });
      assert.equal(anonymous.status, 200);
      assert.equal(sha256Digest(anonymous.body), image.manifestDigest);
      assertRegistryError(await gateway.request(HUB, { path: "/v2/hub/app/manifests/v1" }), 401, "UNAUTHORIZED");
      assertRegistryError(await gateway.request(HUB, { path: "/v2/hub/app/manifests/v1", headers: { authorization: basic("admin", "wrong") } }), 401, "UNAUTHORIZED");
      assertRegistryError(await gateway.request(HUB, { path: "/v2/hub/app/manifests/v1", headers: { authorization: basic("nobody", "x") } }), 401, "UNAUTHORIZED");
    });

    it("lists the catalog for admin only", async () => {
      const admin = await gateway.request(HUB, { path: "/v2/_catalog", headers: { authorization: basic("admin", "Admin123") } });
      assert.equal(admin.status, 200);
      assert.ok(admin.json().repositories.includes("hub/app"));
      assertRegistryError(await gateway.request(HUB, { path: "/v2/_catalog", headers: { authorization: basic("reader", "Reader123") } }), 403, "DENIED");
    });

    it("refuses a cross-repository mount from a repository the user may not pull", async () => {
      const ci = { authorization: basic("ci", "Ci123456") };
      const layer = image.layerDigests[0]!;
      const own = await gateway.request(HUB, { method: "POST", path: "/v2/ci/app/blobs/uploads/", headers: { ...ci, "content-length": "0" } });
      assert.equal(own.status, 202, own.body.toString());
      const mount = await gateway.request(HUB, { method: "POST", path: `/v2/ci/app/blobs/uploads/?mount=${layer}&from=hub/app`, headers: { ...ci, "content-length": "0" } });
      assertRegistryError(mount, 403, "DENIED");
      assert.match(mount.json().errors[0].message, /pull on repository hub\/app/);
    });

    it("re-reads the htpasswd file: a removed user stops working; a broken edit keeps the last good set", async () => {
      const original = await readFile(htpasswd, "utf8");
      const ci = { authorization: basic("ci", "Ci123456") };
      assert.equal((await gateway.request(HUB, { path: "/v2/", headers: ci })).status, 200);
      try {
        await writeFile(htpasswd, original.split("\n").filter((line) => !line.startsWith("ci:")).join("\n"));
        await waitFor(async () => (await gateway.request(HUB, { path: "/v2/", headers: ci })).status === 401, { timeoutMs: 5000, what: "ci to be refused" });
        assert.equal((await gateway.request(HUB, { path: "/v2/", headers: { authorization: basic("admin", "Admin123") } })).status, 200);

        await writeFile(htpasswd, `${original}mallory:cleartext-password\n`);
        const warning = await waitFor(() => gateway.logs.find((l) => String(l.msg).startsWith("htpasswd file has an error")), { timeoutMs: 5000, what: "the warning" });
        assert.equal(warning.file, htpasswd);
        assert.equal(warning.line, original.split("\n").length);
        assert.ok(!JSON.stringify(gateway.logs).includes("cleartext-password"), "the broken line's content is never logged");
        // The last good set is the one without ci.
        assert.equal((await gateway.request(HUB, { path: "/v2/", headers: ci })).status, 401);
        assert.equal((await gateway.request(HUB, { path: "/v2/", headers: { authorization: basic("admin", "Admin123") } })).status, 200);
      } finally {
        await writeFile(htpasswd, original);
        await waitFor(async () => (await gateway.request(HUB, { path: "/v2/", headers: ci })).status === 200, { timeoutMs: 5000, what: "ci to be back" });
      }
    });
  });

  describe("token site", () => {
    const tokenFor = async (authorization: string | undefined, query: string) => {
      const res = await gateway.request(TEAM, { path: `/token?${query}`, headers: authorization ? { authorization } : {} });
      assert.equal(res.status, 200, res.body.toString());
      return res.json() as { token: string; access_token: string; expires_in: number; issued_at: string; refresh_token?: string };
    };

    it("challenges with realm, service and the route's scope", async () => {
      const ping = await gateway.request(TEAM, { path: "/v2/" });
      assertRegistryError(ping, 401, "UNAUTHORIZED");
      assert.equal(ping.headers["www-authenticate"], `Bearer realm="https://${TEAM}:${gateway.port}/token",service="team"`);
      const push = await gateway.request(TEAM, { method: "POST", path: "/v2/team/app/blobs/uploads/?mount=sha256:" + "a".repeat(64) + "&from=base/x" });
      assert.equal(push.headers["www-authenticate"], `Bearer realm="https://${TEAM}:${gateway.port}/token",service="team",scope="repository:team/app:pull,push repository:base/x:pull"`);
      const catalog = await gateway.request(TEAM, { path: "/v2/_catalog" });
      assert.match(String(catalog.headers["www-authenticate"]), /scope="registry:catalog:\*"$/);
    });

    it("answers a docker login request (no scope) with an empty-access token, plus a refresh token when offline", async () => {
      const answer = await tokenFor(basic("admin", "Admin123"), "account=admin&client_id=docker&offline_token=true&service=team");
      assert.equal(answer.token, answer.access_token);
      assert.ok(answer.expires_in >= 60);
      assert.ok(Math.abs(Date.parse(answer.issued_at) - Date.now()) < 60_000);
      const claims = claimsOf(answer.token);
      assert.deepEqual(claims.access, []);
      assert.equal(claims.sub, "admin");
      assert.equal(claims.aud, "team");
      assert.equal(claims.iss, ISSUER);
      assert.equal(typeof answer.refresh_token, "string");
      assert.equal((await gateway.request(TEAM, { path: "/v2/", headers: { authorization: `Bearer ${answer.token}` } })).status, 200);

      const online = await tokenFor(basic("admin", "Admin123"), "service=team");
      assert.equal(online.refresh_token, undefined);
      const bad = await gateway.request(TEAM, { path: "/token?service=team", headers: { authorization: basic("admin", "nope") } });
      assertRegistryError(bad, 401, "UNAUTHORIZED");
      assert.match(String(bad.headers["www-authenticate"]), /^Basic realm=/);
    });

    it("grants a push scope to admin and only what the rules allow to reader", async () => {
      const scope = "service=team&scope=repository:team/app:pull,push&scope=registry:catalog:*";
      assert.deepEqual(claimsOf((await tokenFor(basic("admin", "Admin123"), scope)).token).access, [
        { type: "repository", name: "team/app", actions: ["pull", "push"] },
        { type: "registry", name: "catalog", actions: ["*"] },
      ]);
      assert.deepEqual(claimsOf((await tokenFor(basic("reader", "Reader123"), scope)).token).access, [{ type: "repository", name: "team/app", actions: ["pull"] }]);
      assert.deepEqual(claimsOf((await tokenFor(undefined, scope)).token).access, [], "anonymous gets nothing outside public/**");
    });

    it("evaluates at most 64 scopes per token request: more, in one value or several, is a 400", async () => {
      const scopes = (count: number) => Array.from({ length: count }, (_, i) => `repository:team/app${i}:pull`);
      const atCap = await tokenFor(basic("admin", "Admin123"), `service=team&scope=${encodeURIComponent(scopes(64).join(" "))}`);
      assert.equal(claimsOf(atCap.token).access.length, 64);
      const asked = [
        `scope=${encodeURIComponent(scopes(65).join(" "))}`,
        scopes(65)
          .map((scope) => `scope=${scope}`)
          .join("&"),
      ];
      for (const query of asked) {
        const over = await gateway.request(TEAM, { path: `/token?service=team&${query}` });
        assertRegistryError(over, 400, "UNSUPPORTED");
        assert.match(over.json().errors[0].message, /at most 64 scopes/);
      }
      const overByForm = await gateway.request(TEAM, {
        method: "POST",
        path: "/token",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ grant_type: "password", username: "admin", password: "Admin123", service: "team", scope: scopes(65).join(" ") }).toString(),
      });
      assertRegistryError(overByForm, 400, "UNSUPPORTED");
    });

    it("refreshes over POST (OAuth2 form): password grant with access_type=offline, then refresh_token grant", async () => {
      const form = (fields: Record<string, string>) => ({
        method: "POST",
        path: "/token",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams(fields).toString(),
      });
      const login = await gateway.request(TEAM, form({ grant_type: "password", username: "admin", password: "Admin123", service: "team", client_id: "docker", access_type: "offline" }));
      assert.equal(login.status, 200, login.body.toString());
      const { refresh_token: refreshToken, access_token: accessToken } = login.json();
      assert.equal(typeof refreshToken, "string");
      assert.deepEqual(claimsOf(accessToken).access, []);

      const refreshed = await gateway.request(TEAM, form({ grant_type: "refresh_token", refresh_token: refreshToken, service: "team", client_id: "docker", scope: "repository:team/app:pull,push" }));
      assert.equal(refreshed.status, 200, refreshed.body.toString());
      assert.deepEqual(claimsOf(refreshed.json().access_token).access, [{ type: "repository", name: "team/app", actions: ["pull", "push"] }]);
      assert.equal(refreshed.json().refresh_token, refreshToken);

      // A refresh token is not an access token, and an access token is not a refresh token.
      assertRegistryError(await gateway.request(TEAM, { path: "/v2/", headers: { authorization: `Bearer ${refreshToken}` } }), 401, "UNAUTHORIZED");
      assertRegistryError(await gateway.request(TEAM, form({ grant_type: "refresh_token", refresh_token: accessToken, service: "team" })), 401, "UNAUTHORIZED");
      assertRegistryError(await gateway.request(TEAM, form({ grant_type: "password", username: "admin", password: "bad", service: "team" })), 401, "UNAUTHORIZED");
      assertRegistryError(await gateway.request(TEAM, form({ grant_type: "client_credentials", service: "team" })), 400, "UNSUPPORTED");
    });

    it("skopeo pushes with --dest-creds through the Bearer dance; reader pulls, and is refused a push", async () => {
      const push = ["copy", "--dest-cert-dir", certs, "--dest-creds", "admin:Admin123", image.ociRef, `docker://${ref(TEAM, "team/app")}`];
      assertRan("skopeo push (token)", push, await skopeo(push, { hosts }));
      const listed = (await (await fetch(`${team.url}/v2/_catalog`)).json()) as { repositories: string[] };
      assert.deepEqual(listed.repositories, ["team/app"]);

      const out = join(workDir, "pulled-token");
      const pull = ["copy", "--src-cert-dir", certs, "--src-creds", "reader:Reader123", `docker://${ref(TEAM, "team/app")}`, `oci:${out}:v1`];
      assertRan("skopeo pull as reader (token)", pull, await skopeo(pull, { hosts }));

      const readerPush = ["copy", "--dest-cert-dir", certs, "--dest-creds", "reader:Reader123", image.ociRef, `docker://${ref(TEAM, "team/readers-own")}`];
      const refused = await skopeo(readerPush, { hosts });
      assert.notEqual(refused.code, 0, formatRun("skopeo push as reader (token)", readerPush, refused));
      assert.match(refused.stderr, /unauthorized: requested access to the resource is denied: push on repository team\/readers-own is not granted to reader/);
    });

    it("podman login (a token request with no scope) and pull as reader", async () => {
      const readerStore = await podmanStore();
      try {
        const login = ["login", "--cert-dir", certs, "--username", "reader", "--password-stdin", `${TEAM}:${gateway.port}`];
        assertRan("podman login (token)", login, await podman(login, { store: readerStore, hosts, input: "Reader123\n" }));
        const wrong = await podman(["login", "--cert-dir", certs, "--username", "reader", "--password-stdin", `${TEAM}:${gateway.port}`], {
          store: readerStore,
          hosts,
          input: "wrong\n",
        });
        assert.notEqual(wrong.code, 0);
        const pull = ["pull", "--cert-dir", certs, ref(TEAM, "team/app")];
        assertRan("podman pull (token)", pull, await podman(pull, { store: readerStore, hosts, timeoutMs: 90_000 }));
      } finally {
        await readerStore.remove();
      }
    });

    it("refuses a token signed by another key, an expired one, alg none, a wrong audience, and one for another repository", async () => {
      const path = "/v2/team/app/manifests/v1";
      const now = Math.floor(Date.now() / 1000);
      // Named tokens carry the user's password fingerprint: the one /token puts in admin's tokens.
      const fp = claimsOf((await tokenFor(basic("admin", "Admin123"), "service=team")).token).fp as string;
      assert.match(fp, /^[\w-]{16}$/);
      // Tokens name the site that issued them: the control token names this one.
      const claims = { access: [{ type: "repository", name: "team/app", actions: ["pull"] }], fp, site: "team" };
      const sign = (key: SigningKey["privateKey"], edit: (jwt: SignJWT) => SignJWT) =>
        edit(new SignJWT(claims).setProtectedHeader({ alg: signingKey.algorithm, typ: "JWT", kid: signingKey.keyId }).setIssuer(ISSUER).setSubject("admin"))
          .sign(key);
      const other = await generateKeyPair(signingKey.algorithm);
      const valid = (jwt: SignJWT) => jwt.setAudience("team").setIssuedAt(now).setNotBefore(now).setExpirationTime(now + 600);

      const good = await sign(signingKey.privateKey, valid);
      const accept = "application/vnd.oci.image.manifest.v1+json";
      assert.equal((await gateway.request(TEAM, { path, headers: { authorization: `Bearer ${good}`, accept } })).status, 200, "the control token works");

      const forged: Record<string, string> = {
        "another key": await sign(other.privateKey, valid),
        expired: await sign(signingKey.privateKey, (jwt) => jwt.setAudience("team").setIssuedAt(now - 7200).setNotBefore(now - 7200).setExpirationTime(now - 3600)),
        "alg none": `${base64url.encode(JSON.stringify({ alg: "none", typ: "JWT" }))}.${base64url.encode(JSON.stringify({ ...claims, iss: ISSUER, sub: "admin", aud: "team", iat: now, nbf: now, exp: now + 600 }))}.`,
        "wrong aud": await sign(signingKey.privateKey, (jwt) => jwt.setAudience("hub").setIssuedAt(now).setNotBefore(now).setExpirationTime(now + 600)),
        "wrong iss": await sign(signingKey.privateKey, (jwt) => jwt.setIssuer("someone-else").setAudience("team").setIssuedAt(now).setNotBefore(now).setExpirationTime(now + 600)),
      };
      for (const [what, token] of Object.entries(forged)) {
        const res = await gateway.request(TEAM, { path, headers: { authorization: `Bearer ${token}` } });
        assertRegistryError(res, 401, "UNAUTHORIZED");
        assert.match(String(res.headers["www-authenticate"]), /error="invalid_token",error_description="[^"]+"$/, what);
      }

      const forA = (await tokenFor(basic("admin", "Admin123"), "service=team&scope=repository:team/app:pull")).token;
      const onB = await gateway.request(TEAM, { path: "/v2/team/other/manifests/v1", headers: { authorization: `Bearer ${forA}` } });
      assertRegistryError(onB, 401, "UNAUTHORIZED");
      // docker prints a refusal's reason only from error_description: it names the repository and the right.
      assert.match(
        String(onB.headers["www-authenticate"]),
        /scope="repository:team\/other:pull",error="insufficient_scope",error_description="requested access to the resource is denied: pull on repository team\/other is not granted to admin"$/,
      );
      const pushWithPull = await gateway.request(TEAM, { method: "POST", path: "/v2/team/app/blobs/uploads/", headers: { authorization: `Bearer ${forA}` } });
      assert.match(String(pushWithPull.headers["www-authenticate"]), /error="insufficient_scope",error_description="[^"]*push on repository team\/app[^"]*"$/);
    });
  });

  describe("backendAuth token: a stock distribution with auth: token behind the gateway", () => {
    it("refuses requests without a token of ours", async () => {
      const res = await fetch(`${vault.url}/v2/`);
      assert.equal(res.status, 401);
    });

    it("accepts the gateway's tokens: push, pull and catalog through the gateway", async () => {
      const push = ["copy", "--dest-cert-dir", certs, "--dest-creds", "admin:Admin123", image.ociRef, `docker://${ref(VAULT, "vault/app")}`];
      assertRan("skopeo push (token backend)", push, await skopeo(push, { hosts }));
      const out = join(workDir, "pulled-vault");
      const pull = ["copy", "--src-cert-dir", certs, "--src-creds", "reader:Reader123", `docker://${ref(VAULT, "vault/app")}`, `oci:${out}:v1`];
      assertRan("skopeo pull (token backend)", pull, await skopeo(pull, { hosts }));
      const index = JSON.parse(await readFile(join(out, "index.json"), "utf8")) as { manifests: { digest: string }[] };
      assert.equal(index.manifests[0]!.digest, image.manifestDigest);
      const catalog = await gateway.request(VAULT, { path: "/v2/_catalog", headers: { authorization: basic("admin", "Admin123") } });
      assert.equal(catalog.status, 200, catalog.body.toString());
      assert.deepEqual(catalog.json().repositories, ["vault/app"]);
    });

    it("still decides at the gateway: the backend never sees a request the rules refuse", async () => {
      const res = await gateway.request(VAULT, { method: "POST", path: "/v2/vault/app/blobs/uploads/", headers: { authorization: basic("reader", "Reader123") } });
      assertRegistryError(res, 403, "DENIED");
    });
  });

  // No Authorization header, however broken, may produce a 500.
  describe("malformed Authorization headers", () => {
    const malformed: Record<string, string> = {
      "no scheme": "YWRtaW46QWRtaW4xMjM=",
      "scheme only": "Basic",
      "bad base64": "Basic %%%not-base64%%%",
      "no colon": `Basic ${Buffer.from("adminAdmin123").toString("base64")}`,
      "10 KB value": `Basic ${"QUFB".repeat(2560)}`,
      "10 KB bearer": `Bearer ${"a".repeat(10 * 1024)}`,
      "unknown scheme": "Negotiate abc",
      "garbage bearer": "Bearer not.a.jwt",
    };
    for (const [host, path] of [
      [HUB, "/v2/hub/app/manifests/v1"],
      [TEAM, "/v2/team/app/manifests/v1"],
      [TEAM, "/token?service=team&scope=repository:team/app:pull"],
    ] as const) {
      it(`answers 401 in registry JSON on ${host}${path.split("?")[0]}`, async () => {
        for (const [what, value] of Object.entries(malformed)) {
          const res = await gateway.request(host, { path, headers: { authorization: value } });
          assert.equal(res.status, 401, `${what}: ${res.status} ${res.body.toString()}`);
          assertRegistryError(res, 401, "UNAUTHORIZED");
          assert.ok(res.headers["www-authenticate"], `${what}: a 401 always carries a challenge`);
        }
      });
    }
  });
});
