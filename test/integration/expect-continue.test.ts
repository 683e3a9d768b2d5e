// `Expect: 100-continue`: the gateway invites a body only once the request is admitted. A client refused by
// authentication or authorization gets its 401/403 and no `100 Continue` (so it never sends the multi-GB
// layer it announced), and the connection is closed; an admitted one gets its 100 and its upload reaches the
// real registry. The small forms the gateway reads itself (the /token password grant) are invited too.
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import https from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { AccessRuleConfig } from "../../src/config/schema.js";
import { startTestGateway, type TestGateway } from "../helpers/gateway.js";
import { htpasswdLine } from "../helpers/htpasswd.js";
import { rawExchange } from "../helpers/raw-http.js";
import { accessLog, startRegistry, type Registry } from "../helpers/registry.js";

const HUB = "hub.registry.test"; // htpasswd
const TEAM = "team.registry.test"; // token
const POOL = "pool.registry.test"; // htpasswd, two replicas: upload sessions are kept by the gateway
const RULES: AccessRuleConfig[] = [
  { who: ["admin"], repositories: ["**"], actions: ["pull", "push", "delete", "catalog"] },
  { who: ["pusher"], repositories: ["**"], actions: ["pull", "push"] },
  { who: ["reader"], repositories: ["**"], actions: ["pull"] },
];
const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;
const INTERIM_100 = /^HTTP\/1\.1 100 /m;

interface ContinueOutcome {
  /** The 100 Continue arrived (and the body was sent after it). */
  continued: boolean;
  status: number;
  location: string | undefined;
  body: Buffer;
}

/** Node's own client: sends the headers with Expect: 100-continue and the body only once invited. */
function sendAfterContinue(gateway: TestGateway, host: string, method: string, path: string, headers: Record<string, string>, body: Buffer): Promise<ContinueOutcome> {
  return new Promise((resolve, reject) => {
    let continued = false;
    const req = https.request({
      host: "127.0.0.1",
      port: gateway.port,
      servername: host,
      ca: gateway.caPem,
      agent: false,
      method,
      path,
      headers: { ...headers, host: `${host}:${gateway.port}`, expect: "100-continue", "content-length": String(body.length) },
    });
    req.on("continue", () => {
      continued = true;
      req.end(body);
    });
    req.on("response", (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("end", () => resolve({ continued, status: res.statusCode ?? 0, location: res.headers.location, body: Buffer.concat(chunks) }));
      res.on("error", reject);
    });
    req.on("error", reject);
    // A client left waiting for its 100 fails here rather than hanging the file.
    req.setTimeout(10_000, () => req.destroy(new Error(`no answer within 10 s (100 Continue ${continued ? "received" : "never received"})`)));
  });
}

