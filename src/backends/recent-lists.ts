// Merged lists reused for a while (lists.cacheFor), so a client paging a catalog one name at a time, or many
// clients looping on it, cost the members one walk per period instead of one per request. What is kept is
// bounded by the names it holds, not by the number of lists: a tag list can hold up to MAX_NAMES tags per
// member, so a bound on keys alone would still let a few repositories pin gigabytes.

interface Entry<V> {
  /** Infinity while in flight: the time to live counts from the answer, so a slow walk is still reused. */
  expiresAt: number;
  value: Promise<V>;
  /** Weight counted in `names`; 0 while in flight, as nothing is held yet. */
  weight: number;
}

/**
 * Lists fetched in the last `cacheMs`, or being fetched, by key: every request for a key meanwhile gets the
 * same promise. A failure is not kept (the next request asks again). With `cacheMs` 0 a list is dropped as
 * soon as it settles: holding it would serve nobody. Settled lists weigh `weigh(value)`; beyond `maxNames`
 * in all, the least recently used are dropped (a list heavier than that alone is never kept).
 */
export class RecentLists<K, V> {
  /** Least recently used first. */
  readonly #entries = new Map<K, Entry<V>>();
  /** Settled entries, soonest to expire first: cacheMs is the same for all, so settling order is expiry order. */
  readonly #expiring = new Map<K, Entry<V>>();
  #names = 0;

  constructor(
    private readonly cacheMs: number,
    private readonly maxNames: number,
    private readonly weigh: (value: V) => number,
  ) {}

  /** Lists held (in flight or settled). */
  get size(): number {
    return this.#entries.size;
  }

  /** Total weight of the settled lists held. */
  get names(): number {
    return this.#names;
  }

  get(key: K, fetch: () => Promise<V>): Promise<V> {
    // Swept on access rather than by a timer, which would have to be unref'd and cleared on every reload.
    this.#sweep(Date.now());
    const cached = this.#entries.get(key);
    if (cached) {
      this.#entries.delete(key);
      this.#entries.set(key, cached);
      return cached.value;
    }
    const entry: Entry<V> = { expiresAt: Infinity, value: fetch(), weight: 0 };
    this.#entries.set(key, entry);
    entry.value.then(
      (value) => {
        if (this.#entries.get(key) !== entry) return;
        if (this.cacheMs === 0) return this.#drop(key);
        entry.expiresAt = Date.now() + this.cacheMs;
        entry.weight = this.weigh(value);
        this.#names += entry.weight;
        this.#expiring.set(key, entry);
        this.#shed();
      },
      () => {
        if (this.#entries.get(key) === entry) this.#drop(key);
      },
    );
    return entry.value;
  }

  #sweep(now: number): void {
    for (const [key, entry] of this.#expiring) {
      if (entry.expiresAt > now) return;
      this.#drop(key);
    }
  }

  /** Drops the least recently used settled lists until the rest fit in maxNames. */
  #shed(): void {
    for (const [key, entry] of this.#entries) {
      if (this.#names <= this.maxNames) return;
      if (entry.weight > 0) this.#drop(key);
    }
  }

  #drop(key: K): void {
    const entry = this.#entries.get(key);
    if (!entry) return;
    this.#names -= entry.weight;
    this.#entries.delete(key);
    this.#expiring.delete(key);
  }
}
