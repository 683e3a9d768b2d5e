// A reload keeps what the gateway has counted while the settings it was counted under stay: a refused pull
// stays refused and a password guesser's failures stay counted after a reload with the same limits, in one
// process and in a cluster (where the primary keeps the counts). A reload that changes a limit starts that
// limit afresh, and only that one. No Redis: the counts live in process memory.
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { gatewayConfig, type GatewayConfigInput } from "../../src/config/schema.js";
import { httpsCall, startClusterProcess, type ClusterProcess } from "../helpers/cluster.js";
import { startTestGateway, type TestGateway } from "../helpers/gateway.js";
import { htpasswdLine } from "../helpers/htpasswd.js";
import { OCI_MANIFEST } from "../helpers/oci.js";
import { freePort } from "../helpers/ports.js";
import { waitFor } from "../helpers/process.js";
import { startRegistry, type Registry } from "../helpers/registry.js";
import { pushTinyImage, type TinyImage } from "../helpers/seed.js";

const HUB = "hub.registry.test";
const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;

/** What a test does to a gateway, whichever way it runs. */
interface Driver {
  get(path: string, headers: Record<string, string>): Promise<{ status: number; digest?: string }>;
  /** Reloads with `limits` (the same file again when unchanged) and waits until it is in service. */
  reload(limits: Limits): Promise<void>;
}

interface Limits {
  pullsPerMinute: number;
  /** Failed logins per user and address a minute. */
  maxFailures: number;
}

const SAME: Limits = { pullsPerMinute: 1, maxFailures: 2 };

describe("a reload keeps counts while their limits stay", () => {
  let dir: string;
  let htpasswd: string;
  let registry: Registry;
  let image: TinyImage;

  const configFor = ({ pullsPerMinute, maxFailures }: Limits): Pick<GatewayConfigInput, "sites" | "logins"> => ({
    // The per-address and per-network budgets stay out of the way: the per-user one is what is counted here.
    logins: { maxFailures, per: "1m", maxFailuresPerAddress: 1000, maxFailuresPerNetwork: 1000 },
    sites: [
      {
        name: "hub",
        hosts: [HUB],
        backend: registry.url,
        auth: { type: "htpasswd", htpasswd, rules: [{ who: ["alice"], repositories: ["**"], actions: ["pull"] }] },
        limits: [{ name: "pulls", operations: ["pull"], rate: pullsPerMinute, per: "1m", burst: pullsPerMinute }],
      },
    ],
  });

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "rg-reload-state-"));
    htpasswd = join(dir, "htpasswd");
    await writeFile(htpasswd, `${await htpasswdLine("alice", "Alice123")}\n`);
    registry = await startRegistry();
    image = await pushTinyImage(registry.url, "hub/app", "v1", "reload-state-seed");
  });

  after(async () => {
    await registry?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  /** The same story in one process and in a cluster. */
  async function keepsCountsAcrossReloads(gateway: Driver): Promise<void> {
    const pull = () => gateway.get(`/v2/${image.repository}/manifests/${image.tag}`, { accept: OCI_MANIFEST, authorization: basic("alice", "Alice123") });
    const guess = (n: number) => gateway.get("/v2/", { authorization: basic("mallory", `guess-${n}`) });

    const first = await pull();
    assert.deepEqual(first, { status: 200, digest: image.manifestDigest });
    assert.equal((await pull()).status, 429, "1 pull a minute");
    assert.deepEqual([(await guess(1)).status, (await guess(2)).status], [401, 401]);

    await gateway.reload(SAME);
    assert.equal((await pull()).status, 429, "the same limit after a reload: still refused");
    assert.equal((await guess(3)).status, 429, "the failures before the reload still count");

    await gateway.reload({ ...SAME, pullsPerMinute: 2 });
    assert.deepEqual(await pull(), { status: 200, digest: image.manifestDigest }, "a changed pull limit starts afresh");
    assert.equal((await guess(4)).status, 429, "the login budget did not change: its count stays");

    await gateway.reload({ pullsPerMinute: 2, maxFailures: 3 });
    assert.deepEqual([(await pull()).status, (await pull()).status], [200, 429], "the pull limit is as before this reload: its count stays");
    assert.equal((await guess(5)).status, 401, "a changed login budget starts afresh");
  }

  it("in one process (workers: 1)", async () => {
    let gateway: TestGateway | undefined;
    try {
      gateway = await startTestGateway({ workers: 1, ...configFor(SAME) });
      const started = gateway;
      await keepsCountsAcrossReloads({
        async get(path, headers) {
          const res = await started.request(HUB, { path, headers });
          return { status: res.status, ...(res.status === 200 && path.includes("/manifests/") ? { digest: String(res.headers["docker-content-digest"]) } : {}) };
        },
        async reload(limits) {
          const config = gatewayConfig.parse({ listen: "127.0.0.1:0", admin: { listen: "127.0.0.1:0" }, log: { level: "debug" }, workers: 1, dataDir: started.dataDir, ...configFor(limits) });
          const outcome = await started.reload(config);
          assert.equal(outcome.ok, true, JSON.stringify(outcome));
        },
      });
    } finally {
      await gateway?.stop();
    }
  });

  it("in a cluster (workers: 2): the primary's counts follow the same rule", async () => {
    const configPath = join(dir, "gateway.yaml");
    const [httpsPort, adminPort] = await Promise.all([freePort(), freePort()]);
    // JSON is YAML: the same configuration as the in-process test, as a file.
    const write = (limits: Limits) =>
      writeFile(configPath, JSON.stringify({ listen: `127.0.0.1:${httpsPort}`, admin: { listen: `127.0.0.1:${adminPort}` }, dataDir: join(dir, "data"), workers: 2, ...configFor(limits) }));
    await write(SAME);
    let gateway: ClusterProcess | undefined;
    try {
      gateway = await startClusterProcess(configPath);
      const started = gateway;
      const ca = await readFile(started.caFile!, "utf8");
      await keepsCountsAcrossReloads({
        async get(path, headers) {
          // A fresh connection each: the primary hands them to both workers in turn.
          const res = await httpsCall({ port: httpsPort, ca, host: HUB, path, headers });
          return { status: res.status, ...(res.status === 200 && path.includes("/manifests/") ? { digest: String(res.headers["docker-content-digest"]) } : {}) };
        },
        async reload(limits) {
          await write(limits);
          const reloads = started.lines("configuration reloaded in every worker").length;
          process.kill(started.process.pid, "SIGHUP");
          await waitFor(() => started.lines("configuration reloaded in every worker").length > reloads, { timeoutMs: 20_000, what: "the cluster's reload" });
        },
      });
    } finally {
      await gateway?.process.stop(10_000);
    }
  });
});
