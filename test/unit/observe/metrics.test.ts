// The metrics module — names, label sets, the operation mapping, and that labels stay bounded.
import assert from "node:assert/strict";
import type { IncomingMessage, ServerResponse } from "node:http";
import { describe, it } from "node:test";
import { AUTH_FAILURE_REASONS, GatewayMetrics, OPERATIONS, type RequestSample } from "../../../src/observe/metrics.js";
import { createRequestObserver } from "../../../src/observe/observer.js";
import type { RequestContext } from "../../../src/request-context.js";
import type { Site } from "../../../src/sites.js";
import { parseExposition, valueOf, type Samples } from "../../helpers/metrics.js";
import { routeOf } from "../../helpers/routes.js";

const P = "registry_gateway_";

async function samplesOf(metrics: GatewayMetrics): Promise<Samples> {
  return parseExposition(await metrics.exposition());
}

function sample(overrides: Partial<RequestSample>): RequestSample {
  return { site: "hub", operation: "base", method: "GET", status: 200, durationMs: 12, bytesIn: 0, bytesOut: 0, ...overrides };
}

// The observer reads a site's name and backend only.
const HUB = { name: "hub", hosts: ["hub.test"], backend: new URL("http://127.0.0.1:5001") } as unknown as Site;

function fakeExchange(method: string, contentLength?: number): [IncomingMessage, ServerResponse] {
  const req = { method, headers: {} } as IncomingMessage;
  const res = { headersSent: true, getHeader: (name: string) => (name === "content-length" ? contentLength : undefined) } as unknown as ServerResponse;
  return [req, res];
}

function record(method: string, path: string, overrides: Partial<RequestContext> = {}, contentLength?: number): RequestContext {
  const [req, res] = fakeExchange(method, contentLength);
  return {
    req,
    res,
    principal: null,
    requestId: "r-1",
    method,
    url: path,
    clientIp: "192.0.2.7",
    startedAt: 0,
    durationMs: 5,
    status: 200,
    site: HUB,
    route: path.includes("something-new") || overrides.route ? undefined : routeOf(method, path),
    ...overrides,
  };
}

