// The access-log line — its fields, `_state` redaction, and no credentials whatever the request carried.
import assert from "node:assert/strict";
import type { IncomingMessage, ServerResponse } from "node:http";
import { Writable } from "node:stream";
import { describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { createAccessLogger, loggablePath } from "../../../src/observe/access-log.js";
import { createLogger, HIGH_VOLUME_FLUSH_MS, highVolumeChild } from "../../../src/observe/log.js";
import { createRequestObserver } from "../../../src/observe/observer.js";
import type { RequestContext } from "../../../src/request-context.js";
import type { Site } from "../../../src/sites.js";
import { routeOf } from "../../helpers/routes.js";

function capture(level = "info"): { lines: string[]; writes: string[]; logger: ReturnType<typeof createLogger> } {
  const lines: string[] = [];
  const writes: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      writes.push(chunk.toString());
      lines.push(...chunk.toString().split("\n").filter(Boolean));
      done();
    },
  });
  return { lines, writes, logger: createLogger({ level, format: "json" }, sink) };
}

const STATE = "eyJOYW1lIjoiaHViL2FwcCIsIlVVSUQiOiIwZjNjIn0%3D";

describe("loggablePath", () => {
  it("redacts the _state value and keeps the rest of the target byte for byte", () => {
    assert.equal(
      loggablePath(`/v2/hub/app/blobs/uploads/0f3c?_state=${STATE}&digest=sha256%3Aabc`),
      "/v2/hub/app/blobs/uploads/0f3c?_state=[redacted]&digest=sha256%3Aabc",
    );
    assert.equal(loggablePath(`/v2/a/blobs/uploads/u?digest=sha256:1&_state=${STATE}`), "/v2/a/blobs/uploads/u?digest=sha256:1&_state=[redacted]");
    assert.equal(loggablePath("/v2/a/manifests/v1"), "/v2/a/manifests/v1");
    assert.equal(loggablePath("/v2/a/blobs/uploads/?mount=sha256:1&from=b/c"), "/v2/a/blobs/uploads/?mount=sha256:1&from=b/c");
    assert.equal(loggablePath("/v2/x_state=1"), "/v2/x_state=1", "only query parameters named _state");
  });

  it("redacts token and password values a client put in the query", () => {
    assert.equal(loggablePath("/token?service=s&password=hunter2&token=abc.def"), "/token?service=s&password=[redacted]&token=[redacted]");
    assert.equal(loggablePath("/x?access_token=t1&refresh_token=t2"), "/x?access_token=[redacted]&refresh_token=[redacted]");
  });
});

describe("access log line", () => {
  // The observer reads a site's name and backend only.
  const site = { name: "hub", hosts: ["hub.test"], backend: new URL("http://127.0.0.1:5001") } as unknown as Site;
  const url = `/v2/hub/app/blobs/uploads/0f3c?_state=${STATE}`;
  const secrets = ["QWxhZGRpbjpPcGVuU2VzYW1l", "OpenSesame", "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2ln", "cookie-secret", STATE];
  const req = {
    method: "PATCH",
    url,
    headers: {
      authorization: `Basic ${secrets[0]}`,
      "x-registry-password": secrets[1],
      "proxy-authorization": `Bearer ${secrets[2]}`,
      cookie: `session=${secrets[3]}`,
    },
  } as unknown as IncomingMessage;
  const res = { headersSent: true, getHeader: () => undefined } as unknown as ServerResponse;
  const record: RequestContext = {
    req,
    res,
    requestId: "req-42",
    method: "PATCH",
    url,
    clientIp: "192.0.2.7",
    startedAt: 0,
    durationMs: 153.456,
    status: 202,
    site,
    route: routeOf("PATCH", "/v2/hub/app/blobs/uploads/0f3c"),
    principal: null,
    user: "alice",
    outcome: { status: 202, backend: "http://127.0.0.1:5000", clientAborted: false, upstreamMs: 150.04, requestBytes: 4096, responseBytes: 0 },
  };

  it("has every field an operator needs, in one JSON line, and no credential or upload state", async () => {
    const { lines, logger } = capture();
    createRequestObserver({ metrics: null, accessLog: createAccessLogger(logger) })!.requestDone(record);
    await sleep(HIGH_VOLUME_FLUSH_MS + 20);
    assert.equal(lines.length, 1);
    const line = JSON.parse(lines[0]!);
    assert.equal(line.msg, "request");
    assert.equal(line.level, "info");
    assert.match(line.time, /^\d{4}-\d\d-\d\dT/);
    assert.deepEqual(
      {
        requestId: line.requestId,
        site: line.site,
        operation: line.operation,
        method: line.method,
        path: line.path,
        status: line.status,
        bytesIn: line.bytesIn,
        bytesOut: line.bytesOut,
        durationMs: line.durationMs,
        upstreamMs: line.upstreamMs,
        user: line.user,
        clientIp: line.clientIp,
      },
      {
        requestId: "req-42",
        site: "hub",
        operation: "upload",
        method: "PATCH",
        path: "/v2/hub/app/blobs/uploads/0f3c?_state=[redacted]",
        status: 202,
        bytesIn: 4096,
        bytesOut: 0,
        durationMs: 153.5,
        upstreamMs: 150,
        user: "alice",
        clientIp: "192.0.2.7",
      },
    );
    for (const secret of secrets) assert.ok(!lines[0]!.includes(secret), `the line contains ${secret}`);
    assert.doesNotMatch(lines[0]!, /authorization|cookie/i);
  });

  it("is written whatever log.level says, and not at all without an access logger", async () => {
    const quiet = capture("error");
    createRequestObserver({ metrics: null, accessLog: createAccessLogger(quiet.logger) })!.requestDone(record);
    await sleep(HIGH_VOLUME_FLUSH_MS + 20);
    assert.equal(quiet.lines.length, 1);
    assert.equal(createRequestObserver({ metrics: null, accessLog: null }), null, "nothing to observe: no observer");
  });
});

describe("batched high-volume lines", () => {
  it("writes access lines in one write per interval, and flushes them before any other line, in order", async () => {
    const { writes, lines, logger } = capture();
    const access = highVolumeChild(logger, { level: "info" });
    access.info({ n: 1 }, "request");
    await sleep(10);
    access.info({ n: 2 }, "request");
    access.info({ n: 3 }, "request");
    assert.equal(writes.length, 0, "nothing written before the interval is over");
    await sleep(HIGH_VOLUME_FLUSH_MS + 20);
    assert.equal(writes.length, 1);
    assert.deepEqual(lines.map((line) => JSON.parse(line).n), [1, 2, 3]);

    access.info({ n: 4 }, "request");
    logger.warn({ n: 5 }, "something else");
    assert.equal(writes.length, 3, "the pending access line went out first, then the warning, at once");
    assert.deepEqual(lines.map((line) => JSON.parse(line).n), [1, 2, 3, 4, 5]);
    logger.info({ n: 6 }, "lifecycle");
    assert.equal(lines.length, 6, "other loggers' lines are never delayed");
  });

  it("writes at once when 64 KiB are waiting", () => {
    const { writes, logger } = capture();
    const access = highVolumeChild(logger, { level: "info" });
    const path = "/v2/".padEnd(1000, "x");
    for (let i = 0; i < 100; i++) access.info({ path }, "request");
    assert.ok(writes.length >= 1, "a full batch does not wait for the timer");
    assert.ok(writes[0]!.length >= 64 * 1024);
  });
});
