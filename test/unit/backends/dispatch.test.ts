// dispatch() against scripted loopback backends: it alone decides where a request goes after each round
// trip. Retry once on another replica when refused (never a streamed body already sent), group pass-over on
// 404/5xx/no connection, a name pushTo owns answered by pushTo alone, upload sessions kept on the replica
// that started them, and the group push refusals the pipeline will ask for.
import assert from "node:assert/strict";
import type { IncomingMessage, ServerResponse } from "node:http";
import { after, afterEach, describe, it } from "node:test";
import { MemoryAffinity } from "../../../src/backends/affinity.js";
import { dispatch, type DispatchDeps } from "../../../src/backends/dispatch.js";
import { groupPushRefusal, isPush } from "../../../src/backends/push-rules.js";
import { BackendPool } from "../../../src/backends/pool.js";
import type { GroupMember, GroupUpstream, Upstream } from "../../../src/backends/upstream.js";
import { Forwarder } from "../../../src/proxy/forward.js";
import { sendError } from "../../../src/registry/errors.js";
import { capturingLogger } from "../../helpers/logs.js";
import { routeOf } from "../../helpers/routes.js";
import { closeScripted, EDGE, front, httpBackend, refusingUrl, type ScriptedBackend } from "../../helpers/scripted.js";

const forwarder = new Forwarder({ idleTimeoutMs: 2000, keepAliveMs: 1000, sendTimeoutMs: 5000 });
after(() => forwarder.close());
afterEach(() => closeScripted());

function pool(name: string, urls: URL[]): BackendPool {
  const health = { intervalMs: 60_000, timeoutMs: 1000, unhealthyThreshold: 3, healthyThreshold: 2 };
  return new BackendPool(name, urls, health, { agentFor: (url) => forwarder.agentFor(url), logger: capturingLogger().logger });
}

function member(name: string, urls: URL[], repositories: ((repository: string) => boolean) | null = null): GroupMember {
  return { name, pool: pool(name, urls), repositories };
}

/** A front that dispatches each request to `upstream` as the pipeline does, answering refusals itself. */
async function gateway(upstream: Upstream) {
  const passedOver: string[] = [];
  const deps: DispatchDeps = {
    forwarder,
    affinity: new MemoryAffinity({ limits: { perUser: 64, idleMs: 3_600_000 } }),
    metrics: { groupPassedOver: (site, name, reason) => passedOver.push(`${site} ${name} ${reason}`) },
  };
  const server = await front(async (req: IncomingMessage, res: ServerResponse) => {
    const method = req.method!;
    const hasBody = req.headers["content-length"] !== undefined;
    const request = { req, res, method, route: routeOf(method, req.url!), edge: EDGE, hasBody, site: "hub", user: "alice" };
    const dispatched = await dispatch(upstream, request, deps);
    if (!dispatched.ok) sendError(res, dispatched.kind, dispatched.message);
  });
  return { send: server.send, passedOver };
}

const answering = (status: number, body = `${status}`) =>
  httpBackend((_req, res) => res.writeHead(status, { "Content-Type": "text/plain", "Content-Length": Buffer.byteLength(body) }).end(body));

const MANIFEST = "/v2/alice/app/manifests/latest";

describe("dispatch to a pool of replicas", () => {
  it("sends a request without a body once more to another replica when the first refuses the connection", async () => {
    const down = await refusingUrl();
    const up = await answering(200, "from up");
    const replicas = pool("registry", [down, up.url]);
    const { send } = await gateway({ kind: "pool", pool: replicas });
    const answer = await send("GET", MANIFEST);
    assert.equal(answer.status, 200);
    assert.equal(answer.body.toString(), "from up");
    assert.equal(up.received.length, 1);
    assert.equal(replicas.member(down.origin)!.healthy, false, "the refusing replica is ejected");
  });

  it("does not send a streamed body again: the refused request is answered 502", async () => {
    const down = await refusingUrl();
    const up = await answering(201);
    const { send } = await gateway({ kind: "pool", pool: pool("registry", [down, up.url]) });
    const answer = await send("PUT", MANIFEST, Buffer.from("{}"));
    assert.equal(answer.status, 502);
    assert.equal(up.received.length, 0, "the other replica never saw it");
  });
});

