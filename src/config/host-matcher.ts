// Which owner (a site, its certificate) a host name belongs to: the Host header's site and the SNI's
// certificate are chosen by the same rules, so a request and its handshake never disagree about a name.
// Exact names first, then `*.parent`, which covers exactly one label (as a certificate's wildcard does).

/** Lower-cased, without surrounding space or a trailing dot: how configured and requested names compare. */
export function normalizeHost(host: string): string {
  return host.trim().toLowerCase().replace(/\.$/, "");
}

export interface HostOwner<T> {
  hosts: readonly string[];
  owner: T;
}

export class HostMatcher<T> {
  readonly #exact = new Map<string, T>();
  /** `*.example.com` is kept under `example.com`. */
  readonly #wildcard = new Map<string, T>();

  /** Throws when two owners claim one host (`describe` names them): a name must lead to one place. */
  constructor(owners: Iterable<HostOwner<T>>, describe: (owner: T) => string) {
    for (const { hosts, owner } of owners) {
      for (const configured of hosts) {
        const host = normalizeHost(configured);
        const [map, key] = host.startsWith("*.") ? [this.#wildcard, host.slice(2)] : [this.#exact, host];
        const claimed = map.get(key);
        if (claimed !== undefined) throw new Error(`host "${host}" is claimed by sites "${describe(claimed)}" and "${describe(owner)}"`);
        map.set(key, owner);
      }
    }
  }

  match(hostname: string): T | undefined {
    const host = normalizeHost(hostname);
    const exact = this.#exact.get(host);
    if (exact !== undefined) return exact;
    const dot = host.indexOf(".");
    // Only the parent of the first label is looked up: `*.b.c` matches `a.b.c`, never `x.a.b.c`.
    return dot > 0 ? this.#wildcard.get(host.slice(dot + 1)) : undefined;
  }
}
