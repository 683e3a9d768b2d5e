// Which TLS store a configuration uses, and one open store per process for each: `tls.store`, else
// `redis` when the top-level redis block is configured and a store key is given, else `files`.
// The Redis store's key comes from the environment (GATEWAY_TLS_STORE_KEY) or a file (tls.storeKeyFile),
// never from the configuration itself, which is often committed or shared.
import { hostname } from "node:os";
import { readFile } from "node:fs/promises";
import type { GatewayConfig, RedisConfig } from "../config/schema.js";
import { ResourcePool } from "../process/resources.js";
import { Sealer } from "./sealing.js";
import { FilesTlsStore, type TlsStore, type TlsStoreKind } from "./tls-store.js";

export const STORE_KEY_ENV = "GATEWAY_TLS_STORE_KEY";
/** Test-only timings (JSON, FleetTimings's fields): production uses the defaults. */
export const STORE_TIMINGS_ENV = "RG_TEST_TLS_STORE_TIMINGS";

export interface FleetTimings {
  /** How often a gateway compares what it serves with the store (besides the notices). */
  checkMs: number;
  /** The ACME order lock's lease; undefined: the ACME manager's staleMs. */
  orderLeaseMs?: number;
  ackWaitMs: number;
  /** The ACME manager's first retry delay after a failure (tests: seconds, not minutes). */
  acmeRetryMs?: number;
  /** How often the ACME manager re-checks a pending challenge (tests: faster than pebble's default). */
  acmePollMs?: number;
}

export function fleetTimings(env: NodeJS.ProcessEnv = process.env): FleetTimings {
  const given = env[STORE_TIMINGS_ENV] ? (JSON.parse(env[STORE_TIMINGS_ENV]!) as Partial<FleetTimings>) : {};
  return { checkMs: 30_000, ackWaitMs: 5000, ...given };
}

export type TlsStoreSettings = { kind: "files"; dataDir: string } | { kind: "redis"; dataDir: string; redis: RedisConfig; keyFile?: string };

/** The store kind a configuration asks for; the key is only checked when the store is opened. */
export function tlsStoreKind(config: Pick<GatewayConfig, "tls" | "redis">, env: NodeJS.ProcessEnv = process.env): TlsStoreKind {
  if (config.tls.store) return config.tls.store;
  // Without a key the certificates could not be sealed: a gateway that only shares rate limits keeps its files.
  return config.redis && (env[STORE_KEY_ENV] || config.tls.storeKeyFile) ? "redis" : "files";
}

export function tlsStoreSettings(config: Pick<GatewayConfig, "tls" | "redis" | "dataDir">, env: NodeJS.ProcessEnv = process.env): TlsStoreSettings {
  if (tlsStoreKind(config, env) === "files" || !config.redis) return { kind: "files", dataDir: config.dataDir };
  return { kind: "redis", dataDir: config.dataDir, redis: config.redis, ...(config.tls.storeKeyFile ? { keyFile: config.tls.storeKeyFile } : {}) };
}

async function storeSecret(settings: Extract<TlsStoreSettings, { kind: "redis" }>, env: NodeJS.ProcessEnv): Promise<string> {
  if (settings.keyFile) {
    try {
      return (await readFile(settings.keyFile, "utf8")).trim();
    } catch (error) {
      throw new Error(`tls.storeKeyFile ${settings.keyFile}: cannot read the TLS store key (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
    }
  }
  // Trimmed like the file: a key from a Kubernetes Secret or a shell often ends in a newline.
  const secret = env[STORE_KEY_ENV]?.trim();
  if (!secret) {
    throw new Error(`tls.store is redis: private keys are sealed with a key given by the environment variable ${STORE_KEY_ENV} or by tls.storeKeyFile (a file holding it); neither is set`);
  }
  return secret;
}

/** Opens a store (connected, for Redis) that the caller closes. */
export async function openTlsStore(settings: TlsStoreSettings, env: NodeJS.ProcessEnv = process.env, gateway = gatewayName()): Promise<TlsStore> {
  if (settings.kind === "files") return new FilesTlsStore(settings.dataDir);
  const sealer = new Sealer(await storeSecret(settings, env));
  // Loaded only when configured, like every Redis client: ioredis weighs on every gateway's memory.
  const [{ createClient }, { RedisTlsStore, waitReady }] = await Promise.all([import("../ratelimit/redis.js"), import("./redis-tls-store.js")]);
  const client = createClient(tlsRedisConfig(settings.redis));
  client.on("error", () => {}); // reported through availability (fleet-sync.ts), once per transition
  try {
    await waitReady(client, Math.max(2000, settings.redis.commandTimeout * 8));
  } catch (error) {
    client.disconnect();
    throw new Error(`the TLS store in Redis cannot be reached: ${(error as Error).message}`);
  }
  const timings = fleetTimings(env);
  return new RedisTlsStore(client, {
    redis: settings.redis,
    sealer,
    dataDir: settings.dataDir,
    gateway,
    ...(timings.orderLeaseMs !== undefined ? { orderLeaseMs: timings.orderLeaseMs } : {}),
    challengeAckWaitMs: timings.ackWaitMs,
  });
}

/** Certificate writes are rare and small: a longer command timeout than rate limits', never shorter. */
function tlsRedisConfig(redis: RedisConfig): RedisConfig {
  return { ...redis, commandTimeout: Math.max(redis.commandTimeout, 2000) };
}

let name: string | null = null;
/** How this gateway process names itself to the fleet (served reports, notices): host and process id. */
export function gatewayName(): string {
  return (name ??= `${hostname()}/${process.pid}`);
}

// One store per settings per process, shared by the control plane, generations and CLI code alike.
const pool = new ResourcePool();

export function leaseTlsStore(config: Pick<GatewayConfig, "tls" | "redis" | "dataDir">) {
  const settings = tlsStoreSettings(config);
  return pool.acquire("tls-store", settings, () => openTlsStore(settings));
}

/** Runs `work` with the configuration's store, opened for it if no one in this process holds it. */
export async function withTlsStore<T>(config: Pick<GatewayConfig, "tls" | "redis" | "dataDir">, work: (store: TlsStore) => Promise<T>): Promise<T> {
  const lease = leaseTlsStore(config);
  try {
    return await work(await lease.value);
  } finally {
    await lease.release();
  }
}

/**
 * A secret every gateway sharing the configuration's TLS store agrees on (e.g. a signing key for web
 * sessions): stored sealed in Redis with the redis store, in DATADIR/secrets with the files store.
 * `create` makes it the first time; afterwards every gateway gets the stored value.
 */
export function loadOrCreateSharedSecret(
  config: Pick<GatewayConfig, "tls" | "redis" | "dataDir">,
  secretName: string,
  create: () => Promise<string> | string,
): Promise<string> {
  return withTlsStore(config, (store) => store.loadOrCreateSharedSecret(secretName, create));
}