describe("dispatch to a group", () => {
  it("passes a pull over to the next member on 404, 5xx and no connection; the first to have it answers", async () => {
    const missing = await answering(404);
    const failing = await answering(500);
    const down = await refusingUrl();
    const has = await answering(200, "the manifest");
    const members = [member("missing", [missing.url]), member("failing", [failing.url]), member("down", [down]), member("has", [has.url])];
    const { send, passedOver } = await gateway({ kind: "group", members, pushTo: null });
    const answer = await send("GET", MANIFEST);
    assert.equal(answer.status, 200);
    assert.equal(answer.body.toString(), "the manifest");
    assert.deepEqual(passedOver, ["hub missing not_found", "hub failing error", "hub down error"]);
    assert.deepEqual([missing, failing, has].map((b) => b.received.length), [1, 1, 1]);
  });

  it("relays the last member's answer, whatever it is", async () => {
    const missing = await answering(404);
    const alsoMissing = await answering(404, "not here either");
    const { send } = await gateway({ kind: "group", members: [member("a", [missing.url]), member("b", [alsoMissing.url])], pushTo: null });
    const answer = await send("GET", MANIFEST);
    assert.equal(answer.status, 404);
    assert.equal(answer.body.toString(), "not here either");
  });

  describe("a name pushTo owns", () => {
    async function ownedGroup(hostedStatus: number) {
      const hosted = await answering(hostedStatus, "hosted's answer");
      const cache = await answering(200, "the cache's image");
      const pushTo = member("hosted", [hosted.url]);
      const group: GroupUpstream = { kind: "group", members: [pushTo, member("cache", [cache.url], (name) => name.startsWith("library/"))], pushTo };
      return { hosted, cache, ...(await gateway(group)) };
    }

    it("is answered by pushTo alone: its 404 is relayed", async () => {
      const { send, cache } = await ownedGroup(404);
      const answer = await send("GET", MANIFEST);
      assert.equal(answer.status, 404);
      assert.equal(answer.body.toString(), "hosted's answer");
      assert.equal(cache.received.length, 0);
    });

    it("is 503 when pushTo fails, never the cache's", async () => {
      const { send, cache, hosted } = await ownedGroup(500);
      const answer = await send("GET", MANIFEST);
      assert.equal(answer.status, 503);
      assert.match(answer.body.toString(), /UNAVAILABLE/);
      assert.equal(hosted.received.length, 1);
      assert.equal(cache.received.length, 0);
    });
  });

  // Refused by the pipeline's authorize stage (push-rules.ts) before dispatch is called.
  it("groupPushRefusal: 405 without pushTo, 403 for a name or mount source pushTo does not serve, none for pulls", () => {
    const hosted = member("hosted", [new URL("http://127.0.0.1:1")], (name) => name.startsWith("alice/"));
    const cache = member("cache", [new URL("http://127.0.0.1:2")]);
    const readOnly: GroupUpstream = { kind: "group", members: [cache], pushTo: null };
    const group: GroupUpstream = { kind: "group", members: [hosted, cache], pushTo: hosted };
    const kind = (upstream: Upstream, method: string, url: string) => {
      const route = routeOf(method, url);
      return upstream.kind === "group" && isPush(route, method) ? (groupPushRefusal(upstream, route)?.kind ?? null) : null;
    };
    assert.equal(kind(readOnly, "PUT", MANIFEST), "methodNotAllowed");
    assert.equal(kind(group, "PUT", "/v2/bob/app/manifests/latest"), "denied");
    assert.equal(kind(group, "POST", "/v2/alice/app/blobs/uploads/?mount=sha256:abc&from=library/x"), "denied");
    assert.equal(kind(group, "PUT", MANIFEST), null);
    assert.equal(kind(group, "GET", "/v2/bob/app/manifests/latest"), null);
    assert.equal(kind({ kind: "pool", pool: hosted.pool }, "PUT", MANIFEST), null);
  });
});

describe("dispatch of upload sessions to replicas", () => {
  /** A replica starting sessions named after itself, and taking their chunks. */
  function replica(name: string): Promise<ScriptedBackend> {
    return httpBackend((req, res) => {
      if (req.method === "POST") res.writeHead(202, { Location: `/v2/alice/app/blobs/uploads/${name}-session`, "Content-Length": "0" }).end();
      else res.writeHead(202, { "Content-Length": "0" }).end();
    });
  }

  it("remembers the replica that started an upload and sends the session's PATCHes to it", async () => {
    const [r1, r2] = [await replica("r1"), await replica("r2")];
    const { send } = await gateway({ kind: "pool", pool: pool("registry", [r1.url, r2.url]) });
    const started = await send("POST", "/v2/alice/app/blobs/uploads/");
    assert.equal(started.status, 202);
    const location = new URL(started.headers.location!, EDGE.externalOrigin).pathname;
    const starter = location.includes("r1-session") ? r1 : r2;
    for (let i = 0; i < 3; i++) assert.equal((await send("PATCH", location, Buffer.from(`chunk ${i}`))).status, 202);
    assert.deepEqual(
      starter.received.map((r) => r.method),
      ["POST", "PATCH", "PATCH", "PATCH"],
    );
    assert.equal(r1.received.length + r2.received.length, 4, "the other replica saw none of it");
  });

  it("answers a session it does not know BLOB_UPLOAD_UNKNOWN without contacting any backend", async () => {
    const [r1, r2] = [await replica("r1"), await replica("r2")];
    const { send } = await gateway({ kind: "pool", pool: pool("registry", [r1.url, r2.url]) });
    const answer = await send("PATCH", "/v2/alice/app/blobs/uploads/r1-session", Buffer.from("chunk"));
    assert.equal(answer.status, 404);
    assert.match(answer.body.toString(), /BLOB_UPLOAD_UNKNOWN/);
    assert.equal(r1.received.length + r2.received.length, 0);
  });
});
