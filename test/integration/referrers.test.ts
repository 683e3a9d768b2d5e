// The OCI 1.1 referrers API and manifest checks the gateway adds in front of distribution 2.8, which has
// neither: through a site with htpasswd in front of a plain backend, and a token site in front of a backend
// running `auth: token` (the index is then written with the gateway's own token). Two gateways sharing
// Redis keep one index under concurrent pushes. The backends' access logs show what reached them.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { loadSigningKey } from "../../src/auth/signing-key.js";
import { gatewayConfig, type AccessRuleConfig } from "../../src/config/schema.js";
import { startTestGateway, type TestGateway } from "../helpers/gateway.js";
import { htpasswdLine } from "../helpers/htpasswd.js";
import { OCI_INDEX, OCI_MANIFEST, sha256Digest, type Descriptor } from "../helpers/oci.js";
import { startRedis, type RedisServer } from "../helpers/redis.js";
import { rawExchange } from "../helpers/raw-http.js";
import { accessLog, startRegistry, type Registry } from "../helpers/registry.js";
import { artifactManifest, pushBlobThrough, pushImageThrough, putManifest, type SiteClient } from "../helpers/referrers.js";

const PLAIN = "plain.test";
const TOKEN = "token.test";
const ISSUER = "referrers-test";
const SERVICE = "referrers-backend";
const SIGNATURE = "application/vnd.example.signature.v1";
const SBOM = "application/vnd.example.sbom.v1";
const RULES: AccessRuleConfig[] = [
  { who: ["writer"], repositories: ["**"], actions: ["pull", "push", "delete"] },
  { who: ["outsider"], repositories: ["elsewhere/**"], actions: ["pull"] },
];
const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;
const fallbackTag = (digest: string) => digest.replace(":", "-");