describe("metrics: request observations", () => {
  it("counts a request once under its site, operation, method and code, with its duration", async () => {
    const metrics = new GatewayMetrics();
    metrics.recordRequest(sample({ operation: "manifest", method: "GET", status: 200, durationMs: 30 }));
    metrics.recordRequest(sample({ operation: "manifest", method: "GET", status: 200, durationMs: 70 }));
    metrics.recordRequest(sample({ operation: "manifest", method: "HEAD", status: 404 }));
    const s = await samplesOf(metrics);
    const labels = { site: "hub", operation: "manifest", method: "GET", code: "200" };
    assert.equal(valueOf(s, `${P}requests_total`, labels), 2);
    assert.equal(valueOf(s, `${P}requests_total`, { ...labels, method: "HEAD", code: "404" }), 1);
    assert.equal(valueOf(s, `${P}request_duration_seconds_count`, labels), 2);
    assert.ok(Math.abs(valueOf(s, `${P}request_duration_seconds_sum`, labels) - 0.1) < 1e-9);
    assert.equal(valueOf(s, `${P}request_duration_seconds_bucket`, { ...labels, le: "0.05" }), 1);
    assert.equal(valueOf(s, `${P}request_duration_seconds_bucket`, { ...labels, le: "0.1" }), 2);
  });

  it("counts body bytes per site and operation, and blob bytes pulled (GET 200/206) and pushed (upload bodies)", async () => {
    const metrics = new GatewayMetrics();
    metrics.recordRequest(sample({ operation: "blob", method: "GET", status: 200, bytesOut: 1000 }));
    metrics.recordRequest(sample({ operation: "blob", method: "GET", status: 206, bytesOut: 10 }));
    metrics.recordRequest(sample({ operation: "blob", method: "GET", status: 404, bytesOut: 99 }));
    metrics.recordRequest(sample({ operation: "manifest", method: "GET", status: 200, bytesOut: 500 }));
    metrics.recordRequest(sample({ operation: "upload", method: "PATCH", status: 202, bytesIn: 4096 }));
    metrics.recordRequest(sample({ operation: "upload", method: "PUT", status: 201, bytesIn: 4 }));
    metrics.recordRequest(sample({ operation: "manifest", method: "PUT", status: 201, bytesIn: 300 }));
    const s = await samplesOf(metrics);
    assert.equal(valueOf(s, `${P}blob_pulled_bytes_total`, { site: "hub" }), 1010);
    assert.equal(valueOf(s, `${P}blob_pushed_bytes_total`, { site: "hub" }), 4100);
    assert.equal(valueOf(s, `${P}response_body_bytes_total`, { site: "hub", operation: "blob" }), 1109);
    assert.equal(valueOf(s, `${P}response_body_bytes_total`, { site: "hub", operation: "manifest" }), 500);
    assert.equal(valueOf(s, `${P}request_body_bytes_total`, { site: "hub", operation: "upload" }), 4100);
    assert.equal(valueOf(s, `${P}request_body_bytes_total`, { site: "hub", operation: "manifest" }), 300);
  });

  it("observes upstream time per backend, and counts upstream errors by backend and reason", async () => {
    const metrics = new GatewayMetrics();
    const backend = "http://127.0.0.1:5001";
    metrics.recordRequest(sample({ backend, upstreamMs: 8 }));
    metrics.recordRequest(sample({ backend, status: 502, upstreamFailure: "refused" }));
    metrics.recordRequest(sample({ backend, status: 504, upstreamFailure: "timeout" }));
    metrics.recordRequest(sample({ backend, status: 502, upstreamFailure: "refused" }));
    const s = await samplesOf(metrics);
    assert.equal(valueOf(s, `${P}upstream_request_duration_seconds_count`, { backend }), 1);
    assert.equal(valueOf(s, `${P}upstream_errors_total`, { backend, reason: "refused" }), 2);
    assert.equal(valueOf(s, `${P}upstream_errors_total`, { backend, reason: "timeout" }), 1);
  });

  it("maps each route kind to its operation label, and requests never classified to other", async () => {
    const metrics = new GatewayMetrics();
    const observer = createRequestObserver({ metrics, accessLog: null })!;
    const digest = `sha256:${"a".repeat(64)}`;
    const cases: [string, string, string][] = [
      ["GET", "/v2/", "base"],
      ["GET", "/v2/_catalog", "catalog"],
      ["GET", "/v2/team/app/tags/list", "tags"],
      ["GET", "/v2/team/app/manifests/v1", "manifest"],
      ["GET", `/v2/team/app/blobs/${digest}`, "blob"],
      ["PATCH", "/v2/team/app/blobs/uploads/0f3c", "upload"],
      ["GET", `/v2/team/app/referrers/${digest}`, "referrers"],
      ["GET", "/token?scope=repository:team/app:pull", "token"],
      ["GET", "/v1/search?q=app", "search"],
      ["GET", "/v1/_ping", "ping"],
      ["GET", "/v2/team/app/something-new", "other"],
      ["GET", "/", "browser"],
    ];
    for (const [method, path] of cases) observer.requestDone(record(method, path, path === "/" ? { route: { kind: "browser", accesses: [] } } : {}));
    observer.requestDone(record("GET", "/v2/", { site: undefined, route: undefined, status: 421 }, 101));
    const s = await samplesOf(metrics);
    for (const [method, path, operation] of cases) {
      assert.equal(valueOf(s, `${P}requests_total`, { site: "hub", operation, method, code: "200" }), 1, `${method} ${path}`);
    }
    assert.deepEqual(new Set(cases.map((c) => c[2])), new Set(OPERATIONS));
    // Unknown host: empty site, operation other, and the gateway's own error body counted from Content-Length.
    assert.equal(valueOf(s, `${P}requests_total`, { site: "", operation: "other", method: "GET", code: "421" }), 1);
    assert.equal(valueOf(s, `${P}response_body_bytes_total`, { site: "", operation: "other" }), 101);
  });

  it("keeps labels bounded: odd methods become OTHER, unknown auth reasons other, and no label names a repository, digest, user or IP", async () => {
    const metrics = new GatewayMetrics();
    const observer = createRequestObserver({ metrics, accessLog: null })!;
    const digest = `sha256:${"b".repeat(64)}`;
    observer.requestDone(
      record("GET", `/v2/secret-team/secret-app/blobs/${digest}`, { user: "alice", clientIp: "203.0.113.9", status: 200 }),
    );
    metrics.recordRequest(sample({ method: "PROPFIND" }));
    metrics.authFailure("hub", "not-a-reason" as never);
    metrics.authFailure("hub", "invalid_credentials");
    const text = await metrics.exposition();
    const s = parseExposition(text);
    assert.equal(valueOf(s, `${P}requests_total`, { site: "hub", operation: "base", method: "OTHER", code: "200" }), 1);
    assert.equal(valueOf(s, `${P}auth_failures_total`, { site: "hub", reason: "other" }), 1);
    assert.equal(valueOf(s, `${P}auth_failures_total`, { site: "hub", reason: "invalid_credentials" }), 1);
    for (const secret of ["secret-team", "secret-app", "bbbbbbbb", "alice", "203.0.113.9", "PROPFIND", "not-a-reason"]) {
      assert.ok(!text.includes(secret), `the exposition contains ${secret}`);
    }
    const allowed = new Set(["site", "operation", "method", "code", "backend", "reason", "limit", "host", "result", "le"]);
    for (const key of s.keys()) {
      if (!key.startsWith(P)) continue;
      for (const [, label] of key.matchAll(/([a-z_]+)="/g)) assert.ok(allowed.has(label!), `${key} has label ${label}`);
    }
  });
});

describe("metrics: the API other capabilities record through", () => {
  it("counts auth failures by site and reason, and 429s by site and limit", async () => {
    const metrics = new GatewayMetrics();
    for (const reason of AUTH_FAILURE_REASONS) metrics.authFailure("team", reason);
    metrics.authFailure("team", "missing_credentials");
    metrics.rateLimited("hub", "pulls");
    metrics.rateLimited("hub", "pulls");
    metrics.rateLimited("team", "pushes");
    const s = await samplesOf(metrics);
    assert.equal(valueOf(s, `${P}auth_failures_total`, { site: "team", reason: "missing_credentials" }), 2);
    assert.equal(valueOf(s, `${P}auth_failures_total`, { site: "team", reason: "insufficient_scope" }), 1);
    assert.equal(valueOf(s, `${P}rate_limited_requests_total`, { site: "hub", limit: "pulls" }), 2);
    assert.equal(valueOf(s, `${P}rate_limited_requests_total`, { site: "team", limit: "pushes" }), 1);
  });

  it("exports redis_up only once something reports it", async () => {
    const metrics = new GatewayMetrics();
    assert.equal((await samplesOf(metrics)).has(`${P}redis_up`), false);
    metrics.setRedisUp(true);
    assert.equal(valueOf(await samplesOf(metrics), `${P}redis_up`), 1);
    metrics.setRedisUp(false);
    assert.equal(valueOf(await samplesOf(metrics), `${P}redis_up`), 0);
  });

  it("exports certificate expiry per site and host, from a watched gateway's store at each scrape", async () => {
    const metrics = new GatewayMetrics();
    let notAfter = new Date("2030-01-02T03:04:05Z");
    const unwatch = metrics.watch({
      requestsInFlight: () => 3,
      clientConnections: () => 7,
      certificates: () => [{ site: "hub", hosts: ["hub.test", "*.hub.test"], notAfter }],
      backends: () => [],
    });
    metrics.setCertificateNotAfter("acme", "acme.test", new Date("2031-01-01T00:00:00Z"));
    let s = await samplesOf(metrics);
    const name = `${P}certificate_not_after_timestamp_seconds`;
    assert.equal(valueOf(s, name, { site: "hub", host: "hub.test" }), Date.UTC(2030, 0, 2, 3, 4, 5) / 1000);
    assert.equal(valueOf(s, name, { site: "hub", host: "*.hub.test" }), Date.UTC(2030, 0, 2, 3, 4, 5) / 1000);
    assert.equal(valueOf(s, name, { site: "acme", host: "acme.test" }), Date.UTC(2031, 0, 1) / 1000);
    assert.equal(valueOf(s, `${P}requests_in_flight`), 3);
    assert.equal(valueOf(s, `${P}client_connections`), 7);

    notAfter = new Date("2032-06-01T00:00:00Z"); // rotated
    s = await samplesOf(metrics);
    assert.equal(valueOf(s, name, { site: "hub", host: "hub.test" }), Date.UTC(2032, 5, 1) / 1000);

    unwatch();
    s = await samplesOf(metrics);
    assert.equal(s.has(`${name}{host="hub.test",site="hub"}`), false);
    assert.equal(valueOf(s, `${P}requests_in_flight`), 0);
  });

  it("counts reloads by result and keeps the last successful load time", async () => {
    const metrics = new GatewayMetrics();
    let s = await samplesOf(metrics);
    assert.equal(s.get(`${P}config_reloads_total{result="failure"}`), 0, "both results exist before the first reload");
    metrics.configLoaded(new Date(1_000_000));
    metrics.configReloaded(false, new Date(2_000_000));
    s = await samplesOf(metrics);
    assert.equal(valueOf(s, `${P}config_reloads_total`, { result: "failure" }), 1);
    assert.equal(valueOf(s, `${P}config_last_reload_success_timestamp_seconds`), 1000);
    metrics.configReloaded(true, new Date(3_000_000));
    s = await samplesOf(metrics);
    assert.equal(valueOf(s, `${P}config_reloads_total`, { result: "success" }), 1);
    assert.equal(valueOf(s, `${P}config_last_reload_success_timestamp_seconds`), 3000);
  });

  it("counts TLS handshake failures", async () => {
    const metrics = new GatewayMetrics();
    metrics.tlsHandshakeFailed();
    metrics.tlsHandshakeFailed();
    assert.equal(valueOf(await samplesOf(metrics), `${P}tls_handshake_failures_total`), 2);
  });

  it("adds the Node process metrics once, without the *_total gauges promtool rejects", async () => {
    const metrics = new GatewayMetrics();
    metrics.collectProcessMetrics();
    metrics.collectProcessMetrics();
    const text = await metrics.exposition();
    assert.match(text, /^process_cpu_seconds_total /m);
    assert.match(text, /^# TYPE nodejs_eventloop_lag_seconds gauge$/m);
    assert.doesNotMatch(text, /nodejs_active_handles_total/);
    assert.equal(metrics.contentType, "text/plain; version=0.0.4; charset=utf-8");
  });
});
