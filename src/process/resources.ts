// What a process keeps across reloads: counters, backend health, Redis connections, keep-alive agents. Each
// resource is keyed by its kind and the settings it is built from, and shared by every generation that asks
// for the same: a reload with the same settings finds the one already open (counts, health and sockets
// carry on), a reload that changes them gets a fresh one. A generation holds a lease on each resource it
// uses and gives them back when it retires (or when it is discarded unused); the last lease given back
// closes the resource. One mechanism instead of a comparison per resource of "is it still the same?".

/** Anything a pool can hold. A promise is allowed: a resource that needs a connection before it is used. */
export interface Closable {
  close(): unknown;
}

export interface Lease<T> {
  readonly value: T;
  /** Gives the lease back; the last one closes the resource. Idempotent. */
  release(): Promise<void>;
}

interface Entry {
  value: unknown;
  leases: number;
}

export class ResourcePool {
  readonly #entries = new Map<string, Entry>();

  /**
   * The resource of `kind` built from `settings`: the one already held if any, else `create()`'s. A promise that
   * rejects is not kept: the next acquire tries again (the callers holding it release as usual).
   */
  acquire<T extends Closable | Promise<Closable>>(kind: string, settings: unknown, create: () => T): Lease<T> {
    const key = resourceKey(kind, settings);
    let entry = this.#entries.get(key);
    if (!entry) {
      const created: Entry = { value: create(), leases: 0 };
      entry = created;
      this.#entries.set(key, created);
      if (created.value instanceof Promise) {
        created.value.catch(() => {
          if (this.#entries.get(key) === created) this.#entries.delete(key);
        });
      }
    }
    entry.leases++;
    const held = entry;
    let released = false;
    return {
      value: held.value as T,
      release: async () => {
        if (released) return;
        released = true;
        held.leases--;
        if (held.leases > 0) return;
        if (this.#entries.get(key) === held) this.#entries.delete(key);
        await closeValue(held.value);
      },
    };
  }

  /** Resources held (of `kind`, or of every kind): for tests and diagnostics. */
  size(kind?: string): number {
    if (kind === undefined) return this.#entries.size;
    let count = 0;
    for (const key of this.#entries.keys()) if (key.startsWith(`${kind}\n`)) count++;
    return count;
  }
}

/**
 * The leases one holder (a generation) takes: all given back at once when it retires. A lease given back
 * earlier (health checks stopping with the stages) is not given back twice.
 */
export class LeaseSet {
  readonly #leases: Lease<unknown>[] = [];
  #released = false;

  constructor(readonly pool: ResourcePool) {}

  acquire<T extends Closable | Promise<Closable>>(kind: string, settings: unknown, create: () => T): Lease<T> {
    if (this.#released) throw new Error(`a ${kind} was asked for after its holder gave its resources back`);
    const lease = this.pool.acquire(kind, settings, create);
    this.#leases.push(lease);
    return lease;
  }

  /** The value alone, for resources held until the whole set is given back. */
  take<T extends Closable | Promise<Closable>>(kind: string, settings: unknown, create: () => T): T {
    return this.acquire(kind, settings, create).value;
  }

  async releaseAll(): Promise<void> {
    this.#released = true;
    await Promise.all(this.#leases.splice(0).map((lease) => lease.release()));
  }
}

/**
 * `kind` and a canonical form of `settings`: object keys sorted, so two configurations that say the same
 * in another order share the resource; URLs by their text; undefined members left out (as JSON does).
 */
export function resourceKey(kind: string, settings: unknown): string {
  return `${kind}\n${JSON.stringify(canonical(settings))}`;
}

function canonical(value: unknown): unknown {
  if (value instanceof URL) return value.href;
  if (value instanceof Map) return [...value.entries()].map(([k, v]) => [canonical(k), canonical(v)]).sort(byJson);
  if (Array.isArray(value)) return value.map(canonical);
  if (value !== null && typeof value === "object") {
    const sorted: Record<string, unknown> = {};
    for (const key of Object.keys(value).sort()) sorted[key] = canonical((value as Record<string, unknown>)[key]);
    return sorted;
  }
  return value;
}

function byJson(a: unknown, b: unknown): number {
  const [x, y] = [JSON.stringify(a), JSON.stringify(b)];
  return x < y ? -1 : x > y ? 1 : 0;
}

async function closeValue(value: unknown): Promise<void> {
  let resource: Closable;
  try {
    resource = (await value) as Closable;
  } catch {
    return; // never opened: nothing to close
  }
  await resource.close();
}
