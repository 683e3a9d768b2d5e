// Three gateways, each its own process and data directory, sharing only Redis for their certificates and
// ACME state, behind HAProxy (round robin). pebble validates through HAProxy frontends that reach only the
// second and third gateway, so an order the first gateway places is answered by another one. The third runs
// two workers from the rotation on. pebble's validation requests pass a valve the test holds shut at first,
// so the first orders stay pending until the holder has been killed, however slow the machine (pebble
// gives a held validation 15 s; the hold lasts from the request to the kill, well under a second).
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import * as tls from "node:tls";
import { Redis } from "ioredis";
import { cli, startGatewayProcess, type GatewayProcess } from "../helpers/cli.js";
import { startHaproxy, type Haproxy } from "../helpers/haproxy.js";
import { scrape, valueOf } from "../helpers/metrics.js";
import { startPebble, type Pebble } from "../helpers/pebble.js";
import { freePort } from "../helpers/ports.js";
import { waitFor } from "../helpers/process.js";
import { startRedis, type RedisServer } from "../helpers/redis.js";
import { startValve, type Valve } from "../helpers/valve.js";

const HOST = "fleet.registry.test";
/** A site with a certificate from the fleet's own CA. */
const GENERATED_HOST = "local.registry.test";
/** A site validated over TLS-ALPN-01: the validator's handshake lands on another gateway than the orderer. */
const ALPN_HOST = "alpn.registry.test";
const ORDERING = "ordering an ACME certificate";
/** A gateway's log lines saying it ordered for `site`. */
const orderingLines = (gateway: GatewayProcess, site = "fleet") => gateway.logs().filter((l) => l.msg === ORDERING && l.site === site);
const ENV = {
  GATEWAY_TLS_STORE_KEY: "fleet test store key, long enough",
  // Test speed only: a short order lease, fast ACME retries and polling. The periodic check is slower than
  // the 5 s a rotation may take to reach every gateway: the notices must do it.
  RG_TEST_TLS_STORE_TIMINGS: JSON.stringify({ checkMs: 10_000, orderLeaseMs: 3000, ackWaitMs: 3000, acmeRetryMs: 1000, acmePollMs: 100 }),
};

interface Ports {
  https: number;
  http: number;
  admin: number;
}

/** The serial and issuer a fresh handshake with `port` gets for `servername`. */
function handshake(port: number, servername = HOST): Promise<{ serial: string; issuer: string }> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: "127.0.0.1", port, servername, rejectUnauthorized: false }, () => {
      const peer = socket.getPeerCertificate();
      resolve({ serial: peer.serialNumber, issuer: String(peer.issuer.CN ?? "") });
      socket.end();
    });
    socket.setTimeout(5000, () => socket.destroy(new Error("handshake timed out")));
    socket.on("error", reject);
  });
}

const fromPebble = (issuer: string) => !/registry-gateway local CA/.test(issuer);

