// The fleet under test, all on loopback: Redis, a pool of three distribution replicas sharing one storage,
// a hosted registry and a mirror (the group), three gateways (`workers: 2` each) sharing a data directory,
// HAProxy in front (mode tcp, round robin), and pebble when certificates live in Redis.
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import { join } from "node:path";
import { cli, startGatewayProcess, type GatewayProcess } from "../test/helpers/cli.js";
import { workerPids } from "../test/helpers/cluster.js";
import { hostsFile } from "../test/helpers/clients.js";
import { startHaproxy, type Haproxy } from "../test/helpers/haproxy.js";
import { htpasswdLine } from "../test/helpers/htpasswd.js";
import { startPebble, type Pebble } from "../test/helpers/pebble.js";
import { freePort } from "../test/helpers/ports.js";
import { startRedis, type RedisServer } from "../test/helpers/redis.js";
import { startRegistry, type Registry } from "../test/helpers/registry.js";
import { ACME_HOST, HUB, TEAM, USERS, fleetConfig, type FleetConfigInput } from "./gateway-config.js";

export const GATEWAYS = 3;
export const REPLICAS = 3;
/** Admin actions (reload, cert rotate) of every gateway; set in each one's environment and the CLI's. */
const ADMIN_TOKEN = `soak-${randomBytes(12).toString("hex")}`;
/** Seals the private keys the gateways keep in Redis (tls.store: redis). */
const TLS_STORE_KEY = randomBytes(32).toString("base64");
export const GATEWAY_ENV: NodeJS.ProcessEnv = { GATEWAY_ADMIN_TOKEN: ADMIN_TOKEN, GATEWAY_TLS_STORE_KEY: TLS_STORE_KEY };

export interface GatewaySlot {
  index: number;
  configPath: string;
  dataDir: string;
  httpsPort: number;
  adminPort: number;
  current: GatewayProcess;
}

export interface Fleet {
  dir: string;
  caPem: string;
  caFile: string;
  /** /etc/hosts for the clients' namespaces: every test name → 127.0.0.1. */
  hosts: string;
  /** HAProxy's port: what every client talks to. */
  port: number;
  redis: RedisServer;
  replicas: Registry[];
  hosted: Registry;
  mirror: Registry;
  gateways: GatewaySlot[];
  haproxy: Haproxy;
  pebble: Pebble;
  /** Where the blobs of a site's pushes are stored: `<root>/docker/registry/v2/blobs/…`. */
  storageOf(site: "hub" | "team"): string;
  /** Rewrites every gateway's file (and the htpasswd file) for a reload. */
  writeConfigs(change?: { pullRate?: number; newcomer?: boolean; broken?: string }): Promise<void>;
  startGateway(index: number): Promise<GatewayProcess>;
  /** SIGKILL one replica, leave it down `downMs`, start it again on its port and storage. */
  restartReplica(index: number, downMs: number): Promise<string>;
  adminToken: string;
  /** The environment gateways and the CLI run with. */
  env: NodeJS.ProcessEnv;
  /** Primaries and workers of every gateway, now. */
  gatewayPids(): Promise<number[]>;
  registryPorts(): number[];
  stop(): Promise<void>;
}

const REPLICA_SECRETS = Array.from({ length: REPLICAS }, () => randomBytes(16).toString("hex"));
export const INITIAL_PULL_RATE = 20_000;

async function writeHtpasswd(file: string, withNewcomer: boolean): Promise<void> {
  const users = Object.entries(USERS).filter(([user]) => withNewcomer || user !== "newcomer");
  const lines = await Promise.all(users.map(([user, password]) => htpasswdLine(user, password)));
  await writeFile(file, `${lines.join("\n")}\n`);
}

