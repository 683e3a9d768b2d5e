// What the gateway adds to an older registry (distribution 2.8) on tags and digests, as the OCI distribution
// spec v1.1 says a registry answers: tags/list paged with n, last and a Link for every site (distribution
// ignores both and lists every tag, unsorted), a manifest DELETE by tag refused 405 UNSUPPORTED, and a
// malformed digest or mount parameter refused 400 DIGEST_INVALID. The registry's access log is the oracle
// of what reached it.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { certDir, cleanupClients, hostsFile, skopeo } from "../helpers/clients.js";
import { startTestGateway, type GatewayResponse, type TestGateway } from "../helpers/gateway.js";
import { buildOciImage, OCI_MANIFEST, sha256Digest } from "../helpers/oci.js";
import { formatRun, waitFor } from "../helpers/process.js";
import { pool } from "../helpers/raw-http.js";
import { accessLog, startRegistry, type AccessLogLine, type Registry } from "../helpers/registry.js";
import { pushTinyImage, type TinyImage } from "../helpers/seed.js";

const SINGLE = "single.registry.test"; // one distribution registry
const GROUP = "group.registry.test"; // group: the same registry, then a second one with a few tags more
const PASS = "pass.registry.test"; // one registry, tagDelete: pass
const REPO = "big/app";
const TAG_COUNT = 1200;
const SEED_UA = "seed/tag-paging";

/** 1,200 tags whose lexical order is not their numeric one, with the characters a tag may hold. */
const TAGS = Array.from({ length: TAG_COUNT }, (_, i) => (i % 4 === 0 ? `v${i}` : i % 4 === 1 ? `Rel_${i}.x` : i % 4 === 2 ? `b-${i}` : `_${i}`));
const EXTRA = ["zz-only-in-second", "v0", "Rel_1.x"]; // the second member's: one new tag, two shared

function assertRegistryError(res: GatewayResponse, status: number, code: string): void {
  assert.equal(res.status, status, res.body.toString());
  assert.equal(res.headers["content-type"], "application/json; charset=utf-8");
  assert.equal(res.json().errors[0].code, code, res.body.toString());
}

/** The target of a `Link: <…>; rel="next"` header; null when there is none. */
function nextOf(res: GatewayResponse): string | null {
  if (res.headers.link === undefined) return null;
  const match = /^<([^>]+)>; rel="next"$/.exec(String(res.headers.link));
  assert.ok(match, `a Link of distribution's form: ${String(res.headers.link)}`);
  return match[1]!;
}

/** Puts `manifest` under every tag, straight into the registry. */
async function tagAll(registry: Registry, image: TinyImage, tags: readonly string[]): Promise<void> {
  await pool(tags, 16, async (tag) => {
    const res = await fetch(`${registry.url}/v2/${REPO}/manifests/${tag}`, {
      method: "PUT",
      body: image.manifest,
      headers: { "content-type": OCI_MANIFEST, "user-agent": SEED_UA },
    });
    await res.arrayBuffer();
    assert.equal(res.status, 201, `tagging ${tag}`);
  });
}

