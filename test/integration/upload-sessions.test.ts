// Upload sessions to replicas belong to the user who started them. Behind a site with htpasswd users —
// alice pushes alice/**, bob bob/**, carol alice/** too, mallory mallory/** — mallory floods upload
// starts, bob and carol send requests with alice's upload id (which is no secret: Docker-Upload-UUID).
// alice's upload in flight must finish whatever they do, what the gateway holds (its memory, Redis keys)
// must stay bounded, and the replicas' access logs show that nothing of bob's or carol's reached them.
//
// Two real distribution replicas sharing one storage root prove the behaviour. The 20 000-start flood runs
// against scripted replicas: a real one creates a directory and files per start and manages ~250 starts a
// second on the test machine (80 s for 20 000 before the gateway adds anything), so against real
// replicas the flood is a smaller one with a smaller cap.
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import tls from "node:tls";
import { randomUUID } from "node:crypto";
import { after, before, describe, it } from "node:test";
import { Redis } from "ioredis";
import { startClusterProcess, workerOfRequest, type ClusterProcess } from "../helpers/cluster.js";
import { freePort } from "../helpers/ports.js";
import type { AccessRuleConfig } from "../../src/config/schema.js";
import { gatewayRequest, startTestGateway, type TestGateway } from "../helpers/gateway.js";
import { htpasswdLine } from "../helpers/htpasswd.js";
import { startRedis, type RedisServer } from "../helpers/redis.js";
import { accessLog, startRegistry, type Registry } from "../helpers/registry.js";
import { finishUpload, patchChunked, type UploadTarget } from "../helpers/upload.js";

const HOST = "uploads.registry.test";
const USERS = ["alice", "bob", "carol", "mallory"] as const;
type User = (typeof USERS)[number];
const RULES: AccessRuleConfig[] = [
  { who: ["alice", "carol"], repositories: ["alice/**"], actions: ["pull", "push"] },
  { who: ["bob"], repositories: ["bob/**"], actions: ["pull", "push"] },
  { who: ["mallory"], repositories: ["mallory/**"], actions: ["pull", "push"] },
];
/** Upload starts in the flood against scripted replicas (in memory; through Redis), and against real ones (with a cap of REAL_CAP). */
const FLOOD = 20_000;
const REDIS_FLOOD = 2_000;
const REAL_FLOOD = 400;
const REAL_CAP = 8;
/** Requests of the meddlers in the cluster tests: enough for both workers to serve some (fresh connections go round robin). */
const MEDDLES = 6;
const UUID_IN_LOCATION = /\/blobs\/uploads\/([^/?]+)/;

const authorization = (user: User) => `Basic ${Buffer.from(`${user}:${user}-password`).toString("base64")}`;

async function writeHtpasswd(dir: string): Promise<string> {
  const file = join(dir, "htpasswd");
  await writeFile(file, `${(await Promise.all(USERS.map((user) => htpasswdLine(user, `${user}-password`)))).join("\n")}\n`);
  return file;
}

interface Started {
  uuid: string;
  location: string;
}

/** Where requests go: an in-process gateway, or a cluster's listener. */
interface Gw {
  port: number;
  caPem: string;
}

async function startAs(gateway: Gw, user: User, repository: string): Promise<Started> {
  const res = await gatewayRequest(gateway.port, gateway.caPem, HOST, {
    method: "POST",
    path: `/v2/${repository}/blobs/uploads/`,
    headers: { "content-length": "0", authorization: authorization(user) },
  });
  assert.equal(res.status, 202, `${user}: POST ${repository} answered ${res.status} ${res.body.toString()}`);
  const location = res.headers.location!;
  return { uuid: UUID_IN_LOCATION.exec(location)![1]!, location };
}

/** `user` sends `method` for upload `uuid` under `repository`, as someone who learnt the id would (no _state). */
function meddle(gateway: Gw, user: User, method: string, repository: string, uuid: string, requestId?: string) {
  return gatewayRequest(gateway.port, gateway.caPem, HOST, {
    method,
    path: `/v2/${repository}/blobs/uploads/${uuid}`,
    headers: { "content-length": "0", authorization: authorization(user), ...(requestId ? { "x-request-id": requestId } : {}) },
  });
}

