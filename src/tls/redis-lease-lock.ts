// One holder at a time across every gateway sharing Redis: SET NX PX with a random token. The holder renews
// its lease while it works, so a long ACME order keeps the lock; a holder that dies stops renewing, the lease
// runs out and a waiting gateway takes over. Renewal and release compare the token, so a holder whose lease
// ran out never extends or deletes the lock another gateway took meanwhile.
import { randomBytes } from "node:crypto";
import type { Cluster, Redis } from "ioredis";

const RENEW_LUA = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end`;
const RELEASE_LUA = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end`;

export interface LeaseLockOptions {
  /** How long the lock outlives a holder that stopped renewing it. */
  leaseMs: number;
  /** Give up waiting after this long. */
  waitMs: number;
  /** Pause between attempts while another gateway holds the lock (jittered up to 2.5×). */
  pollMs: number;
}

interface LeaseCommands {
  rgwLeaseRenew(key: string, token: string, leaseMs: number): Promise<number>;
  rgwLeaseRelease(key: string, token: string): Promise<number>;
}

export function defineLeaseCommands(client: Redis | Cluster): void {
  client.defineCommand("rgwLeaseRenew", { numberOfKeys: 1, lua: RENEW_LUA });
  client.defineCommand("rgwLeaseRelease", { numberOfKeys: 1, lua: RELEASE_LUA });
}

/** `client` must have had defineLeaseCommands applied. */
export async function withLeaseLock<T>(client: Redis | Cluster, key: string, options: LeaseLockOptions, work: () => Promise<T>): Promise<T> {
  const commands = client as unknown as LeaseCommands;
  const token = randomBytes(16).toString("hex");
  const deadline = Date.now() + options.waitMs;
  while ((await client.set(key, token, "PX", options.leaseMs, "NX")) !== "OK") {
    if (Date.now() > deadline) throw new Error(`timed out after ${options.waitMs} ms waiting for the shared lock ${key}`);
    await new Promise((resolve) => setTimeout(resolve, options.pollMs * (1 + Math.random() * 1.5)));
  }
  const renew = setInterval(() => void commands.rgwLeaseRenew(key, token, options.leaseMs).catch(() => {}), Math.max(50, options.leaseMs / 3));
  renew.unref();
  try {
    return await work();
  } finally {
    clearInterval(renew);
    await commands.rgwLeaseRelease(key, token).catch(() => {});
  }
}
