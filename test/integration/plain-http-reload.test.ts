// The plain-HTTP listener (ACME HTTP-01, redirects) takes a reloaded timeouts.header like the HTTPS one: a
// lowered header timeout must cut silent plain-HTTP connections too, not only those opened before the reload.
import assert from "node:assert/strict";
import net from "node:net";
import { describe, it } from "node:test";
import { gatewayConfig } from "../../src/config/schema.js";
import { startTestGateway } from "../helpers/gateway.js";

/** Milliseconds until the gateway closes a connection that sends nothing; rejects after `limitMs`. */
function silentLifetime(port: number, limitMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const socket = net.connect(port, "127.0.0.1");
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`a silent connection was still open after ${limitMs} ms`));
    }, limitMs);
    socket.on("error", () => {});
    socket.on("close", () => {
      clearTimeout(timer);
      resolve(Date.now() - started);
    });
  });
}

describe("plain-HTTP listener on reload", () => {
  it("a reloaded timeouts.header applies to new plain-HTTP connections", async () => {
    // No request reaches the backend: only silent connections are opened.
    const input = { sites: [{ hosts: ["hub.test"], backend: "http://127.0.0.1:9" }], http: { listen: "127.0.0.1:0" } };
    const gateway = await startTestGateway({ ...input, timeouts: { header: "20s" } });
    try {
      const next = gatewayConfig.parse({ ...input, listen: "127.0.0.1:0", admin: { listen: "127.0.0.1:0" }, dataDir: gateway.dataDir, timeouts: { header: "300ms" } });
      const outcome = await gateway.reload(next);
      assert.ok(outcome.ok, JSON.stringify(outcome));
      const lived = await silentLifetime(gateway.http!.port, 3000);
      assert.ok(lived >= 200 && lived < 2000, `a silent plain-HTTP connection lived ${lived} ms, not the reloaded 300 ms`);
    } finally {
      await gateway.stop();
    }
  });
});
