import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { SiteLists } from "../../../src/backends/lists.js";
import { gatewayConfig } from "../../../src/config/schema.js";
import { createLogger } from "../../../src/observe/log.js";
import { SiteMap } from "../../../src/sites.js";

/** A registry whose catalog answers after 150 ms, counting how often it is asked. */
async function slowCatalog(repositories: string[]) {
  const state = { calls: 0, url: "" };
  const server = http.createServer((req, res) => {
    state.calls++;
    setTimeout(() => res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ repositories })), 150);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { state, close: () => new Promise((resolve) => server.close(resolve)) };
}

describe("merged catalogs (backends/lists.ts)", () => {
  let a: Awaited<ReturnType<typeof slowCatalog>>;
  let b: Awaited<ReturnType<typeof slowCatalog>>;
  before(async () => {
    [a, b] = await Promise.all([slowCatalog(["b/y", "a/x"]), slowCatalog(["c/z", "b/y"])]);
  });
  after(async () => {
    await Promise.all([a.close(), b.close()]);
  });

  it("requests arriving while a merged catalog is fetched share that fetch; the next one fetches anew", async () => {
    const config = gatewayConfig.parse({
      sites: [{ hosts: ["group.test"], group: [{ name: "one", backend: a.state.url }, { name: "two", backend: b.state.url }] }],
    });
    const site = new SiteMap(config).sites[0]!;
    const lists = new SiteLists(() => http.globalAgent, createLogger({ level: "silent", format: "json" }));
    const answers = await Promise.all(Array.from({ length: 8 }, () => lists.repositories(site)));
    for (const names of answers) assert.deepEqual(names, ["a/x", "b/y", "c/z"]);
    assert.deepEqual([a.state.calls, b.state.calls], [1, 1], "8 concurrent requests, one catalog fetch per member");
    assert.deepEqual(await lists.repositories(site), ["a/x", "b/y", "c/z"]);
    assert.deepEqual([a.state.calls, b.state.calls], [2, 2], "lists.cacheFor 0: nothing kept once settled, a push shows at once");
  });

  it("with lists.cacheFor, a settled catalog is reused for that long, then fetched anew", async () => {
    const config = gatewayConfig.parse({
      sites: [{ hosts: ["group.test"], group: [{ name: "one", backend: a.state.url }, { name: "two", backend: b.state.url }] }],
    });
    const site = new SiteMap(config).sites[0]!;
    const lists = new SiteLists(() => http.globalAgent, createLogger({ level: "silent", format: "json" }), null, 1000);
    const before = [a.state.calls, b.state.calls];
    for (let i = 0; i < 5; i++) assert.deepEqual(await lists.repositories(site), ["a/x", "b/y", "c/z"]);
    assert.deepEqual([a.state.calls - before[0]!, b.state.calls - before[1]!], [1, 1], "5 requests in a row, one fetch per member");
    await new Promise((resolve) => setTimeout(resolve, 1100));
    await lists.repositories(site);
    assert.deepEqual([a.state.calls - before[0]!, b.state.calls - before[1]!], [2, 2], "fetched again once the period is over");
  });
});

describe("one registry's tag lists (backends/lists.ts)", () => {
  it("reads at most 8 at once: a burst of tag-list requests waits its turn instead of each buffering a whole list", async () => {
    const state = { open: 0, most: 0, calls: 0 };
    const server = http.createServer((_req, res) => {
      state.calls++;
      state.most = Math.max(state.most, ++state.open);
      setTimeout(() => {
        state.open--;
        res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ name: "team/app", tags: ["b", "a"] }));
      }, 100);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const site = new SiteMap(gatewayConfig.parse({ sites: [{ hosts: ["one.test"], backend: url }] })).sites[0]!;
      const lists = new SiteLists(() => http.globalAgent, createLogger({ level: "silent", format: "json" }));
      const upstream = site.upstreams.for("team/app");
      const answers = await Promise.all(Array.from({ length: 20 }, () => lists.tags(site, upstream, "team/app", null)));
      for (const tags of answers) assert.deepEqual(tags, ["a", "b"]);
      assert.equal(state.calls, 20, "each request reads the list itself");
      assert.ok(state.most <= 8, `${state.most} reads at once`);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