/** alice's upload goes on: a 1 MiB PATCH, then the PUT, both answered as distribution answers them. */
async function finishAsAlice(gateway: Gw, started: Started): Promise<void> {
  const target: UploadTarget = { port: gateway.port, caPem: gateway.caPem, host: HOST };
  const headers = { authorization: authorization("alice") };
  const patched = await patchChunked(target, started.location, { bytes: 1024 * 1024, headers });
  assert.equal(patched.status, 202, `alice's PATCH after the others: ${patched.status}`);
  const done = await finishUpload(target, patched.location!, patched.digest, headers);
  assert.equal(done.status, 201, `alice's PUT: ${done.status} ${done.body.toString()}`);
}

/**
 * `count` upload starts by `user`: raw HTTP/1.1 over `connections` TLS connections, pipelined 16 at a time
 * (the most the gateway queues on one connection), so the client costs little next to the gateway.
 * Resolves with the statuses answered, counted, and how long it took.
 */
async function flood(gateway: Gw, user: User, repository: string, count: number, connections = 4) {
  const request = Buffer.from(
    `POST /v2/${repository}/blobs/uploads/ HTTP/1.1\r\nHost: ${HOST}:${gateway.port}\r\nAuthorization: ${authorization(user)}\r\nContent-Length: 0\r\n\r\n`,
  );
  const statuses = new Map<number, number>();
  let sent = 0;
  const started = performance.now();
  const connection = () =>
    new Promise<void>((resolve, reject) => {
      const socket = tls.connect({ host: "127.0.0.1", port: gateway.port, ca: gateway.caPem, servername: HOST });
      let pending = 0;
      let tail = "";
      const sendBatch = () => {
        const batch = Math.min(16, count - sent);
        if (batch <= 0) return socket.end(resolve);
        sent += batch;
        pending = batch;
        socket.write(Buffer.concat(Array(batch).fill(request)));
      };
      socket.once("secureConnect", sendBatch);
      socket.on("error", reject);
      socket.on("close", () => (pending > 0 ? reject(new Error(`connection closed with ${pending} answers missing`)) : resolve()));
      socket.on("data", (chunk: Buffer) => {
        // Status lines only (the gateway's 202s have no body); the end of a read is kept for a line it cut.
        const text = tail + chunk.toString("latin1");
        let counted = 0;
        for (const match of text.matchAll(/HTTP\/1\.1 (\d{3}) /g)) {
          const status = Number(match[1]);
          statuses.set(status, (statuses.get(status) ?? 0) + 1);
          pending--;
          counted = match.index + match[0].length;
        }
        tail = text.slice(Math.max(counted, text.length - 16));
        if (pending === 0) sendBatch();
      });
    });
  await Promise.all(Array.from({ length: connections }, connection));
  return { statuses: Object.fromEntries(statuses), accepted: statuses.get(202) ?? 0, seconds: (performance.now() - started) / 1000 };
}

/** Lines of the replicas' access logs for upload `uuid`, as "METHOD STATUS". */
function linesFor(replicas: readonly Registry[], uuid: string): string[] {
  return replicas.flatMap((r) => accessLog(r).filter((line) => line.uri.includes(`/blobs/uploads/${uuid}`)).map((line) => `${line.method} ${line.status}`));
}

interface ScriptedReplica {
  url: string;
  /** Uploads this replica started and has not finished. */
  open: Set<string>;
  /** "METHOD STATUS" of every request for an upload id, by id. */
  seen: Map<string, string[]>;
  stop(): Promise<void>;
}

/**
 * A replica that answers the upload protocol as distribution does, without touching a disk: POST starts an
 * upload it alone knows, PATCH and PUT of an upload it did not start are 404 BLOB_UPLOAD_UNKNOWN.
 */
