// Upload sessions to replicas belong to the user who started them. Two real distribution replicas share
// one storage root behind a site with htpasswd users: alice pushes alice/**, bob bob/**, carol alice/** too,
// mallory mallory/**. mallory floods upload starts, bob and carol send requests with alice's upload id
// (which is no secret: Docker-Upload-UUID); alice's upload in flight must finish whatever they do, what the
// gateway holds (its memory, Redis keys) must stay bounded, and the replicas' access logs show that nothing
// of bob's or carol's reached them.
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import https from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Redis } from "ioredis";
import type { AccessRuleConfig } from "../../src/config/schema.js";
import { startTestGateway, type TestGateway } from "../helpers/gateway.js";
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
const FLOOD = 20_000;
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

async function startAs(gateway: TestGateway, user: User, repository: string): Promise<Started> {
  const res = await gateway.request(HOST, {
    method: "POST",
    path: `/v2/${repository}/blobs/uploads/`,
    headers: { "content-length": "0", authorization: authorization(user) },
  });
  assert.equal(res.status, 202, `${user}: POST ${repository} answered ${res.status} ${res.body.toString()}`);
  const location = res.headers.location!;
  return { uuid: UUID_IN_LOCATION.exec(location)![1]!, location };
}

/** `user` sends `method` for upload `uuid` under `repository`, as someone who learnt the id would (no _state). */
function meddle(gateway: TestGateway, user: User, method: string, repository: string, uuid: string) {
  return gateway.request(HOST, {
    method,
    path: `/v2/${repository}/blobs/uploads/${uuid}`,
    headers: { "content-length": "0", authorization: authorization(user) },
  });
}

/** alice's upload goes on: a 1 MiB PATCH, then the PUT, both answered as distribution answers them. */
async function finishAsAlice(gateway: TestGateway, started: Started): Promise<void> {
  const target: UploadTarget = { port: gateway.port, caPem: gateway.caPem, host: HOST };
  const headers = { authorization: authorization("alice") };
  const patched = await patchChunked(target, started.location, { bytes: 1024 * 1024, headers });
  assert.equal(patched.status, 202, `alice's PATCH after the others: ${patched.status}`);
  const done = await finishUpload(target, patched.location!, patched.digest, headers);
  assert.equal(done.status, 201, `alice's PUT: ${done.status} ${done.body.toString()}`);
}

/**
 * `count` upload starts by `user`, on `connections` keep-alive connections at once; resolves with how many
 * were answered 202 and how long they took.
 */
async function flood(gateway: TestGateway, user: User, repository: string, count: number, connections = 8) {
  const agent = new https.Agent({ keepAlive: true, maxSockets: connections });
  let next = 0;
  let accepted = 0;
  const started = performance.now();
  const post = () =>
    new Promise<number>((resolve, reject) => {
      const req = https.request(
        {
          host: "127.0.0.1",
          port: gateway.port,
          method: "POST",
          path: `/v2/${repository}/blobs/uploads/`,
          servername: HOST,
          ca: gateway.caPem,
          agent,
          headers: { host: `${HOST}:${gateway.port}`, "content-length": "0", authorization: authorization(user) },
        },
        (res) => {
          res.resume();
          res.on("end", () => resolve(res.statusCode ?? 0));
          res.on("error", reject);
        },
      );
      req.on("error", reject);
      req.end();
    });
  try {
    await Promise.all(
      Array.from({ length: connections }, async () => {
        while (next < count) {
          next++;
          if ((await post()) === 202) accepted++;
        }
      }),
    );
  } finally {
    agent.destroy();
  }
  return { accepted, seconds: (performance.now() - started) / 1000 };
}

/** Lines of the replicas' access logs for upload `uuid`, as "METHOD STATUS". */
function linesFor(replicas: readonly Registry[], uuid: string): string[] {
  return replicas.flatMap((r) => accessLog(r).filter((line) => line.uri.includes(`/blobs/uploads/${uuid}`)).map((line) => `${line.method} ${line.status}`));
}

