// Metrics and access logs against a real registry, a recording backend and a closed port, scraped
// by promtool and by a real Prometheus server. Counters are process-wide, so every assertion is a delta
// between two scrapes for one exact label set.
import assert from "node:assert/strict";
import { once } from "node:events";
import http from "node:http";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { connect as netConnect, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { connect as tlsConnect } from "node:tls";
import { gatewayConfig } from "../../src/config/schema.js";
import { certDir, cleanupClients, hostsFile, skopeo } from "../helpers/clients.js";
import { startTestGateway, type TestGateway } from "../helpers/gateway.js";
import { delta, scrape, scrapeText, valueOf, type Samples } from "../helpers/metrics.js";
import { buildOciImage, OCI_MANIFEST, type OciImage } from "../helpers/oci.js";
import { freePort } from "../helpers/ports.js";
import { formatRun, run, startProcess, waitFor, type ManagedProcess } from "../helpers/process.js";
import { startRegistry, type Registry } from "../helpers/registry.js";
import { finishUpload, patchChunked, startUpload, type UploadTarget } from "../helpers/upload.js";

const HUB = "hub.registry.test";
const ECHO = "echo.registry.test";
const GONE = "gone.registry.test";
const P = "registry_gateway_";
const MiB = 1024 * 1024;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

interface Recorder {
  server: http.Server;
  url: string;
  seen: http.IncomingHttpHeaders[];
  /** Answers the request held at /v2/hold. */
  release(): void;
}

/** A backend that records the headers it receives; /v2/hold waits for release(). */
async function startRecorder(): Promise<Recorder> {
  const seen: http.IncomingHttpHeaders[] = [];
  let held: http.ServerResponse | undefined;
  const server = http.createServer((req, res) => {
    seen.push(req.headers);
    req.resume();
    if (req.url === "/v2/hold/manifests/latest") {
      held = res;
      return;
    }
    if (req.url === "/v2/challenge/manifests/latest") {
      const challenges = ["WWW-Authenticate", 'Bearer realm="https://auth.invalid/token"', "WWW-Authenticate", 'Basic realm="x"'];
      res.writeHead(401, [...challenges, "X-Request-Id", "the-backend-s-own", "Content-Length", "0"]).end();
      return;
    }
    res.writeHead(200, { "Content-Type": "application/json" }).end("{}");
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { server, url, seen, release: () => held?.writeHead(200, { "Content-Length": "2" }).end("{}") };
}

async function imageBlobSizes(image: OciImage): Promise<{ manifest: { config: { size: number }; layers: { size: number }[] } }> {
  const raw = await readFile(join(image.dir, "blobs", "sha256", image.manifestDigest.slice("sha256:".length)), "utf8");
  return { manifest: JSON.parse(raw) };
}

describe("metrics and access log", () => {
  let hub: Registry;
  let recorder: Recorder;
  let gateway: TestGateway;
  let goneOrigin: string;
  let workDir: string;
  let image: OciImage;
  let prometheus: ManagedProcess | undefined;
  const extraGateways: TestGateway[] = [];

  const metricsNow = (): Promise<Samples> => scrape(gateway.admin.port);
  /**
   * A scrape taken once no request is in flight. The client can read a response before the server has
   * seen its own write complete (same process), and requests are observed only then.
   */
  const metricsSettled = (): Promise<Samples> =>
    waitFor(
      async () => {
        const samples = await metricsNow();
        return valueOf(samples, `${P}requests_in_flight`) === 0 ? samples : undefined;
      },
      { what: "no request in flight" },
    );
  const accessLines = () => gateway.logs.filter((line) => line.msg === "request");
  /** The access-log line of a request, waited for: it is written when the server has finished the response. */
  const lineFor = (requestId: string) =>
    waitFor(() => accessLines().find((line) => line.requestId === requestId), { timeoutMs: 5000, what: `the access-log line of ${requestId}` });

  before(async () => {
    workDir = await mkdtemp(join(tmpdir(), "rg-metrics-"));
    [hub, recorder, image] = await Promise.all([
      startRegistry(),
      startRecorder(),
      buildOciImage(join(workDir, "image"), { layers: 2, layerSize: 64 * 1024, tag: "v1" }),
    ]);
    goneOrigin = `http://127.0.0.1:${await freePort()}`;
    gateway = await startTestGateway({
      sites: [
        { name: "hub", hosts: [HUB], backend: hub.url, default: true },
        { name: "echo", hosts: [ECHO], backend: recorder.url },
        { name: "gone", hosts: [GONE], backend: goneOrigin },
      ],
    });
  });

  after(async () => {
    await prometheus?.stop();
    await Promise.all(extraGateways.map((g) => g.stop()));
    await gateway?.stop();
    recorder?.server.closeAllConnections();
    recorder?.server.close();
    await hub?.stop();
    await cleanupClients();
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  it("a skopeo push moves the upload counters by exactly the image's bytes", async () => {
    const { manifest } = await imageBlobSizes(image);
    const blobBytes = manifest.config.size + manifest.layers.reduce((sum, layer) => sum + layer.size, 0);
    const certs = await certDir(gateway.caPem);
    const hosts = await hostsFile(workDir, { [HUB]: "127.0.0.1" });

    const before = await metricsSettled();
    const args = ["copy", "--dest-cert-dir", certs, image.ociRef, `docker://${HUB}:${gateway.port}/metrics/pushed:v1`];
    const result = await skopeo(args, { hosts, timeoutMs: 60_000 });
    assert.equal(result.code, 0, formatRun("skopeo", args, result));
    const after = await metricsSettled();

    assert.equal(delta(before, after, `${P}blob_pushed_bytes_total`, { site: "hub" }), blobBytes);
    assert.equal(delta(before, after, `${P}request_body_bytes_total`, { site: "hub", operation: "manifest" }), image.manifestSize);
    assert.equal(delta(before, after, `${P}requests_total`, { site: "hub", operation: "manifest", method: "PUT", code: "201" }), 1);
    const blobs = manifest.layers.length + 1;
    assert.equal(delta(before, after, `${P}requests_total`, { site: "hub", operation: "upload", method: "PUT", code: "201" }), blobs);
  });

  it("a chunked upload counts its bytes as pushed, and its access-log line hides the _state token", async () => {
    const target: UploadTarget = { port: gateway.port, caPem: gateway.caPem, host: HUB };
    const before = await metricsSettled();
    const location = await startUpload(target, "metrics/chunked");
    const patched = await patchChunked(target, location, { bytes: MiB, chunkSize: 64 * 1024 });
    assert.equal(patched.status, 202);
    const done = await finishUpload(target, patched.location!, patched.digest);
    assert.equal(done.status, 201, done.body.toString());
    const after = await metricsSettled();

    assert.equal(delta(before, after, `${P}blob_pushed_bytes_total`, { site: "hub" }), MiB);
    assert.equal(delta(before, after, `${P}requests_total`, { site: "hub", operation: "upload", method: "PATCH", code: "202" }), 1);
    assert.equal(delta(before, after, `${P}request_body_bytes_total`, { site: "hub", operation: "upload" }), MiB);

    const state = new URL(location).searchParams.get("_state");
    assert.ok(state, `the registry's Location carries _state: ${location}`);
    const patchLine = await waitFor(
      () => accessLines().find((line) => line.method === "PATCH" && String(line.path).startsWith("/v2/metrics/chunked/")),
      { timeoutMs: 5000, what: "an access-log line for the PATCH" },
    );
    assert.equal(patchLine.bytesIn, MiB);
    assert.equal(patchLine.status, 202);
    assert.match(String(patchLine.path), /\?_state=\[redacted\]$/);
    const everything = JSON.stringify(gateway.logs);
    assert.ok(!everything.includes(state) && !everything.includes(encodeURIComponent(state)), "the _state token reached the log");
  });

  it("a pull (manifest GET + blob GET) moves the pull counters", async () => {
    const { manifest } = await imageBlobSizes(image);
    const layerSize = manifest.layers[0]!.size;
    const before = await metricsSettled();
    const got = await gateway.request(HUB, { path: "/v2/metrics/pushed/manifests/v1", headers: { accept: OCI_MANIFEST } });
    assert.equal(got.status, 200);
    const blob = await gateway.request(HUB, { path: `/v2/metrics/pushed/blobs/${image.layerDigests[0]}` });
    assert.equal(blob.status, 200);
    assert.equal(blob.body.length, layerSize);
    const ranged = await gateway.request(HUB, { path: `/v2/metrics/pushed/blobs/${image.layerDigests[0]}`, headers: { range: "bytes=0-9" } });
    assert.equal(ranged.status, 206);
    const after = await metricsSettled();

    assert.equal(delta(before, after, `${P}requests_total`, { site: "hub", operation: "manifest", method: "GET", code: "200" }), 1);
    assert.equal(delta(before, after, `${P}response_body_bytes_total`, { site: "hub", operation: "manifest" }), image.manifestSize);
    assert.equal(delta(before, after, `${P}requests_total`, { site: "hub", operation: "blob", method: "GET", code: "200" }), 1);
    assert.equal(delta(before, after, `${P}requests_total`, { site: "hub", operation: "blob", method: "GET", code: "206" }), 1);
    assert.equal(delta(before, after, `${P}blob_pulled_bytes_total`, { site: "hub" }), layerSize + 10);
    assert.equal(delta(before, after, `${P}upstream_request_duration_seconds_count`, { backend: hub.url }), 3);
    assert.equal(delta(before, after, `${P}request_duration_seconds_count`, { site: "hub", operation: "blob", method: "GET", code: "200" }), 1);
  });

  it("a 401 and a 429 move the request, auth-failure and rate-limited counters", async () => {
    const guarded = await startTestGateway({
      sites: [
        {
          name: "guarded",
          hosts: [HUB],
          backend: hub.url,
          auth: {
            type: "htpasswd",
            htpasswd: join(process.cwd(), "config/examples/htpasswd"),
            rules: [{ who: ["reader"], repositories: ["**"], actions: ["pull"] }],
          },
          limits: [{ name: "pulls", operations: ["pull"], rate: 1, per: "1m", burst: 1 }],
        },
      ],
    });
    extraGateways.push(guarded);
    const settled = () =>
      waitFor(
        async () => {
          const samples = await scrape(guarded.admin.port);
          return valueOf(samples, `${P}requests_in_flight`) === 0 ? samples : undefined;
        },
        { what: "no request in flight" },
      );
    const reader = `Basic ${Buffer.from("reader:Reader123").toString("base64")}`;
    const manifest = (authorization?: string) =>
      guarded.request(HUB, {
        path: "/v2/metrics/pushed/manifests/v1",
        headers: { accept: OCI_MANIFEST, ...(authorization ? { authorization } : {}) },
      });

    const before = await settled();
    assert.equal((await manifest()).status, 401);
    assert.equal((await manifest(reader)).status, 200);
    assert.equal((await manifest(reader)).status, 429);
    const after = await settled();

    const requests = (code: string) => delta(before, after, `${P}requests_total`, { site: "guarded", operation: "manifest", method: "GET", code });
    assert.equal(requests("401"), 1);
    assert.equal(requests("200"), 1);
    assert.equal(requests("429"), 1);
    assert.equal(delta(before, after, `${P}auth_failures_total`, { site: "guarded", reason: "missing_credentials" }), 1);
    assert.equal(delta(before, after, `${P}rate_limited_requests_total`, { site: "guarded", limit: "pulls" }), 1);
  });

  it("a 404 from the registry is counted under its code, not as an upstream error", async () => {
    const before = await metricsSettled();
    const res = await gateway.request(HUB, { path: "/v2/metrics/pushed/manifests/nope" });
    assert.equal(res.status, 404);
    const after = await metricsSettled();
    assert.equal(delta(before, after, `${P}requests_total`, { site: "hub", operation: "manifest", method: "GET", code: "404" }), 1);
    for (const reason of ["refused", "timeout", "reset", "other"]) {
      assert.equal(delta(before, after, `${P}upstream_errors_total`, { backend: hub.url, reason }), 0);
    }
  });

  it("an unreachable backend gives 502 and one upstream error with reason refused", async () => {
    const before = await metricsSettled();
    const res = await gateway.request(GONE, { path: "/v2/", headers: { "x-request-id": "gone-1" } });
    assert.equal(res.status, 502);
    assert.equal(res.headers["x-request-id"], "gone-1", "gateway-made errors carry the request id too");
    const after = await metricsSettled();
    assert.equal(delta(before, after, `${P}upstream_errors_total`, { backend: goneOrigin, reason: "refused" }), 1);
    assert.equal(delta(before, after, `${P}requests_total`, { site: "gone", operation: "base", method: "GET", code: "502" }), 1);
    const line = await lineFor("gone-1");
    assert.equal(line.status, 502);
    assert.equal(line.upstreamFailure, "refused");
    assert.equal(line.bytesOut, res.body.length, "the gateway's own error body counts as bytes out");
  });

  it("counts requests in flight and open client connections at scrape time, and failed TLS handshakes", async () => {
    await waitFor(async () => valueOf(await metricsNow(), `${P}client_connections`) === 0, { what: "earlier connections to close" });

    const seenBefore = recorder.seen.length;
    const held = gateway.request(ECHO, { path: "/v2/hold/manifests/latest" });
    await waitFor(() => recorder.seen.length > seenBefore, { what: "the held request to reach the backend" });
    let now = await metricsNow();
    assert.equal(valueOf(now, `${P}requests_in_flight`), 1);
    assert.equal(valueOf(now, `${P}client_connections`), 1);
    recorder.release();
    assert.equal((await held).status, 200);
    await waitFor(async () => valueOf(await metricsNow(), `${P}requests_in_flight`) === 0, { what: "in-flight back to 0" });

    const socket = tlsConnect({ host: "127.0.0.1", port: gateway.port, servername: HUB, ca: gateway.caPem });
    await once(socket, "secureConnect");
    now = await metricsNow();
    assert.equal(valueOf(now, `${P}client_connections`), 1, "an idle TLS connection is open");
    socket.destroy();
    await waitFor(async () => valueOf(await metricsNow(), `${P}client_connections`) === 0, { what: "the connection to be counted closed" });

    const before = await metricsSettled();
    const plain = netConnect(gateway.port, "127.0.0.1");
    await once(plain, "connect");
    plain.end("GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n"); // plain HTTP to the TLS port
    let answer = "";
    plain.setEncoding("utf8").on("data", (chunk: string) => (answer += chunk));
    await once(plain, "close");
    assert.match(answer, /^HTTP\/1\.1 400 /, "plain HTTP gets a plain HTTP answer");
    await waitFor(async () => delta(before, await metricsNow(), `${P}tls_handshake_failures_total`) === 1, {
      what: "the failed handshake to be counted",
    });
  });

  it("exports each site certificate's expiry by site and host", async () => {
    const now = await metricsNow();
    for (const info of gateway.certificates.info()) {
      for (const host of info.hosts) {
        assert.equal(
          valueOf(now, `${P}certificate_not_after_timestamp_seconds`, { site: info.site, host }),
          Math.floor(info.notAfter.getTime() / 1000),
          `${info.site} ${host}`,
        );
      }
    }
    assert.ok(valueOf(now, `${P}certificate_not_after_timestamp_seconds`, { site: "hub", host: HUB }) > Date.now() / 1000);
    assert.ok(valueOf(now, `${P}config_last_reload_success_timestamp_seconds`) > 0);
  });

  it("X-Request-Id: a client's sane id reaches the backend and comes back; anything else is replaced", async () => {
    const kept = await gateway.request(ECHO, { path: "/v2/", headers: { "x-request-id": "trace-42.a_b" } });
    assert.equal(kept.headers["x-request-id"], "trace-42.a_b");
    assert.equal(recorder.seen.at(-1)!["x-request-id"], "trace-42.a_b");
    assert.equal((await lineFor("trace-42.a_b")).site, "echo");

    const replaced = await gateway.request(ECHO, { path: "/v2/", headers: { "x-request-id": "not sane; <script>" } });
    const id = String(replaced.headers["x-request-id"]);
    assert.match(id, UUID);
    assert.equal(recorder.seen.at(-1)!["x-request-id"], id, "the backend sees the id the client gets back");

    const generated = await gateway.request(ECHO, { path: "/v2/" });
    assert.match(String(generated.headers["x-request-id"]), UUID);
    assert.equal(recorder.seen.at(-1)!["x-request-id"], generated.headers["x-request-id"]);

    // The id set before forwarding must not cost the backend's repeated headers, nor be doubled by the backend's own.
    const challenged = await gateway.request(ECHO, { path: "/v2/challenge/manifests/latest", headers: { "x-request-id": "challenge-1" } });
    const named = (name: string) => challenged.rawHeaders.filter((_, i) => i % 2 === 1 && challenged.rawHeaders[i - 1]!.toLowerCase() === name);
    assert.deepEqual(named("www-authenticate"), ['Bearer realm="https://auth.invalid/token"', 'Basic realm="x"']);
    assert.deepEqual(named("x-request-id"), ["challenge-1"]);

    const refused = await gateway.request("unknown.registry.test", { path: "/v2/", expectCertFor: HUB, headers: { "x-request-id": "unknown-host-1" } });
    assert.equal(refused.status, 421);
    assert.equal(refused.headers["x-request-id"], "unknown-host-1");
  });

  it("the access-log lines of requests with Basic credentials and a bearer token contain neither", async () => {
    const password = "Sup3r-Secret-Passw0rd";
    const basic = Buffer.from(`admin:${password}`).toString("base64");
    const bearer = "eyJhbGciOiJFUzI1NiIsImtpZCI6InRlc3QifQ.eyJzdWIiOiJhZG1pbiIsImF1ZCI6Imh1YiJ9.c2lnbmF0dXJlLXNlY3JldA";
    await gateway.request(ECHO, { path: "/v2/", headers: { authorization: `Basic ${basic}`, "x-request-id": "with-basic" } });
    await gateway.request(HUB, { path: "/v2/metrics/pushed/tags/list", headers: { authorization: `Bearer ${bearer}`, "x-request-id": "with-bearer" } });

    for (const id of ["with-basic", "with-bearer"]) {
      const line = await lineFor(id);
      assert.equal(line.status, 200);
      assert.equal(line.method, "GET");
      assert.equal(typeof line.durationMs, "number");
      assert.equal(typeof line.upstreamMs, "number");
      assert.equal(line.clientIp, "127.0.0.1");
    }
    assert.equal((await lineFor("with-bearer")).operation, "tags");
    const everything = JSON.stringify(gateway.logs);
    for (const secret of [basic, password, bearer, "c2lnbmF0dXJlLXNlY3JldA"]) {
      assert.ok(!everything.includes(secret), `a log line contains ${secret}`);
    }
  });

  it("/metrics passes promtool check metrics", async () => {
    const { status, contentType, text } = await scrapeText(gateway.admin.port);
    assert.equal(status, 200);
    assert.equal(contentType, "text/plain; version=0.0.4; charset=utf-8");
    const result = await run("promtool", ["check", "metrics"], { input: text, timeoutMs: 30_000 });
    assert.equal(result.code, 0, formatRun("promtool", ["check", "metrics"], result));
    assert.match(text, /^# TYPE registry_gateway_requests_total counter$/m);
    assert.match(text, /^process_cpu_seconds_total /m, "default process metrics are collected");
  });

  it("a real Prometheus server scrapes the gateway: up is 1", async () => {
    const dir = join(workDir, "prometheus");
    const port = await freePort();
    const target = `127.0.0.1:${gateway.admin.port}`;
    const configFile = join(workDir, "prometheus.yml");
    await writeFile(
      configFile,
      [
        "global: { scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s }",
        "scrape_configs:",
        "  - job_name: registry-gateway",
        `    static_configs: [{ targets: ["${target}"] }]`,
        "",
      ].join("\n"),
    );
    prometheus = startProcess(
      "prometheus",
      [`--config.file=${configFile}`, `--storage.tsdb.path=${dir}`, `--web.listen-address=127.0.0.1:${port}`],
      { name: "prometheus" },
    );
    const query = async (promql: string) => {
      const response = await fetch(`http://127.0.0.1:${port}/api/v1/query?query=${encodeURIComponent(promql)}`);
      const body = (await response.json()) as { data: { result: { metric: Record<string, string>; value: [number, string] }[] } };
      return body.data.result;
    };
    try {
      await waitFor(async () => (await query("up")).some((r) => r.metric.instance === target && r.value[1] === "1"), {
        timeoutMs: 20_000,
        intervalMs: 250,
        what: "Prometheus to report up == 1 for the gateway",
        giveUpIf: () => (prometheus!.exitStatus ? `prometheus exited ${JSON.stringify(prometheus!.exitStatus)}` : undefined),
      });
      // The samples were parsed, not only fetched.
      const pulls = await query(`${P}requests_total{site="hub",operation="manifest",method="GET",code="200"}`);
      assert.equal(pulls.length, 1);
      assert.ok(Number(pulls[0]!.value[1]) >= 1);
    } catch (err) {
      throw new Error(`${(err as Error).message}\n--- prometheus output ---\n${prometheus.output()}`);
    }
  });

  it("metrics.enabled: false and log.access: false switch both off", async () => {
    const quiet = await startTestGateway({
      sites: [{ name: "quiet", hosts: [HUB], backend: hub.url }],
      metrics: { enabled: false },
      log: { level: "debug", access: false },
    });
    extraGateways.push(quiet);
    const before = await metricsSettled();
    assert.equal((await quiet.request(HUB, { path: "/v2/" })).status, 200);
    const off = await scrapeText(quiet.admin.port);
    assert.equal(off.status, 404);
    assert.equal(JSON.parse(off.text).errors[0].code, "NAME_UNKNOWN");
    await waitFor(() => quiet.inFlight() === 0, { what: "the request to be over (observed, were anything observing)" });
    assert.equal(quiet.logs.filter((line) => line.msg === "request").length, 0);
    const after = await metricsSettled();
    assert.equal(delta(before, after, `${P}requests_total`, { site: "quiet", operation: "base", method: "GET", code: "200" }), 0);
  });

  it("the admin listener binds loopback unless allowNonLoopback says otherwise", async () => {
    const site = { hosts: [HUB], backend: hub.url };
    assert.equal(gatewayConfig.parse({ sites: [site] }).admin.listen.host, "127.0.0.1");
    assert.throws(() => gatewayConfig.parse({ admin: { listen: "0.0.0.0:0" }, sites: [site] }), /allowNonLoopback/);
    const open = await startTestGateway({ sites: [site], admin: { listen: "0.0.0.0:0", allowNonLoopback: true } });
    extraGateways.push(open);
    assert.equal(open.admin.address, "0.0.0.0");
    assert.equal(gateway.admin.address, "127.0.0.1");
    assert.equal((await scrapeText(open.admin.port)).status, 200);
  });
});
