// One holder at a time across every gateway sharing Redis: SET NX PX with a random token. The holder renews
// its lease while it works, so a long ACME order keeps the lock; a holder that dies stops renewing, the lease
// runs out and a waiting gateway takes over. Renewal and release compare the token, so a holder whose lease
// ran out never extends or deletes the lock another gateway took meanwhile. A holder whose lease ran out
// (Redis away longer than the lease, or a renewal that found another holder) is told through the work's
// AbortSignal, so it stops instead of racing its successor.
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

/** `client` must have had defineLeaseCommands applied. `work`'s signal fires once the lease is lost. */
export async function withLeaseLock<T>(
  client: Redis | Cluster,
  key: string,
  options: LeaseLockOptions,
  work: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const commands = client as unknown as LeaseCommands;
  const token = randomBytes(16).toString("hex");
  const deadline = Date.now() + options.waitMs;
  while ((await client.set(key, token, "PX", options.leaseMs, "NX")) !== "OK") {
    if (Date.now() > deadline) throw new Error(`timed out after ${options.waitMs} ms waiting for the shared lock ${key}`);
    await new Promise((resolve) => setTimeout(resolve, options.pollMs * (1 + Math.random() * 1.5)));
  }
  const lost = new AbortController();
  let renewedAt = Date.now();
  const renewal = async () => {
    const kept = await commands.rgwLeaseRenew(key, token, options.leaseMs).catch(() => null);
    if (kept === 1) renewedAt = Date.now();
    // A failed renewal is not yet a loss: the lease still runs until leaseMs after the last good one.
    else if (kept === 0 || Date.now() - renewedAt >= options.leaseMs) lost.abort(new Error(`the shared lock ${key} was lost (its lease ran out): another holder may have taken it`));
  };
  const renew = setInterval(() => void renewal(), Math.max(50, options.leaseMs / 3));
  renew.unref();
  try {
    return await work(lost.signal);
  } finally {
    clearInterval(renew);
    await commands.rgwLeaseRelease(key, token).catch(() => {});
  }
}
