// The tags endpoint through the pipeline, against a scripted loopback registry: one registry's tags are
// paged by the gateway (n, last, Link), each request reads the registry once, and a list longer than the
// gateway reads is refused with a registry error that says so rather than paged in part.
import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { startPipeline, type PipelineHarness } from "../../helpers/pipeline.js";
import { MAX_NAMES } from "../../../src/registry/catalog.js";

const HOST = "single.test";
const TAGS = ["v10", "v2", "latest", "B", "a", "v1"]; // unsorted, as distribution 2.8 lists them

describe("tags/list of one registry, paged by the gateway", () => {
  let backend: http.Server;
  let pipeline: PipelineHarness;
  const seen: string[] = [];

  before(async () => {
    backend = http.createServer((req, res) => {
      seen.push(`${req.url} ${req.headers["user-agent"]}`);
      const tags = req.url === "/v2/big/many/tags/list" ? Array.from({ length: MAX_NAMES + 1 }, (_, i) => `t${i}`) : TAGS;
      const body = JSON.stringify({ name: "x", tags });
      res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
      res.end(body);
    });
    await new Promise<void>((resolve) => backend.listen(0, "127.0.0.1", resolve));
    const { port } = backend.address() as AddressInfo;
    pipeline = await startPipeline({ sites: [{ name: "single", hosts: [HOST], backend: `http://127.0.0.1:${port}` }] });
  });

  after(async () => {
    await pipeline?.close();
    backend?.closeAllConnections();
    backend?.close();
  });

  it("pages the registry's whole list in byte order, one read per request with the client's User-Agent", async () => {
    seen.length = 0;
    const first = await pipeline.request(HOST, { path: "/v2/team/app/tags/list?n=4", headers: { "user-agent": "ua/1" } });
    assert.equal(first.status, 200);
    assert.deepEqual(first.json(), { name: "team/app", tags: ["B", "a", "latest", "v1"] });
    assert.equal(first.headers.link, '</v2/team/app/tags/list?last=v1&n=4>; rel="next"');
    const second = await pipeline.request(HOST, { path: "/v2/team/app/tags/list?last=v1&n=4", headers: { "user-agent": "ua/2" } });
    assert.deepEqual(second.json().tags, ["v10", "v2"]);
    assert.equal(second.headers.link, undefined);
    assert.deepEqual(seen, ["/v2/team/app/tags/list ua/1", "/v2/team/app/tags/list ua/2"]);
    // The registry's read is reported like a forwarded request's (metrics, access log).
    const outcome = pipeline.observed.at(-1)?.outcome;
    assert.equal(outcome?.backend, `http://127.0.0.1:${(backend.address() as AddressInfo).port}`);
    assert.equal(typeof outcome?.upstreamMs, "number");
    assert.equal(outcome?.status, 200);
  });

  it("a list longer than the gateway reads is 500 UNKNOWN, saying why", async () => {
    const res = await pipeline.request(HOST, { path: "/v2/big/many/tags/list?n=10" });
    assert.equal(res.status, 500, res.body.toString());
    assert.equal(res.json().errors[0].code, "UNKNOWN");
    assert.match(res.json().errors[0].message, /more tags than the gateway pages \(100000 tags/);
  });
});