describe("referrers and manifest checks in front of distribution 2.8", () => {
  let workDir: string;
  let redis: RedisServer;
  let plainBackend: Registry;
  let tokenBackend: Registry;
  let gateway: TestGateway;
  let second: TestGateway;

  /** A caller of `host` on `on`: Basic for the htpasswd site, a token from the site's /token otherwise. */
  const clientOf = async (on: TestGateway, host: string, user: string, password: string, userAgent = "referrers-test"): Promise<SiteClient> => {
    let authorization = basic(user, password);
    if (host === TOKEN) {
      const scope = "repository:app/one:pull,push,delete";
      const res = await on.request(host, { path: `/token?service=token&scope=${scope}`, headers: { authorization } });
      assert.equal(res.status, 200, res.body.toString());
      authorization = `Bearer ${res.json().token}`;
    }
    return (options) => on.request(host, { ...options, headers: { authorization, "user-agent": userAgent, ...options.headers } });
  };

  before(async () => {
    workDir = await mkdtemp(join(tmpdir(), "rg-referrers-"));
    const dataDir = join(workDir, "data");
    const htpasswd = join(workDir, "htpasswd");
    await writeFile(htpasswd, `${await htpasswdLine("writer", "Writer123")}\n${await htpasswdLine("outsider", "Outsider123")}\n`);
    const signingKey = await loadSigningKey(gatewayConfig.parse({ dataDir, tokens: { issuer: ISSUER }, sites: [{ hosts: ["x.test"], backend: "http://127.0.0.1:1" }] }));
    const rootCertBundle = join(workDir, "token-signing.crt");
    await writeFile(rootCertBundle, signingKey.certPem);
    [redis, plainBackend, tokenBackend] = await Promise.all([
      startRedis(),
      startRegistry({ accessLog: true }),
      startRegistry({ accessLog: true, auth: { realm: `https://${TOKEN}/token`, service: SERVICE, issuer: ISSUER, rootCertBundle } }),
    ]);
    const plainSite = { name: "plain", hosts: [PLAIN], backend: plainBackend.url, auth: { type: "htpasswd" as const, htpasswd, rules: RULES } };
    const tokenSite = {
      name: "token",
      hosts: [TOKEN],
      backend: tokenBackend.url,
      auth: { type: "token" as const, htpasswd, rules: RULES },
      backendAuth: { type: "token" as const, service: SERVICE },
    };
    const shared = { redis: { url: redis.url }, tokens: { issuer: ISSUER } };
    gateway = await startTestGateway({ ...shared, dataDir, sites: [plainSite, tokenSite] });
    second = await startTestGateway({ ...shared, sites: [plainSite] });
  });

  after(async () => {
    await Promise.all([gateway?.stop(), second?.stop()]);
    await Promise.all([plainBackend?.stop(), tokenBackend?.stop(), redis?.stop()]);
    await rm(workDir, { recursive: true, force: true });
  });

  for (const [host, backendOf] of [
    [PLAIN, () => plainBackend],
    [TOKEN, () => tokenBackend],
  ] as const) {
    describe(`${host}`, () => {
      let writer: SiteClient;
      let subject: Descriptor;
      let signature: Descriptor & { artifactType: string };
      let sbom: Descriptor & { artifactType: string; annotations: Record<string, string> };

      const referrersOf = (digest: string, query = "") => writer({ path: `/v2/app/one/referrers/${digest}${query}` });

      before(async () => {
        writer = await clientOf(gateway, host, "writer", "Writer123");
        subject = await pushImageThrough(writer, "app/one", "v1");
      });

      it("answers a PUT with a subject with OCI-Subject and the client's digest", async () => {
        const layer = await pushBlobThrough(writer, "app/one", randomBytes(32));
        const pushArtifact = async (artifactType: string, annotations?: Record<string, string>) => {
          const body = artifactManifest(subject, artifactType, layer, annotations);
          const digest = sha256Digest(body);
          const put = await putManifest(writer, "app/one", digest, body);
          assert.equal(put.status, 201, put.body.toString());
          assert.equal(put.headers["oci-subject"], subject.digest);
          assert.equal(put.headers["docker-content-digest"], digest);
          return { mediaType: OCI_MANIFEST, digest, size: body.length, artifactType };
        };
        signature = await pushArtifact(SIGNATURE);
        sbom = { ...(await pushArtifact(SBOM, { "org.example.kind": "sbom" })), annotations: { "org.example.kind": "sbom" } };
      });

      it("lists both referrers with their descriptors, and filters by artifactType", async () => {
        const all = await referrersOf(subject.digest);
        assert.equal(all.status, 200);
        assert.equal(all.headers["content-type"], OCI_INDEX);
        assert.deepEqual(all.json(), { schemaVersion: 2, mediaType: OCI_INDEX, manifests: [signature, sbom] });
        assert.equal(all.headers["oci-filters-applied"], undefined);

        const filtered = await referrersOf(subject.digest, `?artifactType=${encodeURIComponent(SBOM)}`);
        assert.equal(filtered.status, 200);
        assert.equal(filtered.headers["oci-filters-applied"], "artifactType");
        assert.deepEqual(filtered.json().manifests, [sbom]);
      });

      it("keeps the same index under the fallback tag", async () => {
        const tagged = await writer({ path: `/v2/app/one/manifests/${fallbackTag(subject.digest)}`, headers: { accept: OCI_INDEX } });
        assert.equal(tagged.status, 200);
        assert.deepEqual(tagged.json().manifests, [signature, sbom]);
      });

      it("takes a deleted referrer out of the API's answer and the fallback tag", async () => {
        const deleted = await writer({ method: "DELETE", path: `/v2/app/one/manifests/${signature.digest}` });
        assert.equal(deleted.status, 202, deleted.body.toString());
        assert.deepEqual((await referrersOf(subject.digest)).json().manifests, [sbom]);
        const tagged = await writer({ path: `/v2/app/one/manifests/${fallbackTag(subject.digest)}`, headers: { accept: OCI_INDEX } });
        assert.deepEqual(tagged.json().manifests, [sbom]);
      });

      it("answers 200 with an empty index for a digest nothing refers to", async () => {
        const unknown = await referrersOf(sha256Digest(randomBytes(8)));
        assert.equal(unknown.status, 200);
        assert.deepEqual(unknown.json(), { schemaVersion: 2, mediaType: OCI_INDEX, manifests: [] });
      });

      it("refuses a caller without pull, and the backend serves nothing for it", async () => {
        const outsider = await clientOf(gateway, host, "outsider", "Outsider123", `outsider-${host}`);
        const res = await outsider({ path: `/v2/app/one/referrers/${subject.digest}` });
        assert.ok(res.status === 401 || res.status === 403, `status ${res.status}`);
        assert.deepEqual(
          accessLog(backendOf()).filter((line) => line.userAgent === `outsider-${host}`),
          [],
        );
      });

      it("refuses a manifest that is not JSON or of no known media type, before the backend sees it", async () => {
        const agent = `invalid-${host}`;
        const bad = async (body: string, contentType: string) => {
          const res = await putManifest((options) => writer({ ...options, headers: { ...options.headers, "user-agent": agent } }), "app/one", "bad", body, contentType);
          assert.equal(res.status, 400, res.body.toString());
          assert.equal(res.json().errors[0].code, "MANIFEST_INVALID");
        };
        await bad("this is not json", OCI_MANIFEST);
        await bad(JSON.stringify({ schemaVersion: 2, mediaType: "application/x-unknown", layers: [] }), "application/x-unknown");
        await bad(JSON.stringify({ schemaVersion: 2, layers: [] }), "text/plain");
        assert.deepEqual(
          accessLog(backendOf()).filter((line) => line.userAgent === agent),
          [],
        );
      });
    });
  }

  it("refuses a manifest declared larger than 4 MiB with 413 MANIFEST_INVALID, without reading it", async () => {
    const head =
      `PUT /v2/app/one/manifests/big HTTP/1.1\r\nHost: ${PLAIN}:${gateway.port}\r\nAuthorization: ${basic("writer", "Writer123")}\r\n` +
      `User-Agent: too-big\r\nContent-Type: ${OCI_MANIFEST}\r\nContent-Length: ${4 * 1024 * 1024 + 1}\r\n\r\n`;
    const exchange = await rawExchange({ port: gateway.port, tls: { ca: gateway.caPem, servername: PLAIN } }, head, { expectResponses: 1 });
    assert.equal(exchange.responses[0]?.status, 413);
    assert.equal(exchange.responses[0]!.json().errors[0].code, "MANIFEST_INVALID");
    assert.deepEqual(
      accessLog(plainBackend).filter((line) => line.userAgent === "too-big"),
      [],
    );
  });

  it("keeps all 20 referrers pushed at once to one subject through two gateways sharing Redis", async () => {
    const viaFirst = await clientOf(gateway, PLAIN, "writer", "Writer123");
    const viaSecond = await clientOf(second, PLAIN, "writer", "Writer123");
    const subject = await pushImageThrough(viaFirst, "app/busy", "v1");
    const layer = await pushBlobThrough(viaFirst, "app/busy", randomBytes(32));
    const bodies = Array.from({ length: 20 }, (_, index) => artifactManifest(subject, SIGNATURE, layer, { "org.example.n": String(index) }));
    const puts = await Promise.all(bodies.map((body, index) => putManifest(index % 2 ? viaSecond : viaFirst, "app/busy", sha256Digest(body), body)));
    assert.deepEqual(
      puts.map((put) => [put.status, put.headers["oci-subject"]]),
      bodies.map(() => [201, subject.digest]),
    );
    const listed = await viaSecond({ path: `/v2/app/busy/referrers/${subject.digest}` });
    assert.deepEqual(listed.json().manifests.map((d: Descriptor) => d.digest).sort(), bodies.map((body) => sha256Digest(body)).sort());
  });
});