describe("Expect: 100-continue is answered only after admission", () => {
  let workDir: string;
  let registry: Registry;
  let replicas: Registry[];
  let gateway: TestGateway;

  before(async () => {
    workDir = await mkdtemp(join(tmpdir(), "rg-continue-"));
    const htpasswd = join(workDir, "htpasswd");
    await writeFile(htpasswd, `${await htpasswdLine("admin", "Admin123")}\n${await htpasswdLine("reader", "Reader123")}\n${await htpasswdLine("pusher", "Pusher123")}\n`);
    [registry, ...replicas] = await Promise.all([
      startRegistry({ accessLog: true }),
      ...["a", "b"].map((name) => startRegistry({ rootDir: join(workDir, "pool"), secret: `secret-${name}-0123456789`, accessLog: true })),
    ]);
    gateway = await startTestGateway({
      sites: [
        { name: "hub", hosts: [HUB], backend: registry.url, default: true, auth: { type: "htpasswd", htpasswd, rules: RULES } },
        { name: "team", hosts: [TEAM], backend: registry.url, auth: { type: "token", htpasswd, rules: RULES } },
        { name: "pool", hosts: [POOL], backends: replicas.map((r) => r.url), auth: { type: "htpasswd", htpasswd, rules: RULES } },
      ],
    });
  });

  after(async () => {
    await gateway?.stop();
    await Promise.all([registry, ...(replicas ?? [])].map((r) => r?.stop()));
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  /**
   * A PATCH announcing 10 GiB with Expect: 100-continue, written by hand (Node's client would wait for the
   * 100): it must be refused with `status` and `code`, without a 100, and on a connection then closed.
   */
  async function assertRefusedUninvited(host: string, path: string, authorization: string | undefined, status: number, code: string, extraHeaders: string[] = []): Promise<void> {
    const head = [
      `PATCH ${path} HTTP/1.1`,
      `Host: ${host}:${gateway.port}`,
      ...(authorization ? [`Authorization: ${authorization}`] : []),
      ...extraHeaders,
      "Content-Type: application/octet-stream",
      `Content-Length: ${10 * 1024 ** 3}`,
      "Expect: 100-continue",
      "",
      "",
    ].join("\r\n");
    const exchange = await rawExchange({ port: gateway.port, tls: { ca: gateway.caPem, servername: host } }, head, { idleMs: 3000 });
    assert.doesNotMatch(exchange.raw.toString("latin1"), INTERIM_100, "the refused client was invited to send its body");
    assert.equal(exchange.responses.length, 1, exchange.raw.toString("latin1"));
    assert.equal(exchange.responses[0]!.status, status);
    assert.equal(exchange.responses[0]!.json().errors[0].code, code);
    assert.equal(exchange.closed, true, "the connection stayed open with an unread body announced");
  }

  for (const [who, authorization, status] of [
    ["anonymous", undefined, 401],
    ["a reader", basic("reader", "Reader123"), 403],
  ] as const) {
    it(`${who}: a PATCH announcing 10 GiB gets ${status}, no 100 Continue, and a closed connection`, async () => {
      const code = status === 401 ? "UNAUTHORIZED" : "DENIED";
      await assertRefusedUninvited(HUB, "/v2/hub/app/blobs/uploads/9c2f7d0e-5a8b-4c4e-9d7a-1b2c3d4e5f60", authorization, status, code);
      assert.ok(!accessLog(registry).some((line) => line.method === "PATCH"), "a refused PATCH reached the backend");
    });
  }

  it("a PATCH admitted by the rules but for another user's upload gets 404 BLOB_UPLOAD_UNKNOWN, no 100 Continue, and a closed connection", async () => {
    const started = await gateway.request(POOL, { method: "POST", path: "/v2/pool/app/blobs/uploads/", headers: { authorization: basic("admin", "Admin123"), "content-length": "0" } });
    assert.equal(started.status, 202, started.body.toString());
    const location = new URL(String(started.headers.location), `https://${POOL}:${gateway.port}`);
    // pusher may push pool/app, so only the session check (inside dispatch) refuses: it must come before the 100.
    await assertRefusedUninvited(POOL, location.pathname + location.search, basic("pusher", "Pusher123"), 404, "BLOB_UPLOAD_UNKNOWN");
    assert.ok(!replicas.some((r) => accessLog(r).some((line) => line.method === "PATCH")), "the PATCH reached a replica");
  });

  it("an admitted PATCH whose Content-Range does not start where its upload stands gets 416, no 100 Continue, and a closed connection", async () => {
    const started = await gateway.request(HUB, { method: "POST", path: "/v2/hub/ranges/blobs/uploads/", headers: { authorization: basic("admin", "Admin123"), "content-length": "0" } });
    assert.equal(started.status, 202, started.body.toString());
    const location = new URL(String(started.headers.location), `https://${HUB}:${gateway.port}`);
    const range = `Content-Range: 5-${5 + 10 * 1024 ** 3 - 1}`;
    await assertRefusedUninvited(HUB, location.pathname + location.search, basic("admin", "Admin123"), 416, "BLOB_UPLOAD_INVALID", [range]);
    assert.ok(!accessLog(registry).some((line) => line.method === "PATCH" && line.uri.startsWith("/v2/hub/ranges/")), "the PATCH reached the backend");
  });

  it("an admitted PATCH gets 100 Continue, then its body reaches the registry whole", async () => {
    const admin = { authorization: basic("admin", "Admin123") };
    const started = await gateway.request(HUB, { method: "POST", path: "/v2/hub/app/blobs/uploads/", headers: { ...admin, "content-length": "0" } });
    assert.equal(started.status, 202, started.body.toString());
    const location = new URL(String(started.headers.location), `https://${HUB}:${gateway.port}`);
    const blob = randomBytes(3 * 1024 * 1024);
    const digest = `sha256:${createHash("sha256").update(blob).digest("hex")}`;

    const patched = await sendAfterContinue(gateway, HUB, "PATCH", location.pathname + location.search, { ...admin, "content-type": "application/octet-stream" }, blob);
    assert.equal(patched.continued, true, "no 100 Continue for an admitted upload");
    assert.equal(patched.status, 202, patched.body.toString());

    // The registry's upload state moves on with each chunk: finish where the PATCH's answer points.
    const next = new URL(String(patched.location), location);
    const finished = await gateway.request(HUB, { method: "PUT", path: `${next.pathname}${next.search}&digest=${digest}`, headers: { ...admin, "content-length": "0" } });
    assert.equal(finished.status, 201, finished.body.toString());
    const headed = await gateway.request(HUB, { method: "HEAD", path: `/v2/hub/app/blobs/${digest}`, headers: admin });
    assert.equal(headed.status, 200);
    assert.equal(headed.headers["content-length"], String(blob.length));
    const patches = accessLog(registry).filter((line) => line.method === "PATCH");
    assert.equal(patches.length, 1, "the backend saw one PATCH");
  });

  it("a /token password grant waiting for 100 Continue is invited and answered", async () => {
    const form = new URLSearchParams({ grant_type: "password", username: "admin", password: "Admin123", service: "team", scope: "repository:hub/app:pull" });
    const answered = await sendAfterContinue(gateway, TEAM, "POST", "/token", { "content-type": "application/x-www-form-urlencoded" }, Buffer.from(form.toString()));
    assert.equal(answered.continued, true);
    assert.equal(answered.status, 200, answered.body.toString());
    assert.equal(typeof JSON.parse(answered.body.toString()).token, "string");
  });
});
