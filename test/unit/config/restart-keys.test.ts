// A reload names the changed keys only a restart applies.
import assert from "node:assert/strict";
import { test } from "node:test";
import { keysNeedingRestart } from "../../../src/config/restart-keys.js";
import { gatewayConfig, type GatewayConfigInput } from "../../../src/config/schema.js";

const base: GatewayConfigInput = { listen: "127.0.0.1:5443", sites: [{ hosts: ["hub.registry.test"], backend: "http://127.0.0.1:5001" }] };
const parse = (extra: Partial<GatewayConfigInput>) => gatewayConfig.parse({ ...base, ...extra });

test("listener addresses, TLS floor and header limit need a restart; sites, auth and timeouts do not", () => {
  const running = parse({});
  assert.deepEqual(keysNeedingRestart(running, parse({})), []);
  assert.deepEqual(
    keysNeedingRestart(running, parse({ timeouts: { idle: "1m" }, sites: [{ hosts: ["team.registry.test"], backend: "http://127.0.0.1:5002" }] })),
    [],
  );
  assert.deepEqual(
    keysNeedingRestart(running, parse({ listen: "127.0.0.1:6443", http: { listen: "127.0.0.1:5080" }, tls: { minVersion: "TLSv1.3" } })),
    ["listen", "http.listen", "tls.minVersion"],
  );
  assert.deepEqual(keysNeedingRestart(running, parse({ admin: { listen: "127.0.0.1:9999" }, limits: { maxHeaderBytes: 2048 } })), [
    "admin.listen",
    "limits.maxHeaderBytes",
  ]);
});
