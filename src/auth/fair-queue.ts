// Which password check runs next on the hashing threads. One shared first-come queue lets whoever sends
// the most checks take every thread and every queue slot: a flood of guesses from one address turned
// everyone else's login into a 503. Instead checks wait per client (one IPv4 address, or one IPv6 /64):
//
//   - round robin between clients that have checks waiting, one check each in turn;
//   - a client with nothing waiting and nothing running goes ahead of those rounds for the checks it
//     brings (as fq_codel serves new flows first): a user logging in from a quiet address waits for the
//     checks already running, not for a round of every flooding address. Once served it joins the round
//     robin like everyone else, so a flood of "new" clients is still served in turn, never starves one;
//   - a client may have at most maxQueuedPerClient checks waiting; beyond that its own logins are
//     refused, nobody else's;
//   - when the whole queue is full, a newcomer with fewer checks waiting than the busiest client takes
//     that client's newest slot (longest queue drop): the flooder gets the refusal, not the newcomer;
//   - a suspect client (one that used most of its failure budget) is served only when no other client's
//     check waits, and never on the last free slot: a check cannot be stopped once it runs, so without a
//     slot kept free a user logging in would still wait for a flooder's check to finish.
//
// Items are opaque; the pool runs them and says when each is done.

export interface FairQueueOptions {
  /** Items running at most (threads). */
  slots: number;
  /** Items waiting at most, all clients together. */
  maxQueued: number;
  /** Items one client may have waiting. */
  maxQueuedPerClient: number;
}

interface Client<T> {
  key: string;
  waiting: T[];
  running: number;
  /** Served after everyone else, never on the last free slot. */
  suspect: boolean;
  /** Items still to serve ahead of the round robin (what it brought while it had nothing pending). */
  ahead: number;
}

export type Admission<T> = { admitted: true; pushedOut: { key: string; item: T }[] } | { admitted: false; reason: "client" | "full" };

export class FairQueue<T> {
  private readonly clients = new Map<string, Client<T>>();
  /** Clients with items to serve first, in arrival order. */
  private readonly fresh = new Set<Client<T>>();
  /** Clients taking turns; the first is next. A Set keeps order and removes in O(1). */
  private readonly rotation = new Set<Client<T>>();
  private waitingCount = 0;
  private suspectWaiting = 0;
  private runningCount = 0;
  /** Slots a suspect client's item never takes (one, when there is more than one). */
  private readonly reserved: number;

  constructor(private readonly options: FairQueueOptions) {
    this.reserved = options.slots > 1 ? 1 : 0;
  }

  get waiting(): number {
    return this.waitingCount;
  }

  get running(): number {
    return this.runningCount;
  }

  waitingFor(key: string): number {
    return this.clients.get(key)?.waiting.length ?? 0;
  }

  /**
   * All of `items` for `key`, or none. Items that find a free slot run at once (take them with next());
   * the rest wait. `pushedOut`: items of busier clients that lost their place to these (refuse them).
   */
  push(key: string, items: readonly T[], suspect = false): Admission<T> {
    const client = this.clients.get(key) ?? { key, waiting: [], running: 0, ahead: 0, suspect };
    const othersWaiting = suspect ? this.waitingCount : this.waitingCount - this.suspectWaiting;
    const free = othersWaiting === 0 ? Math.max(0, this.options.slots - (suspect ? this.reserved : 0) - this.runningCount) : 0;
    const toWait = Math.max(0, items.length - free);
    if (client.waiting.length + toWait > this.options.maxQueuedPerClient) return { admitted: false, reason: "client" };
    const victims = this.victimsFor(client, toWait - (this.options.maxQueued - this.waitingCount), client.waiting.length + toWait);
    if (!victims) return { admitted: false, reason: "full" };
    const pushedOut = victims.map((victim) => this.dropNewest(victim));
    if (!this.clients.has(key)) this.clients.set(key, client);
    if (client.suspect !== suspect) {
      // What it has waiting moves with it to its new class.
      this.suspectWaiting += (suspect ? 1 : -1) * client.waiting.length;
      client.suspect = suspect;
    }
    if (suspect) this.suspectWaiting += items.length;
    if (client.waiting.length === 0 && client.running === 0) {
      client.ahead = items.length;
      this.fresh.add(client);
    } else if (!this.fresh.has(client)) {
      this.rotation.add(client);
    }
    client.waiting.push(...items);
    this.waitingCount += items.length;
    return { admitted: true, pushedOut };
  }