describe("OCI 1.1 tags and digests on distribution 2.8", { timeout: 120_000 }, () => {
  let registry: Registry;
  let second: Registry;
  let gateway: TestGateway;
  let image: TinyImage;
  let workDir: string;

  /** The registry's access-log lines written after `mark`, once a sentinel sent after them shows up. */
  async function linesAfter(mark: number): Promise<AccessLogLine[]> {
    const sentinel = `sentinel/${randomUUID()}`;
    await (await fetch(`${registry.url}/v2/`, { headers: { "user-agent": sentinel } })).arrayBuffer();
    await waitFor(() => accessLog(registry).some((line) => line.userAgent === sentinel), { timeoutMs: 5000, what: "the sentinel's access-log line" });
    return accessLog(registry)
      .slice(mark)
      .filter((line) => line.userAgent !== sentinel && line.userAgent !== SEED_UA);
  }

  /** Walks the tag list from `start` by its Link headers; every page's answer is checked on the way. */
  async function walk(host: string, start: string): Promise<{ tags: string[]; pages: number }> {
    const tags: string[] = [];
    let pages = 0;
    for (let target: string | null = start; target !== null; pages++) {
      const res = await gateway.request(host, { path: target });
      assert.equal(res.status, 200, res.body.toString());
      assert.equal(res.headers["content-type"], "application/json; charset=utf-8");
      assert.equal(res.headers["docker-distribution-api-version"], "registry/2.0");
      const body = res.json() as { name: string; tags: string[] };
      assert.deepEqual(Object.keys(body), ["name", "tags"]);
      assert.equal(body.name, REPO);
      assert.ok(body.tags.length <= 100, `a page holds at most n: ${body.tags.length}`);
      tags.push(...body.tags);
      target = nextOf(res);
      assert.ok(pages < 50, "the walk ends");
    }
    return { tags, pages };
  }

  before(async () => {
    [registry, second] = await Promise.all([startRegistry({ accessLog: true }), startRegistry()]);
    image = await pushTinyImage(registry.url, REPO, TAGS[0]!, SEED_UA);
    await tagAll(registry, image, TAGS.slice(1));
    await tagAll(second, await pushTinyImage(second.url, REPO, EXTRA[0]!, SEED_UA), EXTRA.slice(1));
    gateway = await startTestGateway({
      sites: [
        { hosts: [SINGLE], backend: registry.url },
        { hosts: [GROUP], group: [{ name: "first", backend: registry.url }, { name: "second", backend: second.url }] },
        { hosts: [PASS], backend: registry.url, tagDelete: "pass" },
      ],
    });
    workDir = await mkdtemp(join(tmpdir(), "rg-tag-paging-"));
  });

  after(async () => {
    await cleanupClients();
    await gateway?.stop();
    await Promise.all([registry?.stop(), second?.stop()]);
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  describe("tags/list paging", () => {
    it("the registry itself ignores n: every tag in one unsorted answer", async () => {
      const direct = (await (await fetch(`${registry.url}/v2/${REPO}/tags/list?n=100`)).json()) as { tags: string[] };
      assert.equal(direct.tags.length, TAG_COUNT);
    });

    it("walking n=100 by the Link header visits every tag exactly once, in lexical order", async () => {
      const { tags, pages } = await walk(SINGLE, `/v2/${REPO}/tags/list?n=100`);
      assert.equal(pages, TAG_COUNT / 100);
      assert.deepEqual(tags, [...TAGS].sort());
    });

    it("each page read the registry once, as the client's request: its User-Agent, the path it asked", async () => {
      const mark = accessLog(registry).length;
      const res = await gateway.request(SINGLE, { path: `/v2/${REPO}/tags/list?n=7&last=b-10`, headers: { "user-agent": "client/tags" } });
      assert.equal(res.status, 200);
      const lines = await linesAfter(mark);
      assert.deepEqual(
        lines.map((line) => `${line.method} ${line.uri} ${line.userAgent}`),
        [`GET /v2/${REPO}/tags/list client/tags`],
      );
    });

    it("last: the page starts after it, whether or not it is a tag", async () => {
      const sorted = [...TAGS].sort();
      const after = sorted[500]!;
      const res = await gateway.request(SINGLE, { path: `/v2/${REPO}/tags/list?n=5&last=${encodeURIComponent(after)}` });
      assert.deepEqual(res.json().tags, sorted.slice(501, 506));
      assert.equal(res.headers.link, `</v2/${REPO}/tags/list?last=${encodeURIComponent(sorted[505]!)}&n=5>; rel="next"`);
      const between = await gateway.request(SINGLE, { path: `/v2/${REPO}/tags/list?n=2&last=b-100a` });
      assert.deepEqual(between.json().tags, sorted.filter((tag) => tag > "b-100a").slice(0, 2));
      const pastEnd = await gateway.request(SINGLE, { path: `/v2/${REPO}/tags/list?last=zzz` });
      assert.deepEqual(pastEnd.json(), { name: REPO, tags: [] });
      assert.equal(pastEnd.headers.link, undefined);
    });

    it("n=0 is an empty list without a Link; no n is at most 1000 and a Link", async () => {
      const none = await gateway.request(SINGLE, { path: `/v2/${REPO}/tags/list?n=0` });
      assert.equal(none.status, 200);
      assert.deepEqual(none.json(), { name: REPO, tags: [] });
      assert.equal(none.headers.link, undefined);
      const all = await gateway.request(SINGLE, { path: `/v2/${REPO}/tags/list` });
      assert.equal(all.json().tags.length, 1000);
      assert.equal(nextOf(all), `/v2/${REPO}/tags/list?last=${encodeURIComponent([...TAGS].sort()[999]!)}&n=1000`);
    });

    it("an invalid n is 400 PAGINATION_NUMBER_INVALID, and the registry is not asked", async () => {
      const mark = accessLog(registry).length;
      for (const n of ["-1", "abc", "1.5", "%2B5"]) {
        assertRegistryError(await gateway.request(SINGLE, { path: `/v2/${REPO}/tags/list?n=${n}` }), 400, "PAGINATION_NUMBER_INVALID");
      }
      assert.deepEqual(await linesAfter(mark), []);
    });

    it("an unknown repository is still 404 NAME_UNKNOWN", async () => {
      assertRegistryError(await gateway.request(SINGLE, { path: "/v2/no/such/tags/list?n=5" }), 404, "NAME_UNKNOWN");
    });

    it("through a group (the merged path) the walk is the same, with the second member's tags merged in", async () => {
      const { tags } = await walk(GROUP, `/v2/${REPO}/tags/list?n=100`);
      assert.deepEqual(tags, [...new Set([...TAGS, ...EXTRA])].sort());
      assert.equal(new Set(tags).size, tags.length, "no tag twice");
    });
  });

  describe("manifest DELETE by tag", () => {
    it("is refused 405 UNSUPPORTED, saying to delete by digest; the registry sees no DELETE", async () => {
      const mark = accessLog(registry).length;
      const res = await gateway.request(SINGLE, { method: "DELETE", path: `/v2/${REPO}/manifests/${TAGS[3]}` });
      assertRegistryError(res, 405, "UNSUPPORTED");
      assert.match(res.json().errors[0].message, /by its digest/);
      assert.equal(res.headers.allow, "GET, HEAD, PUT");
      assert.deepEqual(await linesAfter(mark), []);
      const still = await fetch(`${registry.url}/v2/${REPO}/manifests/${TAGS[3]}`, { method: "HEAD", headers: { accept: OCI_MANIFEST, "user-agent": SEED_UA } });
      assert.equal(still.status, 200);
    });

    it("with tagDelete: pass it is forwarded (distribution 2.8 then answers its own 400)", async () => {
      const mark = accessLog(registry).length;
      const res = await gateway.request(PASS, { method: "DELETE", path: `/v2/${REPO}/manifests/${TAGS[3]}` });
      assertRegistryError(res, 400, "DIGEST_INVALID");
      assert.deepEqual(
        (await linesAfter(mark)).map((line) => `${line.method} ${line.uri}`),
        [`DELETE /v2/${REPO}/manifests/${TAGS[3]}`],
      );
    });

    it("a DELETE by digest still reaches the registry: 202", async () => {
      const doomed = await pushTinyImage(registry.url, "doomed/app", "v1", SEED_UA);
      const res = await gateway.request(SINGLE, { method: "DELETE", path: `/v2/doomed/app/manifests/${doomed.manifestDigest}` });
      assert.equal(res.status, 202, res.body.toString());
      const gone = await fetch(`${registry.url}/v2/doomed/app/manifests/${doomed.manifestDigest}`, { method: "HEAD", headers: { accept: OCI_MANIFEST } });
      assert.equal(gone.status, 404);
    });
  });

  describe("digest parameters", () => {
    const BAD = [
      "sha256:abc", // too short
      `sha256:${"A".repeat(64)}`, // upper-case hex
      `sha512:${"a".repeat(64)}`, // sha512 is 128
      `SHA256:${"a".repeat(64)}`, // algorithm upper-case
      `sha256${"a".repeat(64)}`, // no colon
      `sha256:${"g".repeat(64)}`, // not hex
    ];

    /** An upload session started through the gateway; its Location, relative to the gateway. */
    async function startUpload(): Promise<string> {
      const res = await gateway.request(SINGLE, { method: "POST", path: `/v2/${REPO}/blobs/uploads/` });
      assert.equal(res.status, 202, res.body.toString());
      const location = new URL(String(res.headers.location), `https://${SINGLE}`);
      return `${location.pathname}${location.search}`;
    }

    it("an upload finished with an invalid digest is 400 DIGEST_INVALID; the registry never sees the PUT", async () => {
      const location = await startUpload();
      const mark = accessLog(registry).length;
      for (const digest of BAD) {
        const res = await gateway.request(SINGLE, { method: "PUT", path: `${location}&digest=${encodeURIComponent(digest)}`, body: "blob" });
        assertRegistryError(res, 400, "DIGEST_INVALID");
      }
      assert.deepEqual(await linesAfter(mark), []);
      const blob = Buffer.from(`blob ${randomUUID()}`);
      const good = await gateway.request(SINGLE, { method: "PUT", path: `${location}&digest=${sha256Digest(blob)}`, body: blob });
      assert.equal(good.status, 201, good.body.toString());
    });

    it("a mount with an invalid digest, in the query or the form, is 400 DIGEST_INVALID; the registry sees nothing", async () => {
      const mark = accessLog(registry).length;
      for (const digest of BAD) {
        const query = await gateway.request(SINGLE, { method: "POST", path: `/v2/other/app/blobs/uploads/?mount=${encodeURIComponent(digest)}&from=${REPO}` });
        assertRegistryError(query, 400, "DIGEST_INVALID");
      }
      const form = await gateway.request(SINGLE, {
        method: "POST",
        path: "/v2/other/app/blobs/uploads/",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: `mount=sha256:abc&from=${encodeURIComponent(REPO)}`,
      });
      assertRegistryError(form, 400, "DIGEST_INVALID");
      assert.deepEqual(await linesAfter(mark), []);
      const mount = await gateway.request(SINGLE, { method: "POST", path: `/v2/other/app/blobs/uploads/?mount=${image.layerDigest}&from=${REPO}` });
      assert.equal(mount.status, 201, mount.body.toString());
    });

    it("skopeo still pushes through the gateway", async () => {
      const oci = await buildOciImage(join(workDir, "oci"), { layers: 2, layerSize: 4096, tag: "v1" });
      const certs = await certDir(gateway.caPem);
      const hosts = await hostsFile(workDir, { [SINGLE]: "127.0.0.1" });
      const args = ["copy", "--dest-cert-dir", certs, oci.ociRef, `docker://${SINGLE}:${gateway.port}/pushed/app:v1`];
      const result = await skopeo(args, { hosts, timeoutMs: 60_000 });
      assert.equal(result.code, 0, formatRun("skopeo push", args, result));
      const res = await fetch(`${registry.url}/v2/pushed/app/manifests/v1`, { method: "HEAD", headers: { accept: OCI_MANIFEST } });
      assert.equal(res.headers.get("docker-content-digest"), oci.manifestDigest);
    });
  });
});
