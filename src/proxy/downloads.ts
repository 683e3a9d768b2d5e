// Concurrent downloads (blob and manifest GETs: the requests with a body to send) per client address and
// per authenticated user. Each download in flight holds a backend connection and buffers in the gateway and
// in the backend (distribution keeps several MiB per blob GET), for as long as its client takes to read it:
// up to timeouts.send when the client reads nothing. Without a cap one address could open hundreds of them
// and hold them all. Counted in this process only: with several workers a client's connections are spread
// over them, so its effective cap is up to (workers × cap).
import { isIP } from "node:net";
import { CLIENT_PREFIXES, networkOf } from "../auth/client-network.js";
import type { ServerResponse } from "node:http";
import type { RegistryRoute } from "../registry/routes.js";

export interface DownloadCaps {
  /** Downloads in flight at once from one client address. */
  downloadsPerClient: number;
  /** Downloads in flight at once for one authenticated user (from any address). */
  downloadsPerUser: number;
}

export interface DownloadRefusal {
  message: string;
  headers: Record<string, string>;
}

/** A refused client may try again soon: a download ends when its client has read it (or timeouts.send). */
const RETRY_AFTER_SECONDS = "1";

export class DownloadLimits {
  /** In flight per key ("ip " + address, "user " + name); shared with the next generation so a reload keeps the counts. */
  private readonly counts: Map<string, number>;

  constructor(
    private readonly caps: DownloadCaps,
    previous?: DownloadLimits,
  ) {
    this.counts = previous?.counts ?? new Map();
  }

  /** Downloads in flight for `key` (tests and diagnostics). */
  inFlight(key: string): number {
    return this.counts.get(key) ?? 0;
  }

  /**
   * Admits a request, counted until `res` closes, or refuses it when its address or user already has the
   * most downloads in flight allowed. Requests that are not downloads are always admitted, uncounted.
   */
  admit(method: string, route: RegistryRoute, who: { ip: string; user?: string }, res: ServerResponse): DownloadRefusal | null {
    if (method !== "GET" || (route.kind !== "blob" && route.kind !== "manifest")) return null;
    // An IPv6 client usually holds a whole /64: counted per address, it would get a fresh cap per address it picks.
    const client = isIP(who.ip) === 6 ? networkOf(who.ip, CLIENT_PREFIXES) : who.ip;
    const keys = [`ip ${client}`];
    if (who.user !== undefined) keys.push(`user ${who.user}`);
    if (this.inFlight(keys[0]!) >= this.caps.downloadsPerClient) {
      return this.refusal(`too many downloads at once from ${client} (at most ${this.caps.downloadsPerClient}); try again once some have finished`);
    }
    if (keys[1] !== undefined && this.inFlight(keys[1]) >= this.caps.downloadsPerUser) {
      return this.refusal(`too many downloads at once for this user (at most ${this.caps.downloadsPerUser}); try again once some have finished`);
    }
    for (const key of keys) this.counts.set(key, this.inFlight(key) + 1);
    res.once("close", () => {
      for (const key of keys) {
        const left = this.inFlight(key) - 1;
        if (left > 0) this.counts.set(key, left);
        else this.counts.delete(key);
      }
    });
    return null;
  }

  private refusal(message: string): DownloadRefusal {
    // Closed too: a refused client holding its connection open still costs a TLS connection's memory (~50 KiB
    // in Node), and one that means well reconnects at no cost when it tries again.
    return { message, headers: { "Retry-After": RETRY_AFTER_SECONDS, Connection: "close" } };
  }
}
