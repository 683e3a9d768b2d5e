// roundTrip() against scripted loopback backends, through both engines (the GET relay for pulls from a
// plain-HTTP backend, http-proxy-3 for the rest): the head comes back with nothing written to the client
// yet, and a backend that cannot be reached, resets, or stays silent is a typed error.
import assert from "node:assert/strict";
import type { IncomingMessage, ServerResponse } from "node:http";
import { after, afterEach, describe, it } from "node:test";
import { Forwarder, type ForwardOutcome } from "../../../src/proxy/forward.js";
import type { RoundTripResult } from "../../../src/proxy/round-trip.js";
import { closeScripted, EDGE, front, httpBackend, refusingUrl, tcpBackend } from "../../helpers/scripted.js";

const forwarder = new Forwarder({ idleTimeoutMs: 300, keepAliveMs: 1000, sendTimeoutMs: 5000 });
after(() => forwarder.close());
afterEach(() => closeScripted());

interface Seen {
  result: RoundTripResult;
  /** Whether the client had been sent anything when the round trip resolved. */
  headersSentBefore: boolean;
  outcome: ForwardOutcome;
}

/** A front that sends each request to `backend` by one round trip, then relays (or answers) its result. */
async function through(backend: URL, pull: boolean) {
  const seen: Seen[] = [];
  const server = await front(async (req: IncomingMessage, res: ServerResponse) => {
    const result = await forwarder.roundTrip({ req, res, edge: EDGE, clientHeaders: req.headers, pull }, backend);
    const headersSentBefore = res.headersSent;
    const client = { req, res, edge: EDGE };
    const outcome = result.ok ? await forwarder.relay(result, client) : forwarder.answer(result, client);
    seen.push({ result, headersSentBefore, outcome });
  });
  return { send: server.send, seen };
}

for (const [engine, pull] of [
  ["the GET relay", true],
  ["http-proxy-3", false],
] as const) {
  describe(`roundTrip through ${engine}`, () => {
    it("returns the head with the body not yet relayed; relaying it gives the client the backend's answer", async () => {
      const backend = await httpBackend((_req, res) => res.writeHead(200, { "X-Backend": "b1", "Content-Length": "5" }).end("hello"));
      const { send, seen } = await through(backend.url, pull);
      const answer = await send("GET", "/v2/app/blobs/sha256:abc");
      assert.equal(answer.status, 200);
      assert.equal(answer.body.toString(), "hello");
      assert.equal(answer.headers["x-backend"], "b1");
      const [{ result, headersSentBefore, outcome }] = seen as [Seen];
      assert.ok(result.ok);
      assert.equal(result.status, 200);
      assert.ok(result.rawHeaders.includes("X-Backend"));
      assert.equal(headersSentBefore, false, "nothing is written to the client by the round trip");
      assert.equal(outcome.responseBytes, 5);
      assert.equal(outcome.backend, backend.url.origin);
      assert.equal(backend.received[0]!.headers["x-request-id"], EDGE.requestId, "headers rewritten for the backend");
    });

    it("a refused connection is `unconnected` (answered 502)", async () => {
      const { send, seen } = await through(await refusingUrl(), pull);
      const answer = await send("GET", "/v2/app/blobs/sha256:abc");
      const [{ result, outcome }] = seen as [Seen];
      assert.equal(result.ok ? "answered" : result.kind, "unconnected");
      assert.equal(answer.status, 502);
      assert.equal(outcome.upstreamFailure, "refused");
    });

    it("a connection reset after the request, before any answer, is `reset`", async () => {
      const backend = await tcpBackend((socket) => socket.resetAndDestroy());
      const { send, seen } = await through(backend.url, pull);
      const answer = await send("GET", "/v2/app/blobs/sha256:abc");
      const [{ result }] = seen as [Seen];
      assert.equal(result.ok ? "answered" : result.kind, "reset");
      assert.equal(answer.status, 502);
      assert.equal(backend.received.length, 1, "the backend got the request");
    });

    it("a backend that dies mid-body cuts the client's response", { timeout: 5000 }, async () => {
      const backend = await tcpBackend((socket) => {
        socket.write("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial");
        setTimeout(() => socket.resetAndDestroy(), 50);
      });
      const { send, seen } = await through(backend.url, pull);
      const answer = await send("GET", "/v2/app/blobs/sha256:abc");
      assert.equal(answer.status, 200);
      assert.equal(answer.cut, true, "the client does not wait for bytes that never come");
      assert.equal(answer.body.toString(), "partial");
      const [{ result }] = seen as [Seen];
      assert.ok(result.ok, "the head came: the failure is the body's");
    });

    it("a backend silent for the idle timeout is `timeout` (answered 504)", async () => {
      const backend = await tcpBackend(() => {});
      const { send, seen } = await through(backend.url, pull);
      const answer = await send("GET", "/v2/app/blobs/sha256:abc");
      const [{ result, outcome }] = seen as [Seen];
      assert.equal(result.ok ? "answered" : result.kind, "timeout");
      assert.equal(answer.status, 504);
      assert.equal(outcome.upstreamFailure, "timeout");
    });
  });
}

describe("roundTrip of a request with a body", () => {
  it("streams the client's body to the backend byte for byte and counts it", async () => {
    const backend = await httpBackend((_req, res) => res.writeHead(202, { Location: `${backend.url.origin}/v2/app/blobs/uploads/u1` }).end());
    const { send, seen } = await through(backend.url, false);
    const body = Buffer.from("layer bytes \x00\xff");
    const answer = await send("PATCH", "/v2/app/blobs/uploads/u1", body);
    assert.equal(answer.status, 202);
    assert.equal(answer.headers.location, "https://gw.test/v2/app/blobs/uploads/u1", "Location rewritten to the gateway");
    assert.deepEqual(backend.received[0]!.body, body);
    assert.equal(seen[0]!.outcome.requestBytes, body.length);
  });
});
