// Requests on one connection take turns: pipelining.ts.
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import type { IncomingMessage, ServerResponse } from "node:http";
import { describe, it } from "node:test";
import { ClientConnection } from "../../../src/proxy/client-connection.js";
import { awaitTurn, MAX_PIPELINED, requestInProgress } from "../../../src/proxy/pipelining.js";

type FakeSocket = EventEmitter & { destroyed: boolean };

function exchange(socket: FakeSocket, options: { keepAlive?: boolean; connection?: string } = {}) {
  const req = Object.assign(new EventEmitter(), { socket, complete: false }) as unknown as IncomingMessage & { complete: boolean };
  const res = Object.assign(new EventEmitter(), {
    shouldKeepAlive: options.keepAlive ?? true,
    writableFinished: false,
    getHeader: (name: string) => (name === "connection" ? options.connection : undefined),
  }) as unknown as ServerResponse & { writableFinished: boolean };
  const finish = () => {
    req.complete = true;
    res.writableFinished = true;
    res.emit("close");
  };
  return { req, res, finish };
}

const socketOf = (): FakeSocket => {
  const socket = Object.assign(new EventEmitter(), { destroyed: false });
  // As the listener does on the accept: turns are kept on the connection.
  new ClientConnection(socket as never);
  return socket;
};

describe("requests on one connection take turns", () => {
  it("starts a pipelined request only once the one before it is over", async () => {
    const socket = socketOf();
    const first = exchange(socket);
    const second = exchange(socket);
    assert.equal(await awaitTurn(first.req, first.res), true);
    let started = false;
    const turn = awaitTurn(second.req, second.res).then((go) => (started = go));
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(started, false, "the second started while the first was in progress");
    assert.equal(requestInProgress(socket as never), true);
    first.finish();
    await turn;
    assert.equal(started, true);
  });

  it("never starts a request pipelined behind a response that closes the connection", async () => {
    const socket = socketOf();
    const refused = exchange(socket, { connection: "close" });
    const smuggled = exchange(socket);
    await awaitTurn(refused.req, refused.res);
    const turn = awaitTurn(smuggled.req, smuggled.res);
    refused.finish();
    assert.equal(await turn, false);
  });

  it("refuses to queue more than MAX_PIPELINED requests behind one in progress", async () => {
    const socket = socketOf();
    const first = exchange(socket);
    await awaitTurn(first.req, first.res);
    const queued = Array.from({ length: MAX_PIPELINED }, () => exchange(socket)).map(({ req, res }) => awaitTurn(req, res));
    const extra = exchange(socket);
    assert.equal(await awaitTurn(extra.req, extra.res), false, "one more than the queue takes is refused at once");
    first.finish();
    assert.equal(await queued[0], true);
  });

  it("refuses a request on a socket no listener accepted", async () => {
    const stray = Object.assign(new EventEmitter(), { destroyed: false });
    const { req, res } = exchange(stray);
    assert.equal(await awaitTurn(req, res), false);
  });

  it("leaves no listener behind on a long keep-alive connection", async () => {
    const socket = socketOf();
    for (let i = 0; i < 50; i++) {
      const { req, res, finish } = exchange(socket);
      assert.equal(await awaitTurn(req, res), true);
      finish();
    }
    assert.ok(socket.listenerCount("close") <= 1, `${socket.listenerCount("close")} close listeners on the connection after 50 requests`);
  });
});
