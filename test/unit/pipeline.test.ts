// The request pipeline's stages and refusals, with a route table whose handlers only record that they ran:
// each refusal is made by the pipeline, in its stage, before any handler. Sites, auth, rate limits and
// download caps are the real ones, built from a small configuration (helpers/pipeline.ts).
import assert from "node:assert/strict";
import { once } from "node:events";
import tls from "node:tls";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, beforeEach, describe, it } from "node:test";
import { LimiterUnavailableError, type Limiter } from "../../src/ratelimit/limiter.js";
import { compileSiteLimits } from "../../src/ratelimit/policy.js";
import { RateLimitStage } from "../../src/ratelimit/stage.js";
import { htpasswdLine } from "../helpers/htpasswd.js";
import { recordingRoutes, startPipeline, type PipelineHarness } from "../helpers/pipeline.js";
import { rawExchange } from "../helpers/raw-http.js";

const OPEN = "open.test"; // no auth
const AUTH = "auth.test"; // htpasswd: alice may pull and push team/**
const LIMITED = "limited.test"; // htpasswd, one request per minute per address
const GROUP = "group.test"; // group: hosted (team/**, pushTo) + cache (every other name)
const READONLY = "readonly.test"; // group without pushTo
const ROUTED = "routed.test"; // its own backend + a team-a/ route to another
const NOWHERE = "http://127.0.0.1:9"; // never asked: the handlers only record

const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;
const ALICE = { authorization: basic("alice", "Alice123") };
const DIGEST = `sha256:${"a".repeat(64)}`;

