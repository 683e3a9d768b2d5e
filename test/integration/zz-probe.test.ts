import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { startTestGateway } from "../helpers/gateway.js";
import { htpasswdLine } from "../helpers/htpasswd.js";
import { startLoginFlood } from "../helpers/login-flood.js";
import { startRegistry } from "../helpers/registry.js";
it("probe", async () => {
  const dir = await mkdtemp(join(tmpdir(), "probe-"));
  const htpasswd = join(dir, "h");
  const hash = (await htpasswdLine("admin", "pw", 10)).slice(6);
  await writeFile(htpasswd, Array.from({ length: 100 }, (_, i) => `user-${i}:${hash}\n`).join(""));
  const registry = await startRegistry();
  const gw = await startTestGateway({ logins: { hashWorkers: 1 }, log: { level: "warn", access: false },
    sites: [{ name: "hub", hosts: ["hub.registry.test"], backend: registry.url, default: true, auth: { type: "htpasswd", htpasswd, rules: [] } }] });
  const flood = startLoginFlood({ port: gw.port, ca: gw.caPem, host: "hub.registry.test", addresses: ["127.0.0.2", "127.0.0.3"], connections: 400 });
  for (let i = 0; i < 12; i++) {
    const e0 = performance.eventLoopUtilization(); const c0 = process.cpuUsage(); const t = performance.now();
    await sleep(1000);
    const e = performance.eventLoopUtilization(e0); const c = process.cpuUsage(c0);
    const counts = await flood.counts();
    console.log(`elu ${e.utilization.toFixed(2)} proc cpu ${((c.user + c.system) / 1000 / (performance.now() - t)).toFixed(2)} ${JSON.stringify(counts.statuses)}`);
  }
  await flood.stop(); await gw.stop(); await registry.stop();
});