async function scriptedReplica(): Promise<ScriptedReplica> {
  const open = new Set<string>();
  const seen = new Map<string, string[]>();
  const server = http.createServer((req, res) => {
    const path = req.url!.split("?")[0]!;
    const answer = (status: number, headers: Record<string, string> = {}, body = "") => {
      res.writeHead(status, { "content-length": String(Buffer.byteLength(body)), "content-type": "application/json", ...headers }).end(body);
    };
    req.resume();
    req.on("end", () => {
      if (path === "/v2/") return answer(200, {}, "{}");
      const start = /^\/v2\/(.+)\/blobs\/uploads\/$/.exec(path);
      if (start && req.method === "POST") {
        const uuid = randomUUID();
        open.add(uuid);
        return answer(202, { location: `/v2/${start[1]}/blobs/uploads/${uuid}?_state=scripted`, "docker-upload-uuid": uuid, range: "0-0" });
      }
      const upload = /^\/v2\/(.+)\/blobs\/uploads\/([^/]+)$/.exec(path);
      if (!upload) return answer(404, {}, '{"errors":[{"code":"NAME_UNKNOWN"}]}');
      const uuid = upload[2]!;
      const known = open.has(uuid);
      const status = !known ? 404 : req.method === "PUT" ? 201 : req.method === "DELETE" ? 204 : 202;
      seen.set(uuid, [...(seen.get(uuid) ?? []), `${req.method} ${status}`]);
      if (!known) return answer(404, {}, '{"errors":[{"code":"BLOB_UPLOAD_UNKNOWN"}]}');
      if (status !== 202) open.delete(uuid);
      answer(status, status === 202 ? { location: `/v2/${upload[1]}/blobs/uploads/${uuid}?_state=scripted`, range: "0-0" } : {});
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    open,
    seen,
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** Upload keys in Redis under `prefix`, and those of `user`. */
async function redisUploadKeys(redis: RedisServer, prefix: string, user: User): Promise<{ all: string[]; theirs: string[] }> {
  const direct = new Redis(redis.url);
  try {
    const keys = await direct.keys(`${prefix}upload*`);
    for (const key of keys) assert.ok((await direct.pttl(key)) <= 3_600_000, `${key} expires within the idle time`);
    // Where an upload stands is kept beside its session (upload ranges), never without it: not counted apart.
    const all = keys.filter((key) => !key.endsWith("#progress"));
    for (const key of keys) if (key.endsWith("#progress")) assert.ok(all.includes(key.slice(0, -"#progress".length)), `${key} beside its session`);
    return { all, theirs: all.filter((key) => key.includes(`"${user}"`)) };
  } finally {
    direct.disconnect();
  }
}

/** The site: replicas, and the users of RULES. */
function site(replicas: readonly { url: string }[], htpasswd: string) {
  return { name: "uploads", hosts: [HOST], backends: replicas.map((r) => r.url), auth: { type: "htpasswd" as const, htpasswd, rules: RULES } };
}

/** Replicas, a Redis, and two gateways in front of them: one keeping upload affinity in memory, one in Redis. */
interface Fixture<R> {
  replicas: R[];
  redis: RedisServer;
  gateway: TestGateway;
  shared: TestGateway;
  stop(): Promise<void>;
}

async function startFixture<R extends { url: string; stop(): Promise<void> }>(
  startReplicas: (dir: string) => Promise<R[]>,
  limits: { uploadsPerUser?: number },
): Promise<Fixture<R>> {
  const dir = await mkdtemp(join(tmpdir(), "rg-upload-sessions-"));
  const [replicas, redis, htpasswd] = await Promise.all([startReplicas(dir), startRedis(), writeHtpasswd(dir)]);
  const config = { sites: [site(replicas, htpasswd)], limits, log: { level: "info" as const, access: false } };
  const [gateway, shared] = await Promise.all([startTestGateway(config), startTestGateway({ ...config, redis: { url: redis.url, keyPrefix: "gw:" } })]);
  return {
    replicas,
    redis,
    gateway,
    shared,
    async stop() {
      await Promise.all([gateway.stop(), shared.stop()]);
      await Promise.all([...replicas.map((r) => r.stop()), redis.stop()]);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Two real distribution replicas sharing one storage root under `dir`, each signing _state with its own secret. */
function realReplicas(dir: string): Promise<Registry[]> {
  return Promise.all(["a", "b"].map((name) => startRegistry({ rootDir: join(dir, "storage"), secret: `secret-${name}-0123456789`, accessLog: true })));
}

describe("upload sessions belong to their starter: real distribution replicas", () => {
  /** gateway: upload affinity in memory; shared: in Redis. */
  let f: Fixture<Registry>;

  before(async () => {
    f = await startFixture(realReplicas, { uploadsPerUser: REAL_CAP });
  });

  after(() => f?.stop());

  it(`one user's ${REAL_FLOOD} upload starts leave another user's upload in flight working; the gateway holds limits.uploadsPerUser of theirs`, async () => {
    const alice = await startAs(f.gateway, "alice", "alice/app");
    assert.equal((await flood(f.gateway, "mallory", "mallory/app", REAL_FLOOD)).accepted, REAL_FLOOD);
    assert.equal(f.gateway.uploadSessions(), REAL_CAP + 1);
    await finishAsAlice(f.gateway, alice);
    assert.deepEqual(linesFor(f.replicas, alice.uuid).sort(), ["PATCH 202", "PUT 201"]);
  });

  it("another user's DELETE, PATCH, GET or PUT with a known upload id is answered BLOB_UPLOAD_UNKNOWN, forwarded nowhere, and leaves the upload working", async () => {
    const alice = await startAs(f.gateway, "alice", "alice/app");
    const attempts: [User, string, string][] = [
      ["bob", "DELETE", "bob/app"], // push on bob/** only: alice's id under his own repository
      ["bob", "PATCH", "bob/app"],
      ["bob", "GET", "bob/app"],
      ["carol", "DELETE", "alice/app"], // push on alice/** too: still not hers
      ["carol", "PUT", "alice/app"],
    ];
    for (const [user, method, repository] of attempts) {
      const res = await meddle(f.gateway, user, method, repository, alice.uuid);
      assert.equal(res.status, 404, `${user} ${method} ${repository}: ${res.status} ${res.body.toString()}`);
      assert.equal(res.json().errors[0].code, "BLOB_UPLOAD_UNKNOWN");
    }
    // Again, as once per worker of a cluster.
    for (let i = 0; i < 3; i++) assert.equal((await meddle(f.gateway, "bob", "DELETE", "bob/app", alice.uuid)).status, 404);
    assert.deepEqual(linesFor(f.replicas, alice.uuid), [], "none of it reached a replica");
    await finishAsAlice(f.gateway, alice);
    assert.deepEqual(linesFor(f.replicas, alice.uuid).sort(), ["PATCH 202", "PUT 201"]);
  });

  it("the starter's DELETE answered 204 ends the session; one answered 404 by the replica does not", async () => {
    const alice = await startAs(f.gateway, "alice", "alice/app");
    // Without its _state distribution answers 404 (BLOB_UPLOAD_INVALID): the session stays.
    assert.equal((await meddle(f.gateway, "alice", "DELETE", "alice/app", alice.uuid)).status, 404);
    const url = new URL(alice.location);
    const cancelled = await f.gateway.request(HOST, { method: "DELETE", path: url.pathname + url.search, headers: { authorization: authorization("alice") } });
    assert.equal(cancelled.status, 204, cancelled.body.toString());
    const status = await meddle(f.gateway, "alice", "GET", "alice/app", alice.uuid);
    assert.equal(status.status, 404);
    assert.match(status.body.toString(), /not known to the gateway/);
    assert.deepEqual(linesFor(f.replicas, alice.uuid), ["DELETE 404", "DELETE 204"]);
  });

  it(`with Redis: one user's ${REAL_FLOOD} starts leave limits.uploadsPerUser sessions of theirs in Redis; another user's DELETE changes nothing`, async () => {
    const alice = await startAs(f.shared, "alice", "alice/app");
    assert.equal((await flood(f.shared, "mallory", "mallory/app", REAL_FLOOD)).accepted, REAL_FLOOD);
    const keys = await redisUploadKeys(f.redis, "gw:", "mallory");
    // Their sessions and the set naming them.
    assert.equal(keys.theirs.length, REAL_CAP + 1, keys.theirs.join("\n"));
    for (let i = 0; i < 3; i++) assert.equal((await meddle(f.shared, "bob", "DELETE", "bob/app", alice.uuid)).status, 404);
    assert.equal((await meddle(f.shared, "carol", "DELETE", "alice/app", alice.uuid)).status, 404);
    assert.deepEqual(linesFor(f.replicas, alice.uuid), []);
    await finishAsAlice(f.shared, alice);
  });
});

describe("upload sessions under a flood of upload starts (scripted replicas, the default cap)", () => {
  let f: Fixture<ScriptedReplica>;
  const DEFAULT_CAP = 64;

  before(async () => {
    f = await startFixture(() => Promise.all([scriptedReplica(), scriptedReplica()]), {});
  });

  after(() => f?.stop());

  /** alice's upload, started before the flood, went to one replica only and finished there. */
  function assertFinishedOnOne(uuid: string): void {
    assert.deepEqual(
      f.replicas.map((r) => r.seen.get(uuid) ?? []).sort((a, b) => b.length - a.length),
      [["PATCH 202", "PUT 201"], []],
    );
  }

  it(`in memory: after one user's ${FLOOD} starts another user's upload in flight finishes, and the gateway holds the default cap's 64 of the flooder's sessions`, async (t) => {
    const alice = await startAs(f.gateway, "alice", "alice/app");
    const cpu = process.cpuUsage();
    const { accepted, seconds } = await flood(f.gateway, "mallory", "mallory/app", FLOOD);
    const { user, system } = process.cpuUsage(cpu);
    // This process is the client, the gateway and the replicas: CPU per start is what the machine's load does not change.
    t.diagnostic(`${FLOOD} upload starts in ${seconds.toFixed(1)} s, ${((user + system) / 1000 / FLOOD).toFixed(2)} ms of CPU each`);
    assert.equal(accepted, FLOOD);
    assert.equal(f.gateway.uploadSessions(), DEFAULT_CAP + 1);
    await finishAsAlice(f.gateway, alice);
    assertFinishedOnOne(alice.uuid);
  });

  it(`in Redis: after one user's ${REDIS_FLOOD} starts another user's upload in flight finishes, and Redis holds 64 sessions of the flooder's and their set`, async (t) => {
    const alice = await startAs(f.shared, "alice", "alice/app");
    const { accepted, seconds } = await flood(f.shared, "mallory", "mallory/app", REDIS_FLOOD);
    t.diagnostic(`${REDIS_FLOOD} upload starts through Redis in ${seconds.toFixed(1)} s`);
    assert.equal(accepted, REDIS_FLOOD);
    const keys = await redisUploadKeys(f.redis, "gw:", "mallory");
    assert.equal(keys.theirs.length, DEFAULT_CAP + 1);
    assert.equal(keys.all.length, DEFAULT_CAP + 1 + 2, keys.all.filter((key) => !keys.theirs.includes(key)).join("\n"));
    await finishAsAlice(f.shared, alice);
    assertFinishedOnOne(alice.uuid);
  });
});

for (const store of ["the primary", "Redis"] as const) {
  describe(`upload sessions with workers: 2 (affinity in ${store})`, () => {
    let dir: string;
    let replicas: Registry[];
    let redis: RedisServer | undefined;
    let cluster: ClusterProcess;
    let gw: Gw;

    before(async () => {
      dir = await mkdtemp(join(tmpdir(), "rg-upload-workers-"));
      const configPath = join(dir, "gateway.yaml");
      let htpasswd: string;
      let ports: number[];
      [replicas, redis, htpasswd, ports] = await Promise.all([
        realReplicas(dir),
        store === "Redis" ? startRedis() : undefined,
        writeHtpasswd(dir),
        Promise.all([freePort(), freePort()]),
      ]);
      const config = {
        listen: `127.0.0.1:${ports[0]}`,
        admin: { listen: `127.0.0.1:${ports[1]}` },
        dataDir: join(dir, "data"),
        workers: 2,
        limits: { uploadsPerUser: REAL_CAP },
        ...(redis ? { redis: { url: redis.url } } : {}),
        sites: [site(replicas, htpasswd)],
      };
      await writeFile(configPath, JSON.stringify(config));
      cluster = await startClusterProcess(configPath);
      gw = { port: cluster.httpsPort, caPem: await readFile(cluster.caFile!, "utf8") };
    });

    after(async () => {
      await cluster?.process.stop(15_000);
      await Promise.all([...(replicas ?? []).map((r) => r.stop()), redis?.stop()]);
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    it("another user's DELETE with a known upload id, sent to every worker, leaves the upload working; one user's flood leaves it too", async () => {
      const alice = await startAs(gw, "alice", "alice/app");
      const served = new Set<number>();
      for (let i = 0; i < MEDDLES; i++) {
        const id = `meddle-${store.replace(/\W/g, "")}-${i}`;
        const [user, repository] = i % 2 ? (["carol", "alice/app"] as const) : (["bob", "bob/app"] as const);
        const res = await meddle(gw, user, "DELETE", repository, alice.uuid, id);
        assert.equal(res.status, 404, `${user}: ${res.body.toString()}`);
        served.add(await workerOfRequest(cluster, id));
      }
      assert.deepEqual([...served].sort(), [1, 2], "both workers were sent the DELETEs");
      assert.deepEqual(linesFor(replicas, alice.uuid), [], "none of it reached a replica");
      assert.equal((await flood(gw, "mallory", "mallory/app", 100, 2)).accepted, 100);
      await finishAsAlice(gw, alice);
      assert.deepEqual(linesFor(replicas, alice.uuid).sort(), ["PATCH 202", "PUT 201"]);
    });
  });
}