export async function startFleet(): Promise<Fleet> {
  const dir = await mkdtemp(join(tmpdir(), "rg-soak-"));
  try {
    return await startFleetIn(dir);
  } catch (err) {
    // Processes already started are killed when this process exits (test/helpers/process.ts).
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

type SharedConfig = Omit<FleetConfigInput, "dataDir" | "httpsPort" | "adminPort" | "pullRate">;

/** Writes each gateway's file from the shared part and its own ports, and the htpasswd file with it. */
function configWriter(shared: SharedConfig, gateways: readonly GatewaySlot[]): Fleet["writeConfigs"] {
  return async (change = {}) => {
    await writeHtpasswd(shared.htpasswdFile, change.newcomer ?? false);
    for (const slot of gateways) {
      const text = change.broken ?? fleetConfig({ ...shared, dataDir: slot.dataDir, httpsPort: slot.httpsPort, adminPort: slot.adminPort, pullRate: change.pullRate ?? INITIAL_PULL_RATE });
      await writeFile(slot.configPath, text);
    }
  };
}

async function startFleetIn(dir: string): Promise<Fleet> {
  const poolRoot = join(dir, "pool");
  await mkdir(poolRoot);
  const htpasswdFile = join(dir, "htpasswd");
  await writeHtpasswd(htpasswdFile, false);
  const redis = await startRedis();
  const [hosted, mirror, ...replicas] = await Promise.all([startRegistry(), startRegistry(), ...REPLICA_SECRETS.map((secret) => startRegistry({ rootDir: poolRoot, secret }))]);
  const balancerPort = await freePort();
  // TLS-ALPN-01 is validated on the balancer's port, whichever gateway it reaches: that is what a fleet
  // sharing its ACME challenge answers in Redis must get right.
  const pebble = await startPebble({ httpPort: await freePort(), tlsPort: balancerPort, certificateValiditySeconds: 3600 });
  const gateways: GatewaySlot[] = [];
  for (let index = 0; index < GATEWAYS; index++) {
    // A data directory each, as on separate machines: certificates, the CA and ACME state reach the others
    // only through Redis.
    gateways.push({ index, configPath: join(dir, `gateway-${index}.yaml`), dataDir: join(dir, `data-${index}`), httpsPort: await freePort(), adminPort: await freePort(), current: undefined as never });
  }
  const writeConfigs = configWriter({ redisUrl: redis.url, htpasswdFile, replicaUrls: replicas.map((r) => r.url), hostedUrl: hosted.url, mirrorUrl: mirror.url, acme: { directoryUrl: pebble.directoryUrl, caFile: pebble.caFile } }, gateways);
  await writeConfigs();
  const startGateway = async (index: number) => {
    const slot = gateways[index]!;
    slot.current = await startGatewayProcess(slot.configPath, GATEWAY_ENV, { timeoutMs: 120_000, keepLines: 2000 });
    return slot.current;
  };
  // The balancer first: ACME validation reaches the gateways through it from their first order on.
  const haproxy = await startHaproxy([{ port: balancerPort, servers: gateways.map((g) => g.httpsPort) }]);
  // The first creates the CA in Redis; the others find it there.
  await startGateway(0);
  await Promise.all(gateways.slice(1).map((slot) => startGateway(slot.index)));
  const caFile = gateways[0]!.current.caFile!;
  const fleet: Fleet = {
    dir,
    caPem: await readFile(caFile, "utf8"),
    caFile,
    hosts: await hostsFile(dir, { [HUB]: "127.0.0.1", [TEAM]: "127.0.0.1", [ACME_HOST]: "127.0.0.1" }),
    port: balancerPort,
    redis,
    replicas,
    hosted,
    mirror,
    gateways,
    haproxy,
    pebble,
    adminToken: ADMIN_TOKEN,
    env: GATEWAY_ENV,
    storageOf: (site) => join(site === "hub" ? poolRoot : hosted.rootDir, "storage"),
    writeConfigs,
    startGateway,
    async restartReplica(index, downMs) {
      const { port, process: victim } = replicas[index]!;
      await victim.stop(0);
      await sleep(downMs);
      replicas[index] = await startRegistry({ port, rootDir: poolRoot, secret: REPLICA_SECRETS[index] });
      return `SIGKILL replica ${index + 1} of ${REPLICAS} (pid ${victim.pid}, :${port}), restarted after ${downMs} ms`;
    },
    async gatewayPids() {
      const live = gateways.map((g) => g.current.process).filter((p) => !p.exitStatus);
      const workers = await Promise.all(live.map((p) => workerPids(p.pid)));
      return [...live.map((p) => p.pid), ...workers.flat()];
    },
    registryPorts: () => [...replicas, hosted, mirror].map((r) => r.port),
    stop: () => stopFleet(fleet, dir),
  };
  return fleet;
}

async function stopFleet(fleet: Fleet, dir: string): Promise<void> {
  await fleet.haproxy.stop().catch(() => undefined);
  await Promise.all(fleet.gateways.map((g) => g.current?.process.stop(15_000)));
  await Promise.all([...fleet.replicas, fleet.hosted, fleet.mirror].map((r) => r.stop()));
  await fleet.redis.stop();
  await fleet.pebble?.stop();
  await rm(dir, { recursive: true, force: true });
}
