// Tokens name our key, and a user's access tokens end with a password change or removal.
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { SignJWT, type JWTPayload } from "jose";
import { HtpasswdUsers } from "../../../src/auth/htpasswd.js";
import { TokenSiteAuth } from "../../../src/auth/site-auth.js";
import { loadSigningKey, type SigningKey } from "../../../src/auth/signing-key.js";
import { TokenIssuer, TokenVerifier } from "../../../src/auth/tokens.js";
import type { TokenEndpoint } from "../../../src/auth/types.js";
import { gatewayConfig } from "../../../src/config/schema.js";
import { createLogger } from "../../../src/observe/log.js";
import type { RegistryRoute } from "../../../src/registry/routes.js";
import { AccessPolicy } from "../../../src/auth/access.js";
import { LoginThrottle } from "../../../src/auth/logins.js";
import { MemoryLimiter } from "../../../src/ratelimit/limiter.js";
import { htpasswdLine } from "../../helpers/htpasswd.js";

const ORIGIN = "https://team.registry.test";
const PULL: RegistryRoute = { kind: "manifest", repository: "team/app", reference: "v1", accesses: [{ type: "repository", name: "team/app", action: "pull" }] };
const GRANT = [{ type: "repository", name: "team/app", actions: ["pull"] }];
const noEndpoint: TokenEndpoint = { handle: () => Promise.reject(new Error("not used")) };


describe("token key id and password binding", () => {
  let dir: string;
  let file: string;
  let key: SigningKey;
  let issuer: TokenIssuer;
  let verifier: TokenVerifier;
  let users: HtpasswdUsers;
  let auth: TokenSiteAuth;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "rg-token-binding-"));
    key = await loadSigningKey(gatewayConfig.parse({ dataDir: dir, sites: [{ hosts: ["a.test"], backend: "http://127.0.0.1:1" }] }));
    issuer = new TokenIssuer(key, "registry-gateway", "team");
    verifier = new TokenVerifier(key, "registry-gateway", "team", "team");
    file = join(dir, "htpasswd");
    await writeFile(file, `${await htpasswdLine("admin", "Admin123")}\n${await htpasswdLine("reader", "Reader123")}\n`);
    users = await HtpasswdUsers.open(file, createLogger({ level: "silent", format: "json" }), { pollIntervalMs: 100 });
    const logins = new LoginThrottle(new MemoryLimiter(), { maxFailures: 10, per: 60_000 }).forSite("team", users);
    auth = new TokenSiteAuth(users, verifier, "team", noEndpoint, logins, new AccessPolicy([]));
  });

  after(async () => {
    users?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** A well-signed access token with our key, whatever header we choose. */
  const signed = (header: { kid?: string }, claims: JWTPayload = { access: GRANT }) =>
    new SignJWT({ site: "team", ...claims })
      .setProtectedHeader({ alg: key.algorithm, typ: "JWT", ...header })
      .setIssuer("registry-gateway").setSubject("admin").setAudience("team").setIssuedAt().setNotBefore("0s").setExpirationTime("1h")
      .sign(key.privateKey);

  it("refuses a token with no kid, or another kid, even when our key signed it", async () => {
    const fp = users.fingerprint("admin");
    assert.equal((await verifier.verify(await signed({ kid: key.keyId }, { access: GRANT, fp }))).ok, true, "the control: our kid");
    assert.deepEqual(await verifier.verify(await signed({}, { access: GRANT, fp })), { ok: false, problem: "invalid_token" });
    const otherKid = "AAAA:BBBB:CCCC:DDDD:EEEE:FFFF:GGGG:HHHH:IIII:JJJJ:KKKK:LLLL";
    assert.deepEqual(await verifier.verify(await signed({ kid: otherKid }, { access: GRANT, fp })), { ok: false, problem: "invalid_token" });
  });

  it("refresh tokens too", async () => {
    const refresh = (kid?: string) =>
      new SignJWT({ fp: "x", site: "team" })
        .setProtectedHeader({ alg: key.algorithm, typ: "refresh+jwt", ...(kid ? { kid } : {}) })
        .setIssuer("registry-gateway").setSubject("admin").setAudience("refresh:team").setIssuedAt().setExpirationTime("1h")
        .sign(key.privateKey);
    assert.deepEqual(await verifier.verifyRefresh(await refresh(key.keyId)), { subject: "admin", fingerprint: "x" });
    assert.equal(await verifier.verifyRefresh(await refresh()), null);
    assert.equal(await verifier.verifyRefresh(await refresh("AAAA:BBBB")), null);
  });

  it("access tokens issued with a fingerprint carry it as `fp`, and verify exposes it", async () => {
    const fp = users.fingerprint("admin")!;
    const withFp = await issuer.issue("admin", "team", GRANT, 60_000, fp);
    const claims = JSON.parse(Buffer.from(withFp.token.split(".")[1]!, "base64url").toString());
    assert.equal(claims.fp, fp);
    const verified = await verifier.verify(withFp.token);
    assert.ok(verified.ok);
    assert.equal(verified.token.fingerprint, fp);
    // Backend tokens (backend-token.ts) are issued without one.
    const plain = await issuer.issue("admin", "team", GRANT, 60_000);
    assert.equal("fp" in JSON.parse(Buffer.from(plain.token.split(".")[1]!, "base64url").toString()), false);
  });

  it("TokenSiteAuth admits a token whose fp is the user's current one, refuses other fps and named tokens without one", async () => {
    const current = await issuer.issue("reader", "team", GRANT, 60_000, users.fingerprint("reader"));
    assert.deepEqual(await auth.admit(`Bearer ${current.token}`, PULL, ORIGIN, "10.0.0.1"), { ok: true, principal: { name: "reader" } });

    for (const token of [
      (await issuer.issue("reader", "team", GRANT, 60_000, "not-the-fp")).token,
      (await issuer.issue("reader", "team", GRANT, 60_000)).token,
    ]) {
      const refused = await auth.admit(`Bearer ${token}`, PULL, ORIGIN, "10.0.0.1");
      assert.ok(!refused.ok);
      assert.equal(refused.reason, "invalid_token");
      assert.match(refused.challenge!, /error="invalid_token"/);
    }
    // Anonymous tokens (empty subject) have no password to be bound to.
    const anonymous = await issuer.issue("", "team", GRANT, 60_000);
    assert.deepEqual(await auth.admit(`Bearer ${anonymous.token}`, PULL, ORIGIN, "10.0.0.1"), { ok: true, principal: null });
  });

  it("a password change in the file ends the access tokens issued before it", async () => {
    const before = await issuer.issue("admin", "team", GRANT, 60_000, users.fingerprint("admin"));
    assert.equal((await auth.admit(`Bearer ${before.token}`, PULL, ORIGIN, "10.0.0.1")).ok, true);
    await writeFile(file, `${await htpasswdLine("admin", "NewPassword1")}\n${await htpasswdLine("reader", "Reader123")}\n`);
    await users.reload();
    const after = await auth.admit(`Bearer ${before.token}`, PULL, ORIGIN, "10.0.0.1");
    assert.ok(!after.ok);
    assert.deepEqual([after.error, after.reason, after.message], ["unauthorized", "invalid_token", "the token was issued before a password change"]);
    const fresh = await issuer.issue("admin", "team", GRANT, 60_000, users.fingerprint("admin"));
    assert.equal((await auth.admit(`Bearer ${fresh.token}`, PULL, ORIGIN, "10.0.0.1")).ok, true);
  });
});
