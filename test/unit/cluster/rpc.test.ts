import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Rpc, RpcTimeoutError } from "../../../src/cluster/rpc.js";
import { primaryCounters, SharedCounters } from "../../../src/cluster/shared.js";

/** Two ends joined like the IPC channel: what one sends, the other receives (asynchronously, as IPC does). */
function pair(aHandlers: Record<string, (args: any) => unknown>, bHandlers: Record<string, (args: any) => unknown>) {
  let a: Rpc | null = null;
  let b: Rpc | null = null;
  const foreign: unknown[] = [];
  a = new Rpc((message) => setImmediate(() => b!.receive(message) || foreign.push(message)), aHandlers);
  b = new Rpc((message) => setImmediate(() => a!.receive(message) || foreign.push(message)), bHandlers);
  return { a, b, foreign };
}

describe("cluster calls between primary and workers", () => {
  it("answers a call with the handler's value, async or not, and passes errors back", async () => {
    const { a } = pair({}, { add: ({ x, y }) => x + y, later: async () => "done", fail: () => { throw new Error("no such site"); } });
    assert.equal(await a.call("add", { x: 2, y: 3 }, 1000), 5);
    assert.equal(await a.call("later", {}, 1000), "done");
    await assert.rejects(a.call("fail", {}, 1000), /no such site/);
    await assert.rejects(a.call("missing", {}, 1000), /unknown call missing/);
  });

  it("times out a call nobody answers, and fails every waiting call when the other side is gone", async () => {
    const silent = new Rpc(() => {}, {});
    // The call's own timer does not hold the process open (a worker exits when it should): this one does.
    const keepAlive = setTimeout(() => {}, 5000);
    await assert.rejects(silent.call("x", {}, 50), RpcTimeoutError);
    clearTimeout(keepAlive);
    const waiting = silent.call("y", {}, 10_000);
    silent.disconnected();
    await assert.rejects(waiting, /the other process is gone/);
  });

  it("leaves other messages on the channel alone (prom-client's aggregation requests)", () => {
    const rpc = new Rpc(() => {}, {});
    assert.equal(rpc.receive({ type: "prom-client:getMetricsReq", requestId: 1 }), false);
    assert.equal(rpc.receive("text"), false);
    assert.equal(rpc.receive(null), false);
  });

  it("the primary's counters are one set for every worker: the 6th call of a 5/min rule is refused", async () => {
    const counters = new SharedCounters();
    const workers = [pair({}, counters.handlers()).a, pair({}, counters.handlers()).a];
    const rule = { rate: 5, periodMs: 60_000, burst: 5 };
    const decisions = [];
    for (let i = 0; i < 6; i++) decisions.push(await workers[i % 2]!.call<{ allowed: boolean }>("limit", { key: "hub\npulls\n127.0.0.1", rule, cost: 1 }, 1000));
    assert.deepEqual(decisions.map((d) => d.allowed), [true, true, true, true, true, false]);
    const key = { pool: "hub", repository: "alice/app", uuid: "u1", owner: '["hub","user","alice"]' };
    const limits = { perUser: 64, idleMs: 3_600_000 };
    await workers[0]!.call("affinity.remember", { key, member: "http://127.0.0.1:5001", limits }, 1000);
    assert.equal(await workers[1]!.call("affinity.lookup", { key, limits }, 1000), "http://127.0.0.1:5001");
    await workers[1]!.call("affinity.forget", { key: { ...key, owner: '["hub","user","bob"]' } }, 1000);
    assert.equal(await workers[0]!.call("affinity.lookup", { key, limits }, 1000), "http://127.0.0.1:5001", "another user's forget");
    await workers[1]!.call("affinity.forget", { key }, 1000);
    assert.equal(await workers[0]!.call("affinity.lookup", { key, limits }, 1000), null);
    await counters.close();
  });

  it("the primary keeps a worker's counts under the settings the worker names: the same settings keep them, others start afresh", async () => {
    const counters = new SharedCounters();
    const [first, second] = [primaryCounters(pair({}, counters.handlers()).a), primaryCounters(pair({}, counters.handlers()).a)];
    const rule = { rate: 1, periodMs: 60_000, burst: 1 };
    const settings = { keyStem: "hub:pulls:", rule };
    assert.equal((await first.limiter("limits", settings).allow("hub:pulls:ip:10.0.0.1", rule)).allowed, true);
    const reloaded = second.limiter("limits", { rule, keyStem: "hub:pulls:" });
    assert.equal((await reloaded.allow("hub:pulls:ip:10.0.0.1", rule)).allowed, false, "the same settings, from another worker or a reload: the same count");
    const changed = { rate: 2, periodMs: 60_000, burst: 2 };
    assert.equal((await second.limiter("limits", { keyStem: "hub:pulls:", rule: changed }).allow("hub:pulls:ip:10.0.0.1", changed)).allowed, true, "a changed rule: afresh");
    assert.equal((await second.limiter("logins", settings).allow("hub:pulls:ip:10.0.0.1", rule)).allowed, true, "another kind of count: apart");
    await counters.close();
  });
});
