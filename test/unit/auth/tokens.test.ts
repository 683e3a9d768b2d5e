// JWTs a stock distribution 2.8 accepts, and the checks the gateway makes on the data path.
import assert from "node:assert/strict";
import { createPublicKey } from "node:crypto";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { base64url, generateKeyPair, SignJWT } from "jose";
import { libtrustKeyId, loadSigningKey, signingKeyPaths, type SigningKey } from "../../../src/auth/signing-key.js";
import { TokenIssuer, TokenVerifier } from "../../../src/auth/tokens.js";
import { gatewayConfig } from "../../../src/config/schema.js";

// docker/libtrust test vectors, as used by realityone/libtrust-py (tests/fixtures/ec-public.pem, public.pem).
const LIBTRUST_EC = `-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE4pBqYlc5IU5pJh5AOvijtEccStyJ
u0dSAiz4OlDGGFk5PvSlSh+wqUcSyp1ZRSP5kX7Pluof72g5MniaoFrLKg==
-----END PUBLIC KEY-----`;
const LIBTRUST_RSA = `-----BEGIN PUBLIC KEY-----
MIICIjANBgkqhkiG9w0BAQEFAAOCAg8AMIICCgKCAgEAwq1mCmgn460MC6MnCqra
nQNTgmKuKPl7bNH7Qc6hBDGHlnIjU6q/h2KXF37TC5Y9tsKvQ4b8jd0Sf0dXFHml
8qunSvNnqsSvoD8tSPUKqXS6jrlbGSQXhya7BL1RPGccD5K1xrV73QlI6uFPd3AP
RQYij5EOB8IOWEQujJk/8Mjc0EC9zvk5TUJb59hkOUPZ3CkvSBNLNS8wpQI98FRn
IzHjuaNicqve8054oxmDKifHWy0nnF135cXW8zkH3Zto1q89zD2g+zcVxLcRP84U
he0nSQyg7vEYl4Wl74Eo6/89qL2yE0mEiQN245ACA5B8WFV/t3j/OD3ydOCaAOg2
8vQtzcZ1gh2Ev4RxeR7bKq58g+R0+MMwl7nnW29mbCkcgdVVR4YPmglP7Vb6w7/N
bqFhnxx4E3A05AeevHdMdYCrtgQwogvIhdOHLcVQxJgwy1d2Lg/mv9rovhCJ7d3X
aNEYym6CplCHPMtfnU1LCVkA6b44pFaOVjsAQ8FviFtGXQAToRtwoszSarzslHKY
dPoSGFOsgNJgW67iViOYqGPD97rgJA0VPm0POMNHGw/R6o+08KhDF/OI1EDckmjX
hUggY/WCqWDxD77Ezd/wr9Zlbv/uSIEL9ifvBLq06lLcXMLrQbJrwMbDrngMZMAc
UkTzThmtxNs4uwu45R+zfKcCAwEAAQ==
-----END PUBLIC KEY-----`;

const decode = (token: string, part: 0 | 1) => JSON.parse(Buffer.from(token.split(".")[part]!, "base64url").toString());

describe("libtrust key ID (the JWT kid distribution looks keys up by)", () => {
  it("matches libtrust's vectors for an EC and an RSA key", () => {
    assert.equal(libtrustKeyId(createPublicKey(LIBTRUST_EC)), "UEV2:PPF2:4DMU:WZYF:WOWU:677P:B7XU:SGFA:BMUG:NCTC:R7CL:XFKZ");
    assert.equal(libtrustKeyId(createPublicKey(LIBTRUST_RSA)), "IIYO:OWAZ:MBMG:2SIK:IK2I:OP5Z:H6QR:KN6Y:QUGO:BUWN:TYW3:JXVW");
  });
});

