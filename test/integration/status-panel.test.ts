// The admin listener's status panel (GET /status, /status.json) against a gateway run as users run it, in
// one process and as a cluster of two workers: it lists the configured sites and the certificate each
// presents (expiry, serial), shows a killed backend unhealthy exactly as /readyz does, and its rates come
// from the gateway's own counters summed over every worker: the requests, 429s and refused logins sent
// between two readings are all counted. The HTML page carries a strict CSP and no inline script or style.
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { httpsCall, startClusterWithConfig, type ClusterProcess } from "../helpers/cluster.js";
import { htpasswdLine } from "../helpers/htpasswd.js";
import { waitFor } from "../helpers/process.js";
import { readyz } from "../helpers/readiness.js";
import { startRegistry, type Registry } from "../helpers/registry.js";

const MAIN_HOST = "main.status.test";
const LOCKED_HOST = "locked.status.test";
const LIMITED_HOST = "limited.status.test";
const INTERVAL_MS = 500;

interface StatusJson {
  ready: boolean;
  sites: { name: string; hosts: string[]; auth: string; backends: string[] }[];
  certificates: { site: string; hosts: string[]; issuer: string; serial: string; notAfter: string; daysLeft: number; state: string }[];
  pools: { pool: string; healthy: number; reachable: number; total: number; backends: { backend: string; healthy: boolean; reachable: boolean; outstanding: number }[] }[];
  traffic: { metrics: string; windowSeconds: number | null; sites: { site: string; requests: Record<string, number>; rateLimited: number; refusedLogins: number }[] };
}