describe("a fleet of gateways sharing certificates and ACME state through Redis", () => {
  let dir: string;
  let redis: RedisServer;
  let haproxy: Haproxy;
  let pebble: Pebble;
  /** In front of the HTTP-01 and the TLS-ALPN-01 frontend: shut until the first holder is dead. */
  const valves: Valve[] = [];
  const ports: Ports[] = [];
  const configs: string[] = [];
  const gateways: (GatewayProcess | null)[] = [null, null, null];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "rg-fleet-tls-"));
    for (let i = 0; i < 3; i++) ports.push({ https: await freePort(), http: await freePort(), admin: await freePort() });
    redis = await startRedis();
    // pebble reaches only gateways 2 and 3; clients reach all three.
    haproxy = await startHaproxy([
      { servers: [ports[1]!.http, ports[2]!.http] },
      { servers: [ports[1]!.https, ports[2]!.https] },
      { servers: ports.map((p) => p.https) },
    ]);
    for (const frontend of [0, 1]) valves.push(await startValve(haproxy.ports[frontend]!, { open: false }));
    pebble = await startPebble({ httpPort: valves[0]!.port, tlsPort: valves[1]!.port });
    for (let i = 0; i < 3; i++) {
      const file = join(dir, `gateway-${i}.yaml`);
      await writeFile(
        file,
        [
          `listen: 127.0.0.1:${ports[i]!.https}`,
          `http: { listen: "127.0.0.1:${ports[i]!.http}" }`,
          `admin: { listen: "127.0.0.1:${ports[i]!.admin}", token: fleet-admin-token-0123456789abcdef }`,
          `dataDir: ${join(dir, `data-${i}`)}`,
          "workers: 1",
          `redis: { url: "${redis.url}" }`,
          "tls: { store: redis }",
          "sites:",
          "  - name: fleet",
          `    hosts: [${HOST}]`,
          "    backend: http://127.0.0.1:9",
          `    tls: { source: acme, directory: "${pebble.directoryUrl}", caFile: "${pebble.caFile}", challenge: http-01 }`,
          "  - name: alpn",
          `    hosts: [${ALPN_HOST}]`,
          "    backend: http://127.0.0.1:9",
          `    tls: { source: acme, directory: "${pebble.directoryUrl}", caFile: "${pebble.caFile}", challenge: tls-alpn-01 }`,
          "  - name: local",
          `    hosts: [${GENERATED_HOST}]`,
          "    backend: http://127.0.0.1:9",
          "",
        ].join("\n"),
      );
      configs.push(file);
    }
  });

  after(async () => {
    await Promise.all(gateways.map((gateway) => gateway?.process.stop(2000)));
    await Promise.all([pebble?.stop(), haproxy?.stop(), redis?.stop(), ...valves.map((valve) => valve.close())]);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const start = async (i: number) => (gateways[i] = await startGatewayProcess(configs[i]!, ENV));
  const running = () => gateways.flatMap((gateway, i) => (gateway ? [i] : []));

  /** Every running gateway serves one certificate for `host` (other than `not`); resolves with its serial. */
  async function fleetServesOne(host = HOST, not?: string, timeoutMs = 30_000): Promise<string> {
    const fromTheCa = host === GENERATED_HOST ? () => true : fromPebble;
    return waitFor(
      async () => {
        const served = await Promise.all(running().map((i) => handshake(ports[i]!.https, host)));
        const serials = new Set(served.map((s) => s.serial));
        return served.every((s) => fromTheCa(s.issuer)) && serials.size === 1 && !serials.has(not ?? "") ? [...serials][0] : undefined;
      },
      { timeoutMs, intervalMs: 100, what: `every gateway serving the same certificate for ${host}` },
    );
  }

  it("orders once for the fleet, and another gateway completes the order when its holder dies mid-order", async () => {
    await Promise.all([0, 1, 2].map(start));
    // pebble asking for the fleet site's HTTP-01 answer means an order is placed and its challenge taken up.
    const [http01, tlsAlpn01] = valves as [Valve, Valve];
    await waitFor(() => http01.waiting() > 0, { timeoutMs: 30_000, intervalMs: 10, what: "pebble validating the fleet site's order" });
    // An object, not the bare index: gateway 0 would read as "not yet".
    const { holder } = await waitFor(
      () => {
        const found = running().find((i) => orderingLines(gateways[i]!).length > 0);
        return found === undefined ? undefined : { holder: found };
      },
      { timeoutMs: 10_000, intervalMs: 10, what: "the gateway that placed it" },
    );
    assert.equal(running().filter((i) => orderingLines(gateways[i]!).length > 0).length, 1, "one gateway holds the order");
    await gateways[holder]!.process.stop(0); // SIGKILL
    assert.equal(gateways[holder]!.logs().filter((l) => l.msg === "ACME certificate in service" && l.site === "fleet").length, 0, "killed before its order completed");
    gateways[holder] = null;
    http01.open();
    tlsAlpn01.open();
    await fleetServesOne();
    const survivorsOrdering = running().flatMap((i) => orderingLines(gateways[i]!));
    assert.equal(survivorsOrdering.length, 1, "one survivor took the order over, the other adopted its certificate");
    // Per site at most the dead holder's order and its successor's.
    await fleetServesOne(ALPN_HOST);
    assert.ok(pebble.orders() <= 4, `pebble saw ${pebble.orders()} orders for two sites`);
    // Back: it serves what the fleet stored, without ordering.
    await start(holder);
    await fleetServesOne();
    assert.equal(gateways[holder]!.logs().filter((l) => l.msg === ORDERING).length, 0);
    await fleetServesOne(ALPN_HOST);
    // One CA and one leaf for the generated site too, though all three started at once.
    await fleetServesOne(GENERATED_HOST);
  });

  it("`cert rotate` on one gateway: pebble validates through the others, all three serve the new serial within 5 s", async () => {
    // The third gateway from now on runs two workers: certificates and challenge answers must reach both.
    await gateways[2]!.process.stop(5000);
    await writeFile(configs[2]!, (await readFile(configs[2]!, "utf8")).replace("workers: 1", "workers: 2"));
    await start(2);
    const before = await fleetServesOne();
    const generatedBefore = await fleetServesOne(GENERATED_HOST);
    const orders = pebble.orders();
    const alpnBefore = await fleetServesOne(ALPN_HOST);
    const ordering = () => gateways[0]!.logs().filter((l) => l.msg === ORDERING).length;
    const orderingBefore = ordering();
    const rotated = await cli(["cert", "rotate", "--config", configs[0]!], { env: { ...ENV } });
    assert.equal(rotated.code, 0, rotated.stderr + rotated.stdout);
    const startedAt = Date.now();
    const after = await fleetServesOne(HOST, before, 5000);
    assert.ok(Date.now() - startedAt <= 5000);
    assert.notEqual(after, before);
    await fleetServesOne(GENERATED_HOST, generatedBefore, Math.max(0, startedAt + 5000 - Date.now()));
    await fleetServesOne(ALPN_HOST, alpnBefore, Math.max(0, startedAt + 5000 - Date.now()));
    assert.equal(pebble.orders() - orders, 2, "one order per ACME site for the rotation");
    assert.equal(ordering() - orderingBefore, 2, "gateway 1 placed them: pebble could only reach 2 and 3");

    // cert status: the store's certificate, and what each gateway reports it serves. A killed gateway's
    // report stays until its heartbeat runs out; every running one reports the store's serial.
    type Status = { certificates: { site: string; certificate: { serial: string } }[]; gateways: { gateway: string; certificates: { site: string; serial: string }[] }[] };
    const names = running().map((i) => `${hostname()}/${gateways[i]!.process.pid}`);
    await waitFor(
      async () => {
        const status = await cli(["cert", "status", "--json", "--config", configs[1]!], { env: ENV });
        assert.equal(status.code, 0, status.stderr);
        const fleet = JSON.parse(status.stdout) as Status;
        const storeSerial = fleet.certificates.find((c) => c.site === "fleet")!.certificate.serial;
        const reported = new Map(fleet.gateways.map((g) => [g.gateway, g.certificates.find((c) => c.site === "fleet")?.serial]));
        return storeSerial.toUpperCase() === after.toUpperCase() && names.every((name) => reported.get(name) === storeSerial);
      },
      { timeoutMs: 10_000, intervalMs: 200, what: "every running gateway reporting the store's serial in cert status" },
    );
  });

  it("keeps no private key in Redis in the clear", async () => {
    const client = new Redis(redis.url);
    try {
      const keys = await client.keys("*");
      assert.ok(keys.some((key) => key.endsWith("tls:acme:cert:fleet")), `keys: ${keys.join(", ")}`);
      for (const key of keys) {
        const type = await client.type(key);
        const values = type === "string" ? [await client.get(key)] : type === "hash" ? Object.values(await client.hgetall(key)) : type === "set" ? await client.smembers(key) : [];
        for (const value of values) assert.doesNotMatch(value ?? "", /PRIVATE KEY/, `${key} holds a plain private key`);
      }
    } finally {
      client.disconnect();
    }
  });

  it("serves on while Redis is down, says so once, and renews once it is back", async () => {
    const before = await fleetServesOne();
    await redis.stop();
    await waitFor(async () => valueOf(await scrape(ports[0]!.admin), "registry_gateway_tls_store_up") === 0, { timeoutMs: 10_000, what: "tls_store_up 0" });
    for (const i of running()) assert.equal((await handshake(ports[i]!.https)).serial, before);
    // The rotation cannot take the fleet's order lock: it fails now and is retried.
    const rotated = await cli(["cert", "rotate", "--config", configs[0]!], { env: { ...ENV } });
    assert.notEqual(rotated.code, 0);
    for (const i of running()) assert.equal((await handshake(ports[i]!.https)).serial, before);
    await redis.start();
    const renewed = await fleetServesOne(HOST, before, 30_000);
    assert.notEqual(renewed, before);
    await waitFor(async () => valueOf(await scrape(ports[0]!.admin), "registry_gateway_tls_store_up") === 1, { timeoutMs: 10_000, what: "tls_store_up 1" });
    const lines = (msg: RegExp) => gateways[0]!.logs().filter((l) => msg.test(String(l.msg))).length;
    assert.equal(lines(/TLS store \(Redis\) does not answer/), 1);
    assert.equal(lines(/TLS store \(Redis\) answers again/), 1);
  });
});
