// A generation replaced by a reload keeps serving the requests that started on it, then is closed.
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { mkdtemp, rm } from "node:fs/promises";
import type { ServerResponse } from "node:http";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { gatewayConfig, type GatewayConfigInput } from "../../src/config/schema.js";
import { buildGeneration, retireGeneration, type Generation } from "../../src/generation.js";
import { createLogger } from "../../src/observe/log.js";
import { GatewayMetrics } from "../../src/observe/metrics.js";
import { createProcessContext } from "../../src/process/context.js";

let dataDir: string;
before(async () => {
  dataDir = await mkdtemp(path.join(os.tmpdir(), "rg-state-"));
});
after(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

const context = createProcessContext({ logger: createLogger({ level: "silent", format: "json" }), metrics: new GatewayMetrics(), metricsEnabled: false });
const configWith = (extra: Partial<GatewayConfigInput> = {}) =>
  gatewayConfig.parse({ dataDir, metrics: { enabled: false }, sites: [{ hosts: ["hub.registry.test"], backend: "http://127.0.0.1:5001" }], ...extra });

/** Records what gets closed. */
function watchClosing(state: Generation, closed: string[], label: string): void {
  const security = state.security as { close(): void };
  security.close = () => closed.push(`${label} stages`);
  const forwarder = state.forwarder;
  const close = forwarder.close.bind(forwarder);
  forwarder.close = () => {
    closed.push(`${label} forwarder`);
    close();
  };
}

function fakeResponse(): ServerResponse & EventEmitter {
  return new EventEmitter() as ServerResponse & EventEmitter;
}

describe("retiring a replaced generation", () => {
  test("stages close after the grace time even with a request in flight; the forwarder once it is done", async () => {
    const old = await buildGeneration(configWith(), context);
    const successor = await buildGeneration(configWith({ timeouts: { idle: "1m" } }), context);
    assert.notEqual(successor.forwarder, old.forwarder, "other timeouts: another forwarder");
    const closed: string[] = [];
    watchClosing(old, closed, "old");
    const upload = fakeResponse();
    old.track(upload);

    const retired = retireGeneration(old, 50);
    await sleep(100);
    assert.deepEqual(closed, ["old stages"]);
    assert.equal(old.inFlight, 1);
    upload.emit("close");
    await retired;
    assert.deepEqual(closed, ["old stages", "old forwarder"]);
    await successor.discard();
  });

  test("an idle generation closes at once; a forwarder taken over by the successor stays open", async () => {
    const old = await buildGeneration(configWith(), context);
    const successor = await buildGeneration(configWith({ sites: [{ hosts: ["team.registry.test"], backend: "http://127.0.0.1:5002" }] }), context);
    assert.equal(successor.forwarder, old.forwarder, "same timeouts: the backend pools are kept");
    const closed: string[] = [];
    watchClosing(old, closed, "shared");
    await retireGeneration(old, 60_000);
    assert.deepEqual(closed, ["shared stages"]);
    await retireGeneration(successor, 60_000);
    assert.deepEqual(closed, ["shared stages", "shared forwarder"], "the last generation using it closes it");
  });
});
