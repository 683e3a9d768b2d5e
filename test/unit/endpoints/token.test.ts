// The token endpoint as the pipeline serves it (endpoints/token.ts over auth/token-endpoint.ts): the grant
// types, what a token grants (what was asked AND what the rules allow), and bad credentials → 401 in
// registry JSON, reported to the pipeline's metrics.
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { decodeJwt } from "jose";
import { htpasswdLine } from "../../helpers/htpasswd.js";
import { startPipeline, type PipelineHarness } from "../../helpers/pipeline.js";

const HOST = "tokens.test";
const SERVICE = "tokens.test";
const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;
const FORM = { "content-type": "application/x-www-form-urlencoded" };

describe("token endpoint handler", () => {
  let workDir: string;
  let pipeline: PipelineHarness;

  before(async () => {
    workDir = await mkdtemp(join(tmpdir(), "rg-token-endpoint-"));
    const htpasswd = join(workDir, "htpasswd");
    await writeFile(htpasswd, `${await htpasswdLine("alice", "Alice123")}\n`);
    pipeline = await startPipeline({
      sites: [
        {
          name: "tokens",
          hosts: [HOST],
          backend: "http://127.0.0.1:9",
          auth: {
            type: "token",
            htpasswd,
            service: SERVICE,
            rules: [
              { who: ["alice"], repositories: ["team/**"], actions: ["pull", "push"] },
              { who: "*", repositories: ["public/**"], actions: ["pull"] },
            ],
          },
        },
      ],
    });
  });

  after(async () => {
    await pipeline?.close();
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  /** The access a token grants, as `name: actions` (sorted). */
  const granted = (token: string) =>
    ((decodeJwt(token).access ?? []) as { name: string; actions: string[] }[]).map((entry) => `${entry.name}: ${[...entry.actions].sort().join(",")}`).sort();

  const post = (form: Record<string, string>) =>
    pipeline.request(HOST, { method: "POST", path: "/token", headers: FORM, body: new URLSearchParams(form).toString() });

  it("GET with Basic credentials: a token for what was asked and the rules allow, nothing more", async () => {
    const scopes = ["repository:team/app:pull,push,delete", "repository:other/app:pull", "repository:public/lib:pull"];
    const res = await pipeline.request(HOST, {
      path: `/token?service=${SERVICE}&${scopes.map((scope) => `scope=${encodeURIComponent(scope)}`).join("&")}`,
      headers: { authorization: basic("alice", "Alice123") },
    });
    assert.equal(res.status, 200, res.body.toString());
    const body = res.json();
    assert.equal(body.token, body.access_token);
    assert.equal(decodeJwt(body.token).sub, "alice");
    assert.deepEqual(granted(body.token), ["public/lib: pull", "team/app: pull,push"]);
    assert.equal(body.refresh_token, undefined, "no refresh token unless asked for one");
    assert.equal(pipeline.observed.at(-1)!.user, "alice", "who got the token is what the access log shows");
  });

  it("GET without credentials: an anonymous token with what anyone may do", async () => {
    const res = await pipeline.request(HOST, { path: `/token?service=${SERVICE}&scope=repository:public/lib:pull,push&scope=repository:team/app:pull` });
    assert.equal(res.status, 200, res.body.toString());
    assert.equal(decodeJwt(res.json().token).sub, "");
    assert.deepEqual(granted(res.json().token), ["public/lib: pull"]);
  });

  it("POST grant_type=password, offline: a refresh token, which grant_type=refresh_token then exchanges", async () => {
    const login = await post({ grant_type: "password", username: "alice", password: "Alice123", service: SERVICE, access_type: "offline", scope: "repository:team/app:pull" });
    assert.equal(login.status, 200, login.body.toString());
    const refreshToken = login.json().refresh_token as string;
    assert.ok(refreshToken);
    assert.deepEqual(granted(login.json().token), ["team/app: pull"]);

    const refreshed = await post({ grant_type: "refresh_token", refresh_token: refreshToken, service: SERVICE, scope: "repository:team/app:push repository:other/x:pull" });
    assert.equal(refreshed.status, 200, refreshed.body.toString());
    assert.equal(refreshed.json().refresh_token, refreshToken);
    assert.equal(decodeJwt(refreshed.json().token).sub, "alice");
    assert.deepEqual(granted(refreshed.json().token), ["team/app: push"]);
  });

  it("bad credentials → 401 in registry JSON with a challenge, reported as an auth failure", async () => {
    const before = pipeline.authFailures.length;
    const byGet = await pipeline.request(HOST, { path: `/token?service=${SERVICE}`, headers: { authorization: basic("alice", "wrong") } });
    const byPost = await post({ grant_type: "password", username: "alice", password: "wrong", service: SERVICE });
    const byRefresh = await post({ grant_type: "refresh_token", refresh_token: "not-a-token", service: SERVICE });
    for (const res of [byGet, byPost, byRefresh]) {
      assert.equal(res.status, 401);
      assert.match(String(res.headers["content-type"]), /application\/json/);
      assert.equal(res.json().errors[0].code, "UNAUTHORIZED");
      assert.match(String(res.headers["www-authenticate"]), /^Basic /);
      assert.equal(res.headers["cache-control"], "no-store");
    }
    assert.deepEqual(pipeline.authFailures.slice(before), ["tokens invalid_credentials", "tokens invalid_credentials", "tokens invalid_token"]);
    assert.equal(pipeline.observed.at(-1)!.refusal, "unauthorized");
  });

  it("an unknown grant type, or a token for another service → 400", async () => {
    const grant = await post({ grant_type: "client_credentials", service: SERVICE });
    assert.equal(grant.status, 400);
    assert.match(grant.json().errors[0].message, /grant_type must be password or refresh_token/);
    const service = await pipeline.request(HOST, { path: "/token?service=elsewhere" });
    assert.equal(service.status, 400);
    assert.match(service.json().errors[0].message, /issues tokens for service "tokens.test"/);
  });

  it("a form over the bound, sent chunked, is answered 400", async () => {
    const body = new URLSearchParams({ grant_type: "password", username: "alice", password: "x".repeat(1024 * 1024) }).toString();
    const res = await pipeline.request(HOST, { method: "POST", path: "/token", headers: { ...FORM, "transfer-encoding": "chunked" }, body });
    assert.equal(res.status, 400);
    assert.match(res.json().errors[0].message, /the form is too large/);
  });
});
