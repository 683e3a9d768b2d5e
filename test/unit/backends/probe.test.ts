// GET /v2/ of a registry, as health checks, readiness and the managed registries' start send it.
import assert from "node:assert/strict";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import { probeBackend, probeRegistry, type ProbeOutcome } from "../../../src/backends/probe.js";
import { freePort } from "../../helpers/ports.js";

describe("registry probe", () => {
  const seen: { url: string | undefined; authorization: string | undefined }[] = [];
  let server: http.Server;
  let origin: string;

  before(async () => {
    server = http.createServer((req, res) => {
      seen.push({ url: req.url, authorization: req.headers.authorization });
      if (req.headers["x-stall"]) return; // never answers
      res.writeHead(401, { "Content-Type": "application/json" }).end("{}");
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => {
    server.closeAllConnections();
    server.close();
  });

  it("asks /v2/ whatever path the backend URL has, with the headers given, and reports the status", async () => {
    const probe = await probeBackend(new URL(`${origin}/some/path`), { authorization: "Bearer t" });
    assert.deepEqual(probe, { backend: origin, reachable: true, status: 401 });
    assert.deepEqual(seen.at(-1), { url: "/v2/", authorization: "Bearer t" });
  });

  it("gives up when the whole exchange takes longer than the timeout", async () => {
    const started = performance.now();
    const outcome = await new Promise<ProbeOutcome>((resolve) =>
      probeRegistry(new URL(origin), { timeoutMs: 200, agent: false, headers: { "x-stall": "1" } }, resolve),
    );
    assert.deepEqual(outcome, { reachable: false, error: "no answer within 200 ms" });
    assert.ok(performance.now() - started < 2000);
  });

  it("says why a backend did not answer: refused", async () => {
    const closed = `http://127.0.0.1:${await freePort()}`;
    assert.deepEqual(await probeBackend(new URL(closed)), { backend: closed, reachable: false, error: "ECONNREFUSED" });
  });

  it("reports the caller giving up as the outcome, once", async () => {
    const outcomes: ProbeOutcome[] = [];
    const request = probeRegistry(new URL(origin), { timeoutMs: 200, agent: false, headers: { "x-stall": "1" } }, (o) => outcomes.push(o));
    await new Promise((resolve) => setTimeout(resolve, 50));
    request.destroy(new Error("health checks stopped"));
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.deepEqual(outcomes, [{ reachable: false, error: "health checks stopped" }]);
  });
});