for (const workers of [1, 2]) {
  describe(`the status panel with workers: ${workers}`, () => {
    let dir: string;
    let replicas: Registry[];
    let gateway: ClusterProcess;
    let ca: string;

    const admin = (path: string) => fetch(`http://127.0.0.1:${gateway.adminPort}${path}`);
    const statusJson = async () => (await (await admin("/status.json")).json()) as StatusJson;
    const call = (host: string, headers: Record<string, string> = {}) => httpsCall({ port: gateway.httpsPort, ca, host, path: "/v2/", headers });
    const siteTraffic = (status: StatusJson, site: string) => status.traffic.sites.find((s) => s.site === site);
    /** Rate × window: how many were counted between the first reading and this one. */
    const counted = (status: StatusJson, rate: number) => Math.round(rate * status.traffic.windowSeconds!);

    before(async () => {
      dir = await mkdtemp(join(tmpdir(), "rg-status-"));
      replicas = await Promise.all([0, 1].map(() => startRegistry()));
      await writeFile(join(dir, "htpasswd"), `${await htpasswdLine("alice", "right-password")}\n`);
      const health = `{ interval: ${INTERVAL_MS}ms, timeout: 400ms, unhealthyThreshold: 1, healthyThreshold: 1 }`;
      ({ gateway, ca } = await startClusterWithConfig(dir, [
        "listen: 127.0.0.1:0",
        'admin: { listen: "127.0.0.1:0" }',
        `dataDir: ${join(dir, "data")}`,
        `workers: ${workers}`,
        "sites:",
        "  - name: main",
        `    hosts: [${MAIN_HOST}]`,
        `    backends: [${replicas.map((r) => r.url).join(", ")}]`,
        `    health: ${health}`,
        "  - name: locked",
        `    hosts: [${LOCKED_HOST}]`,
        `    backend: ${replicas[0]!.url}`,
        `    auth: { type: htpasswd, htpasswd: ${join(dir, "htpasswd")} }`,
        "  - name: limited",
        `    hosts: [${LIMITED_HOST}]`,
        `    backend: ${replicas[0]!.url}`,
        "    limits: [{ name: trickle, operations: [any], rate: 1, per: 1m, burst: 1, key: ip }]",
      ]));
    });

    after(async () => {
      await gateway?.process.stop(10_000);
      await Promise.all((replicas ?? []).map((r) => r.stop()));
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    it("counts every request, 429 and refused login sent between two readings, summed over the workers", async () => {
      const first = await statusJson();
      assert.equal(first.traffic.metrics, "enabled");
      assert.equal(first.traffic.windowSeconds, null, "a first reading has nothing to compare with");

      const sent = 12;
      // Fresh connections: a cluster spreads them over its workers.
      for (let i = 0; i < sent; i++) assert.equal((await call(MAIN_HOST)).status, 200);
      const wrong = `Basic ${Buffer.from("alice:wrong-password").toString("base64")}`;
      for (let i = 0; i < 2; i++) assert.equal((await call(LOCKED_HOST, { authorization: wrong })).status, 401);
      const limited = await Promise.all([0, 1, 2].map(() => call(LIMITED_HOST)));
      assert.deepEqual(limited.map((a) => a.status).sort(), [200, 429, 429]);

      const status = await waitFor(
        async () => {
          const answer = await statusJson();
          const main = answer.traffic.sites.find((s) => s.site === "main");
          return main && counted(answer, main.requests.total!) === sent ? answer : undefined;
        },
        { timeoutMs: 5000, intervalMs: 200, what: `${sent} requests of site main counted` },
      );
      assert.ok(status.traffic.windowSeconds! > 0);
      const main = siteTraffic(status, "main")!;
      assert.equal(counted(status, main.requests["2xx"]!), sent);
      assert.equal(counted(status, main.requests["4xx"]!), 0);
      const locked = siteTraffic(status, "locked")!;
      assert.equal(counted(status, locked.refusedLogins), 2);
      assert.equal(counted(status, locked.requests["4xx"]!), 2);
      assert.equal(counted(status, siteTraffic(status, "limited")!.rateLimited), 2);
      assert.equal(counted(status, main.rateLimited), 0);
    });

    it("lists the sites and the certificate each presents, with its expiry and serial", async () => {
      const status = await statusJson();
      assert.deepEqual(
        status.sites.map((s) => [s.name, s.hosts, s.auth, s.backends]),
        [
          ["main", [MAIN_HOST], "none", replicas.map((r) => r.url)],
          ["locked", [LOCKED_HOST], "htpasswd", [replicas[0]!.url]],
          ["limited", [LIMITED_HOST], "none", [replicas[0]!.url]],
        ],
      );
      const presented = (await call(MAIN_HOST)).socket.getPeerCertificate();
      const certificate = status.certificates.find((c) => c.site === "main")!;
      assert.equal(certificate.serial.toUpperCase(), presented.serialNumber.toUpperCase());
      assert.equal(certificate.notAfter, new Date(presented.valid_to).toISOString());
      assert.equal(certificate.daysLeft, Math.floor((Date.parse(presented.valid_to) - Date.now()) / 86_400_000));
      assert.equal(certificate.state, "ok");

      const page = await (await admin("/status")).text();
      for (const text of ["main", "locked", "limited", MAIN_HOST, LOCKED_HOST, "htpasswd", replicas[1]!.url, certificate.serial, certificate.notAfter.slice(0, 10)]) {
        assert.ok(page.includes(text), `the page shows ${text}`);
      }
      assert.match(page, new RegExp(`>${certificate.daysLeft} days<`));
    });

    it("serves the page with a strict CSP, no inline script or style, and its own stylesheet and script", async () => {
      const res = await admin("/status");
      assert.equal(res.status, 200);
      assert.match(res.headers.get("content-type")!, /^text\/html/);
      const csp = res.headers.get("content-security-policy") ?? "";
      assert.match(csp, /default-src 'none'/);
      assert.match(csp, /script-src 'self'(;|$)/);
      assert.match(csp, /style-src 'self'(;|$)/);
      const page = await res.text();
      assert.doesNotMatch(page, /<script(?![^>]*\bsrc=)[^>]*>/i, "every script element loads a file");
      assert.doesNotMatch(page, /<style|\sstyle=|\son[a-z]+=/i, "no inline style or event handler");
      assert.match(page, /<a href="\/status"[^>]*>Refresh<\/a>/);
      for (const [path, type] of [["/status.css", /^text\/css/], ["/status.js", /^text\/javascript/]] as const) {
        const asset = await admin(path);
        assert.equal(asset.status, 200, path);
        assert.match(asset.headers.get("content-type")!, type);
        assert.ok((await asset.text()).length > 100, `${path} has content`);
        assert.ok(page.includes(`"${path}"`), `the page links ${path}`);
      }
    });

    it("shows a killed backend unhealthy, as /readyz does", async () => {
      const victim = replicas[1]!;
      process.kill(victim.process.pid, "SIGKILL");
      await victim.process.exited();
      const pool = await waitFor(
        async () => {
          const found = (await statusJson()).pools.find((p) => p.backends.some((b) => b.backend === victim.url));
          return found?.backends.find((b) => b.backend === victim.url)?.healthy === false ? found : undefined;
        },
        { timeoutMs: 10_000, intervalMs: 100, what: `${victim.url} unhealthy on the status panel` },
      );
      assert.deepEqual([pool.healthy, pool.reachable, pool.total], [1, 1, 2]);
      const ready = await readyz(gateway.adminPort);
      const expected = ready.body.backends.filter((b) => b.pool === pool.pool).map((b) => [b.backend, b.healthy, b.reachable]);
      assert.deepEqual(pool.backends.map((b) => [b.backend, b.healthy, b.reachable]), expected);

      const page = await (await admin("/status")).text();
      const row = new RegExp(`<tr class="backend unhealthy">.*${victim.url.replaceAll(".", "\\.")}.*</tr>`);
      assert.match(page, row);
      assert.match(page, /1\/2 healthy/);
    });
  });
}