describe("request pipeline", () => {
  let workDir: string;
  let pipeline: PipelineHarness;
  const calls: string[] = [];
  /** Downloads in flight stay until released (the download-cap case). */
  let release: (() => void) | null = null;

  before(async () => {
    workDir = await mkdtemp(join(tmpdir(), "rg-pipeline-test-"));
    const htpasswd = join(workDir, "htpasswd");
    await writeFile(htpasswd, `${await htpasswdLine("alice", "Alice123")}\n`);
    const auth = { type: "htpasswd" as const, htpasswd, rules: [{ who: ["alice"], repositories: ["team/**"], actions: ["pull" as const, "push" as const] }] };
    const hold = () => (release ? new Promise<void>((resolve) => (release = resolve)) : Promise.resolve());
    pipeline = await startPipeline(
      {
        limits: { downloadsPerClient: 1 },
        sites: [
          { name: "open", hosts: [OPEN], backend: NOWHERE },
          { name: "auth", hosts: [AUTH], backend: NOWHERE, auth },
          { name: "limited", hosts: [LIMITED], backend: NOWHERE, auth, limits: [{ name: "all", operations: ["any"], rate: 1, per: "1m", key: "ip" }] },
          {
            name: "group",
            hosts: [GROUP],
            group: [
              { name: "hosted", backend: NOWHERE, repositories: ["team/**"] },
              { name: "cache", backend: NOWHERE },
            ],
            pushTo: "hosted",
          },
          { name: "readonly", hosts: [READONLY], group: [{ name: "hosted", backend: NOWHERE }, { name: "cache", backend: NOWHERE }] },
          { name: "routed", hosts: [ROUTED], backend: NOWHERE, routes: [{ prefix: "team-a/", backend: "http://127.0.0.1:10" }] },
        ],
      },
      recordingRoutes(calls, hold),
    );
  });

  after(async () => {
    await pipeline?.close();
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  beforeEach(() => {
    calls.length = 0;
  });

  /** A refusal: the status and registry error code, and no handler ran. */
  const refused = async (response: Promise<{ status: number; json(): any }>, status: number, code: string) => {
    const res = await response;
    assert.equal(res.status, status, JSON.stringify(res.json()));
    assert.equal(res.json().errors[0].code, code);
    assert.deepEqual(calls, [], "no handler ran");
    return res.json().errors[0].message as string;
  };
  const lastObserved = () => pipeline.observed[pipeline.observed.length - 1]!;
  const raw = (request: string, servername = OPEN) => rawExchange({ port: pipeline.port, tls: { ca: pipeline.caPem, servername } }, request);

  describe("stage order", () => {
    it("an unknown host is refused before the target is classified", async () => {
      await refused(pipeline.request("nowhere.test", { path: "/v2/Bad/manifests/v1", servername: null, expectCertFor: OPEN }), 421, "UNSUPPORTED");
      assert.equal(lastObserved().route, undefined, "never classified");
      assert.equal(lastObserved().refusal, "unknownHost");
      // The control: the same target on a known host is classified, and refused for its name.
      await refused(pipeline.request(OPEN, { path: "/v2/Bad/manifests/v1" }), 400, "NAME_INVALID");
    });

    it("an unauthenticated request is refused before the rate limit counts it; a limited one never reaches its handler", async () => {
      for (let i = 0; i < 3; i++) await refused(pipeline.request(LIMITED, { path: "/v2/team/app/manifests/v1" }), 401, "UNAUTHORIZED");
      // One request a minute from this address: the 401s did not use it up.
      const admitted = await pipeline.request(LIMITED, { path: "/v2/team/app/manifests/v1", headers: ALICE });
      assert.equal(admitted.status, 200);
      assert.deepEqual(calls, ["manifest"]);
      const limited = await pipeline.request(LIMITED, { path: "/v2/team/app/manifests/v1", headers: ALICE });
      assert.equal(limited.status, 429);
      assert.equal(limited.json().errors[0].code, "TOOMANYREQUESTS");
      assert.deepEqual(calls, ["manifest"], "the limited request's handler never ran");
    });

    it("the v1 ping needs no credentials and is not counted", async () => {
      for (let i = 0; i < 3; i++) assert.equal((await pipeline.request(LIMITED, { path: "/v1/_ping" })).status, 200);
      assert.deepEqual(calls, ["ping", "ping", "ping"]);
    });
  });

  describe("refusals, each in its stage", () => {
    it("connection: over the gateway's connection cap → 503, and the connection is closed", async () => {
      pipeline.connections.configure(0, Infinity);
      try {
        const res = await pipeline.request(OPEN, { path: "/v2/" });
        await refused(Promise.resolve(res), 503, "UNAVAILABLE");
        assert.equal(res.headers.connection, "close");
        assert.equal(res.headers["retry-after"], "1");
      } finally {
        pipeline.connections.configure(Infinity, Infinity);
      }
    });

    it("framing: a repeated Host header", async () => {
      const exchange = await raw(`GET /v2/ HTTP/1.1\r\nHost: ${OPEN}\r\nHost: ${OPEN}\r\n\r\n`);
      assert.equal(exchange.responses[0]?.status, 400);
      assert.match(exchange.responses[0]!.json().errors[0].message, /Host header appears more than once/);
      assert.deepEqual(calls, []);
    });

    it("resolve site: a missing Host", async () => {
      const exchange = await raw("GET /v2/ HTTP/1.0\r\n\r\n");
      assert.equal(exchange.responses[0]?.status, 400);
      assert.match(exchange.responses[0]!.json().errors[0].message, /no Host header/);
      assert.deepEqual(calls, []);
    });

    it("resolve site: a malformed Host", async () => {
      const message = await refused(pipeline.request(OPEN, { path: "/v2/", headers: { host: "open test" } }), 400, "UNSUPPORTED");
      assert.match(message, /not a valid host/);
    });

    it("resolve site: a Host of another site than the TLS server name → 421", async () => {
      await refused(pipeline.request(AUTH, { path: "/v2/", servername: OPEN, expectCertFor: OPEN }), 421, "DENIED");
      assert.equal(lastObserved().refusal, "misdirected");
    });

    it("classify: a target not in its canonical spelling", async () => {
      await refused(pipeline.request(OPEN, { path: "/v2/team/../app/manifests/v1" }), 400, "NAME_INVALID");
    });

    it("classify: a form body anywhere but an urlencoded upload start", async () => {
      const message = await refused(
        pipeline.request(OPEN, { method: "POST", path: "/v2/team/app/blobs/uploads/", headers: { "content-type": "multipart/form-data; boundary=x" }, body: "--x--" }),
        400,
        "UNSUPPORTED",
      );
      assert.match(message, /form bodies are only accepted/);
    });

    it("classify: a mount form over the bound, sent chunked, is read to its end: the 400 goes out and the connection stays in step", async () => {
      const form = `mount=${DIGEST}&from=team/base&pad=${"x".repeat(1024 * 1024)}`;
      const upload = [
        `POST /v2/team/app/blobs/uploads/ HTTP/1.1\r\nHost: ${OPEN}\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n`,
        `${form.length.toString(16)}\r\n${form}\r\n0\r\n\r\n`,
      ].join("");
      const next = `GET /v2/ HTTP/1.1\r\nHost: ${OPEN}\r\n\r\n`;
      const exchange = await rawExchange({ port: pipeline.port, tls: { ca: pipeline.caPem, servername: OPEN } }, upload + next, { expectResponses: 2 });
      assert.equal(exchange.error, undefined);
      assert.deepEqual(exchange.responses.map((response) => response.status), [400, 200]);
      assert.match(exchange.responses[0]!.json().errors[0].message, /form is larger than/);
      assert.deepEqual(calls, ["base"], "only the next request reached a handler");
    });

    it("classify: a mount form that never ends is drained only so far: the 400 goes out and the connection closes", { timeout: 20_000 }, async () => {
      const socket = tls.connect({ port: pipeline.port, host: "127.0.0.1", ca: pipeline.caPem, servername: OPEN });
      await once(socket, "secureConnect");
      let answer = "";
      socket.on("data", (data: Buffer) => (answer += data.toString("latin1")));
      socket.on("error", () => {});
      const closed = once(socket, "close");
      socket.write(`POST /v2/team/app/blobs/uploads/ HTTP/1.1\r\nHost: ${OPEN}\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n`);
      const chunk = `10000\r\n${"x".repeat(0x10000)}\r\n`;
      let sent = 0;
      let open = true;
      void closed.then(() => (open = false));
      // Up to 32 MiB: the gateway stops reading after its cap and about 1 MiB more, then closes.
      while (open && sent < 32 * 1024 * 1024) {
        if (!socket.write(chunk)) await Promise.race([once(socket, "drain"), closed]);
        sent += 0x10000;
      }
      await closed;
      assert.match(answer, /^HTTP\/1\.1 400 /);
      assert.match(answer, /form is larger than/);
      assert.ok(sent < 16 * 1024 * 1024, `the gateway kept reading: ${sent} bytes sent before it closed`);
    });

    it("classify: a path that names no registry operation", async () => {
      const message = await refused(pipeline.request(OPEN, { path: "/v2/team/app/nothing" }), 404, "NAME_UNKNOWN");
      assert.match(message, /no registry operation/);
    });

    it("authorize: /token on a site that issues no tokens", async () => {
      const message = await refused(pipeline.request(AUTH, { path: "/token" }), 404, "NAME_UNKNOWN");
      assert.match(message, /issues no tokens/);
    });

    it("authenticate: no credentials → 401 with a challenge, reported as an auth failure", async () => {
      const before = pipeline.authFailures.length;
      const res = await pipeline.request(AUTH, { path: "/v2/team/app/manifests/v1" });
      await refused(Promise.resolve(res), 401, "UNAUTHORIZED");
      assert.match(String(res.headers["www-authenticate"]), /^Basic /);
      assert.deepEqual(pipeline.authFailures.slice(before), ["auth missing_credentials"]);
    });

    it("identify (docker search): anyone reaches the handler, bad credentials do not", async () => {
      assert.equal((await pipeline.request(AUTH, { path: "/v1/search?q=app" })).status, 200);
      assert.equal((await pipeline.request(AUTH, { path: "/v1/search?q=app", headers: ALICE })).status, 200);
      assert.equal(lastObserved().user, "alice", "the handler is told who asked");
      assert.deepEqual(calls, ["search", "search"]);
      await pipeline.request(AUTH, { path: "/v1/search?q=app", headers: { authorization: basic("alice", "wrong") } }).then((res) => {
        assert.equal(res.status, 401);
        assert.equal(res.json().errors[0].code, "UNAUTHORIZED");
      });
      assert.deepEqual(calls, ["search", "search"]);
    });

    it("authorize: credentials without the access → 403", async () => {
      await refused(pipeline.request(AUTH, { path: "/v2/other/app/manifests/v1", headers: ALICE }), 403, "DENIED");
      assert.equal(lastObserved().user, "alice");
    });

    it("authorize: a mount from a repository another registry of the site serves → 403", async () => {
      const message = await refused(
        pipeline.request(ROUTED, { method: "POST", path: `/v2/team-a/app/blobs/uploads/?mount=${DIGEST}&from=other/base` }),
        403,
        "DENIED",
      );
      assert.match(message, /cannot mount from other\/base/);
    });

    it("authorize: a push to a group without pushTo → 405", async () => {
      const message = await refused(pipeline.request(READONLY, { method: "PUT", path: "/v2/team/app/manifests/v1", body: "{}" }), 405, "UNSUPPORTED");
      assert.match(message, /without pushTo/);
    });

    it("authorize: a push of a name the group's pushTo does not serve → 403", async () => {
      const message = await refused(pipeline.request(GROUP, { method: "DELETE", path: `/v2/lib/app/manifests/${DIGEST}` }), 403, "DENIED");
      assert.match(message, /not among the repositories this registry accepts pushes for/);
    });

    it("authorize: a mount into pushTo from a name pushTo does not serve → 403", async () => {
      const message = await refused(pipeline.request(GROUP, { method: "POST", path: `/v2/team/app/blobs/uploads/?mount=${DIGEST}&from=lib/base` }), 403, "DENIED");
      assert.match(message, /not served by the registry pushes go to/);
    });

    it("the group push rules let through what pushTo takes, and pulls", async () => {
      assert.equal((await pipeline.request(GROUP, { method: "POST", path: `/v2/team/app/blobs/uploads/?mount=${DIGEST}&from=team/base` })).status, 200);
      assert.equal((await pipeline.request(READONLY, { path: "/v2/team/app/manifests/v1" })).status, 200);
      assert.deepEqual(calls, ["upload", "manifest"]);
    });

    it("limit: over the rate → 429 with Retry-After", async () => {
      // limited.test's one request a minute was used by the stage-order case.
      const res = await pipeline.request(LIMITED, { path: "/v2/", headers: ALICE });
      await refused(Promise.resolve(res), 429, "TOOMANYREQUESTS");
      assert.ok(Number(res.headers["retry-after"]) > 0);
    });

    it("limit: the rate limiter unreachable → 503", async () => {
      const saved = pipeline.state.rateLimit;
      const site = pipeline.state.sites.sites.find((s) => s.name === "limited")!;
      const unreachable: Limiter = { allow: () => Promise.reject(new LimiterUnavailableError("down")), close: async () => {} } as unknown as Limiter;
      const siteLimits = compileSiteLimits(site.name, site.config.limits)!;
      const everyLimit = new Map([...siteLimits.values()].flat().map((limit) => [limit, unreachable] as const));
      pipeline.state.rateLimit = new RateLimitStage(new Map([[site, siteLimits]]), everyLimit, null);
      try {
        const res = await pipeline.request(LIMITED, { path: "/v2/", headers: ALICE });
        await refused(Promise.resolve(res), 503, "UNAVAILABLE");
        assert.equal(res.headers["retry-after"], "1");
      } finally {
        pipeline.state.rateLimit = saved;
      }
    });

    it("limit: a download over the per-client cap → 429", async () => {
      release = () => {};
      const first = pipeline.request(OPEN, { path: `/v2/team/app/blobs/${DIGEST}` });
      while (!calls.includes("blob")) await new Promise((resolve) => setTimeout(resolve, 10));
      const second = await pipeline.request(OPEN, { path: `/v2/team/app/blobs/${DIGEST}` });
      assert.equal(second.status, 429);
      assert.match(second.json().errors[0].message, /too many downloads at once/);
      assert.deepEqual(calls, ["blob"], "the refused download's handler never ran");
      const held = release;
      release = null;
      held();
      assert.equal((await first).status, 200);
    });
  });
});