for (const algorithm of ["ES256", "RS256"] as const) {
  describe(`tokens signed with a generated ${algorithm} key`, () => {
    let dataDir: string;
    let key: SigningKey;
    let issuer: TokenIssuer;
    let verifier: TokenVerifier;

    before(async () => {
      dataDir = await mkdtemp(join(tmpdir(), "rg-tokens-"));
      const config = gatewayConfig.parse({ dataDir, tokens: { algorithm }, sites: [{ hosts: ["a.test"], backend: "http://127.0.0.1:1" }] });
      key = await loadSigningKey(config);
      issuer = new TokenIssuer(key, "registry-gateway", "hub-site");
      verifier = new TokenVerifier(key, "registry-gateway", "hub", "hub-site");
    });

    after(async () => {
      if (dataDir) await rm(dataDir, { recursive: true, force: true });
    });

    it("keeps the key in dataDir (0600) and loads the same one next time", async () => {
      const paths = signingKeyPaths(dataDir);
      assert.equal((await stat(paths.keyPath)).mode & 0o777, 0o600);
      assert.equal(key.created, true);
      const again = await loadSigningKey(gatewayConfig.parse({ dataDir, tokens: { algorithm }, sites: [{ hosts: ["a.test"], backend: "http://127.0.0.1:1" }] }));
      assert.equal(again.created, false);
      assert.equal(again.keyId, key.keyId);
      assert.equal(await readFile(paths.certPath, "utf8"), key.certPem);
      const other = algorithm === "ES256" ? "RS256" : "ES256";
      await assert.rejects(
        loadSigningKey(gatewayConfig.parse({ dataDir, tokens: { algorithm: other }, sites: [{ hosts: ["a.test"], backend: "http://127.0.0.1:1" }] })),
        new RegExp(`tokens.algorithm is ${other} but the generated key .* is for ${algorithm}`),
      );
    });

    it("has the header and claims distribution 2.8 reads", async () => {
      const issued = await issuer.issue("admin", "hub", [{ type: "repository", name: "team/app", actions: ["pull", "push"] }], 3_600_000);
      const header = decode(issued.token, 0);
      const claims = decode(issued.token, 1);
      assert.deepEqual(header, { alg: algorithm, typ: "JWT", kid: key.keyId });
      assert.match(header.kid, /^([A-Z2-7]{4}:){11}[A-Z2-7]{4}$/);
      assert.equal(claims.iss, "registry-gateway");
      assert.equal(claims.sub, "admin");
      assert.equal(claims.aud, "hub", "aud is one string, not an array");
      assert.equal(claims.site, "hub-site", "bound to the site that issued it");
      for (const claim of ["exp", "nbf", "iat"]) assert.ok(Number.isInteger(claims[claim]), claim);
      assert.equal(claims.exp - claims.iat, 3600);
      assert.equal(typeof claims.jti, "string");
      assert.deepEqual(claims.access, [{ type: "repository", name: "team/app", actions: ["pull", "push"] }]);
      if (algorithm === "ES256") assert.equal(Buffer.from(issued.token.split(".")[2]!, "base64url").length, 64, "raw r‖s");
      assert.equal(issued.expiresIn, 3600);
    });

    it("verifies its own tokens and what they grant", async () => {
      const { token } = await issuer.issue("admin", "hub", [{ type: "repository", name: "a", actions: ["pull"] }, { type: "registry", name: "catalog", actions: ["*"] }], 60_000);
      const result = await verifier.verify(token);
      assert.ok(result.ok);
      assert.equal(result.token.subject, "admin");
      assert.equal(result.token.granted.covers({ type: "repository", name: "a", action: "pull" }), true);
      assert.equal(result.token.granted.covers({ type: "repository", name: "a", action: "push" }), false);
      assert.equal(result.token.granted.covers({ type: "repository", name: "b", action: "pull" }), false);
      assert.equal(result.token.granted.covers({ type: "registry", name: "catalog", action: "*" }), true);
    });

    it("refuses a token signed by another key, even with our kid", async () => {
      const other = await generateKeyPair(algorithm);
      const token = await new SignJWT({ access: [] })
        .setProtectedHeader({ alg: algorithm, typ: "JWT", kid: key.keyId })
        .setIssuer("registry-gateway").setSubject("admin").setAudience("hub").setIssuedAt().setNotBefore("0s").setExpirationTime("1h")
        .sign(other.privateKey);
      assert.deepEqual(await verifier.verify(token), { ok: false, problem: "invalid_token" });
    });

    it("refuses expired tokens (beyond the leeway) and accepts within it", async () => {
      const now = Math.floor(Date.now() / 1000);
      const sign = (exp: number) =>
        new SignJWT({ access: [], site: "hub-site" }).setProtectedHeader({ alg: algorithm, typ: "JWT", kid: key.keyId })
          .setIssuer("registry-gateway").setSubject("admin").setAudience("hub").setIssuedAt(exp - 600).setNotBefore(exp - 600).setExpirationTime(exp)
          .sign(key.privateKey);
      assert.deepEqual(await verifier.verify(await sign(now - 120)), { ok: false, problem: "expired_token" });
      assert.equal((await verifier.verify(await sign(now - 30))).ok, true);
    });

    it('refuses alg "none", a wrong audience, a wrong issuer, and a refresh token used as an access token', async () => {
      const claims = { iss: "registry-gateway", sub: "admin", aud: "hub", iat: 0, nbf: 0, exp: Math.floor(Date.now() / 1000) + 600, access: [] };
      const unsigned = `${base64url.encode(JSON.stringify({ alg: "none", typ: "JWT" }))}.${base64url.encode(JSON.stringify(claims))}.`;
      assert.deepEqual(await verifier.verify(unsigned), { ok: false, problem: "invalid_token" });
      const otherSite = await issuer.issue("admin", "team", [], 60_000);
      assert.deepEqual(await verifier.verify(otherSite.token), { ok: false, problem: "invalid_token" });
      const otherIssuer = await new TokenIssuer(key, "someone-else", "hub-site").issue("admin", "hub", [], 60_000);
      assert.deepEqual(await verifier.verify(otherIssuer.token), { ok: false, problem: "invalid_token" });
      const refresh = await issuer.issueRefresh("admin", "hub", "fp", 60_000);
      assert.deepEqual(await verifier.verify(refresh.token), { ok: false, problem: "invalid_token" });
      assert.deepEqual(await verifier.verifyRefresh(refresh.token), { subject: "admin", fingerprint: "fp" });
      const access = await issuer.issue("admin", "hub", [], 60_000);
      assert.equal(await verifier.verifyRefresh(access.token), null);
    });

    it("refuses a token of another site with the same service and key, and one without a site claim", async () => {
      const grant = [{ type: "repository", name: "team/app", actions: ["pull"] }];
      const otherSite = await new TokenIssuer(key, "registry-gateway", "team-site").issue("admin", "hub", grant, 60_000);
      assert.deepEqual(await verifier.verify(otherSite.token), { ok: false, problem: "invalid_token" });
      const unbound = await new SignJWT({ access: grant }).setProtectedHeader({ alg: algorithm, typ: "JWT", kid: key.keyId })
        .setIssuer("registry-gateway").setSubject("admin").setAudience("hub").setIssuedAt().setNotBefore("0s").setExpirationTime("1h")
        .sign(key.privateKey);
      assert.deepEqual(await verifier.verify(unbound), { ok: false, problem: "invalid_token" }, "issued before tokens named their site");
      const refresh = await new TokenIssuer(key, "registry-gateway", "team-site").issueRefresh("admin", "hub", "fp", 60_000);
      assert.equal(await verifier.verifyRefresh(refresh.token), null);
      assert.equal((await verifier.verify((await issuer.issue("admin", "hub", grant, 60_000)).token)).ok, true, "the control: this site's token");
    });

    it("refuses a well-signed token whose access claim has the wrong shape", async () => {
      const sign = (access: unknown) =>
        new SignJWT({ access, site: "hub-site" }).setProtectedHeader({ alg: algorithm, typ: "JWT", kid: key.keyId })
          .setIssuer("registry-gateway").setSubject("admin").setAudience("hub").setIssuedAt().setNotBefore("0s").setExpirationTime("1h")
          .sign(key.privateKey);
      assert.deepEqual(await verifier.verify(await sign({ type: "repository" })), { ok: false, problem: "invalid_token" });
      assert.deepEqual(await verifier.verify(await sign([{ type: "repository", name: "a", actions: "pull" }])), { ok: false, problem: "invalid_token" });
    });
  });
}