describe("upload sessions belong to their starter (sites with replicas)", () => {
  let dir: string;
  let storage: string;
  let replicas: Registry[];
  let redis: RedisServer;
  let htpasswd: string;
  let gateway: TestGateway;
  let shared: TestGateway;

  const site = () => ({
    name: "uploads",
    hosts: [HOST],
    backends: replicas.map((r) => r.url),
    auth: { type: "htpasswd" as const, htpasswd, rules: RULES },
  });

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "rg-upload-sessions-"));
    storage = join(dir, "storage");
    [replicas, redis, htpasswd] = await Promise.all([
      Promise.all(["a", "b"].map((name) => startRegistry({ rootDir: storage, secret: `secret-${name}-0123456789`, accessLog: true }))),
      startRedis(),
      writeHtpasswd(dir),
    ]);
    [gateway, shared] = await Promise.all([
      startTestGateway({ sites: [site()], log: { level: "info", access: false } }),
      startTestGateway({ sites: [site()], log: { level: "info", access: false }, redis: { url: redis.url, keyPrefix: "gw:" } }),
    ]);
  });

  after(async () => {
    await Promise.all([gateway?.stop(), shared?.stop()]);
    await Promise.all([...(replicas ?? []).map((r) => r.stop()), redis?.stop()]);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it(`one user's ${FLOOD} upload starts leave another user's upload in flight working, and the gateway holds at most limits.uploadsPerUser of theirs`, async (t) => {
    const alice = await startAs(gateway, "alice", "alice/app");
    const { accepted, seconds } = await flood(gateway, "mallory", "mallory/app", FLOOD);
    t.diagnostic(`${FLOOD} upload starts in ${seconds.toFixed(1)} s (${Math.round(FLOOD / seconds)}/s)`);
    assert.equal(accepted, FLOOD);
    // The default cap (64) for mallory, plus alice's one.
    assert.equal(gateway.uploadSessions(), 65);
    await finishAsAlice(gateway, alice);
  });

  it("another user's DELETE, PATCH or PUT with a known upload id is answered BLOB_UPLOAD_UNKNOWN, forwarded nowhere, and leaves the upload working", async () => {
    const alice = await startAs(gateway, "alice", "alice/app");
    const attempts: [User, string, string][] = [
      ["bob", "DELETE", "bob/app"], // push on bob/** only: alice's id under his own repository
      ["bob", "PATCH", "bob/app"],
      ["bob", "GET", "bob/app"],
      ["carol", "DELETE", "alice/app"], // push on alice/** too: still not hers
      ["carol", "PUT", "alice/app"],
    ];
    for (const [user, method, repository] of attempts) {
      const res = await meddle(gateway, user, method, repository, alice.uuid);
      assert.equal(res.status, 404, `${user} ${method} ${repository}: ${res.status} ${res.body.toString()}`);
      assert.equal(res.json().errors[0].code, "BLOB_UPLOAD_UNKNOWN");
    }
    // Each again, as if to every worker of a cluster.
    for (let i = 0; i < 3; i++) assert.equal((await meddle(gateway, "bob", "DELETE", "bob/app", alice.uuid)).status, 404);
    assert.deepEqual(linesFor(replicas, alice.uuid), [], "none of it reached a replica");
    await finishAsAlice(gateway, alice);
    assert.deepEqual(linesFor(replicas, alice.uuid).sort(), ["PATCH 202", "PUT 201"]);
  });

  it("the owner's own DELETE ends the session; a 404 from the replica does not", async () => {
    const alice = await startAs(gateway, "alice", "alice/app");
    // Without its _state distribution answers 404 (BLOB_UPLOAD_INVALID): the session stays.
    const stateless = await meddle(gateway, "alice", "DELETE", "alice/app", alice.uuid);
    assert.equal(stateless.status, 404);
    const cancelled = await gateway.request(HOST, { method: "DELETE", path: new URL(alice.location).pathname + new URL(alice.location).search, headers: { authorization: authorization("alice") } });
    assert.equal(cancelled.status, 204, cancelled.body.toString());
    const after = await meddle(gateway, "alice", "GET", "alice/app", alice.uuid);
    assert.equal(after.status, 404);
    assert.match(after.body.toString(), /not known to the gateway/);
  });

  it(`with Redis: one user's ${FLOOD} upload starts leave at most limits.uploadsPerUser keys of theirs, and another user's upload and DELETE change nothing`, async (t) => {
    const alice = await startAs(shared, "alice", "alice/app");
    const { accepted, seconds } = await flood(shared, "mallory", "mallory/app", FLOOD);
    t.diagnostic(`${FLOOD} upload starts through Redis in ${seconds.toFixed(1)} s`);
    assert.equal(accepted, FLOOD);
    const direct = new Redis(redis.url);
    try {
      const keys = await direct.keys("gw:upload*");
      const mallorys = keys.filter((key) => key.includes('"mallory"'));
      // 64 sessions and the set naming them.
      assert.equal(mallorys.length, 65, `${mallorys.length} keys of mallory's`);
      assert.ok(keys.length <= 65 + 2 + 2, `${keys.length} upload keys in Redis`);
      for (const key of keys) assert.ok((await direct.pttl(key)) <= 3_600_000, `${key} expires within the idle time`);
    } finally {
      direct.disconnect();
    }
    for (let i = 0; i < 3; i++) assert.equal((await meddle(shared, "bob", "DELETE", "bob/app", alice.uuid)).status, 404);
    assert.equal((await meddle(shared, "carol", "DELETE", "alice/app", alice.uuid)).status, 404);
    await finishAsAlice(shared, alice);
  });
});