  /** The next item to run, when a slot is free and something waits; it counts as running until done(). */
  next(): { key: string; item: T } | undefined {
    if (this.runningCount >= this.options.slots) return undefined;
    const trusted = (c: Client<T>) => !c.suspect;
    let client = first(this.fresh, trusted) ?? first(this.rotation, trusted);
    if (!client && this.runningCount < this.options.slots - this.reserved) client = first(this.fresh) ?? first(this.rotation);
    if (!client) return undefined;
    const item = client.waiting.shift()!;
    this.waitingCount--;
    if (client.suspect) this.suspectWaiting--;
    this.runningCount++;
    client.running++;
    if (this.fresh.has(client)) {
      client.ahead--;
      if (client.ahead > 0 && client.waiting.length > 0) return { key: client.key, item };
      this.fresh.delete(client);
    } else {
      this.rotation.delete(client);
    }
    // To the back of the round.
    if (client.waiting.length > 0) this.rotation.add(client);
    return { key: client.key, item };
  }

  /** An item taken with next() finished (or failed). */
  done(key: string): void {
    const client = this.clients.get(key);
    if (!client || client.running === 0) return;
    client.running--;
    this.runningCount--;
    this.forgetIfIdle(client);
  }

  /** Removes every waiting item (closing), oldest first. */
  drain(): T[] {
    const items: T[] = [];
    for (const client of this.clients.values()) {
      items.push(...client.waiting);
      client.waiting = [];
      this.forgetIfIdle(client);
    }
    this.fresh.clear();
    this.rotation.clear();
    this.waitingCount = 0;
    this.suspectWaiting = 0;
    return items;
  }

  /**
   * Whose newest waiting items make room for `needed` more of `client`'s, or null if that would not be fair:
   * only a client left with at least as many waiting as `client` will then have (`mine`) gives up a place.
   */
  private victimsFor(client: Client<T>, needed: number, mine: number): Client<T>[] | null {
    if (needed <= 0) return [];
    const counts = new Map<Client<T>, number>();
    for (const other of this.clients.values()) if (other !== client && other.waiting.length > 0) counts.set(other, other.waiting.length);
    const victims: Client<T>[] = [];
    for (let i = 0; i < needed; i++) {
      let busiest: Client<T> | undefined;
      for (const [other, count] of counts) if (!busiest || count > counts.get(busiest)!) busiest = other;
      if (!busiest || counts.get(busiest)! - 1 < mine) return null;
      counts.set(busiest, counts.get(busiest)! - 1);
      victims.push(busiest);
    }
    return victims;
  }

  private dropNewest(client: Client<T>): { key: string; item: T } {
    const item = client.waiting.pop()!;
    this.waitingCount--;
    if (client.suspect) this.suspectWaiting--;
    if (client.waiting.length === 0) {
      this.fresh.delete(client);
      this.rotation.delete(client);
      this.forgetIfIdle(client);
    }
    return { key: client.key, item };
  }

  private forgetIfIdle(client: Client<T>): void {
    if (client.waiting.length === 0 && client.running === 0 && !this.fresh.has(client) && !this.rotation.has(client)) this.clients.delete(client.key);
  }
}

function first<T>(set: Set<T>, matching: (value: T) => boolean = () => true): T | undefined {
  for (const value of set) if (matching(value)) return value;
  return undefined;
}
