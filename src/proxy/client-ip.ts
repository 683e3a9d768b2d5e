// The client's address, for rate-limit keys and the X-Forwarded-For we send. The connection's client (the
// socket's peer, or who a trusted balancer named in a PROXY header: client-connection.ts), unless that is a
// trusted proxy: then the right-most X-Forwarded-For entry that is not itself a trusted
// proxy. Right-most, because every entry left of the last one our proxies appended was written by the
// client and could be anything; the left-most "original client" is exactly what an attacker forges.
import type { IncomingMessage } from "node:http";
import { BlockList, isIP } from "node:net";
import type { TrustedProxy } from "../config/schema.js";
import { ClientConnection } from "./client-connection.js";

export type ClientAddress = (req: IncomingMessage) => string;

/** Built once per configuration: matching is a BlockList lookup, no parsing of CIDRs per request. */
export function clientAddressResolver(trustedProxies: readonly TrustedProxy[]): ClientAddress {
  if (trustedProxies.length === 0) return connectionClient;
  const trusted = new BlockList();
  for (const { address, prefix, family } of trustedProxies) trusted.addSubnet(address, prefix, family);
  const isTrusted = (address: string) => {
    const family = isIP(address);
    return family !== 0 && trusted.check(address, family === 6 ? "ipv6" : "ipv4");
  };
  return (req) => {
    const peer = connectionClient(req);
    if (!isTrusted(peer)) return peer;
    return rightmostUntrusted(req.headers["x-forwarded-for"], isTrusted) ?? peer;
  };
}

function connectionClient(req: IncomingMessage): string {
  return normalizeAddress(ClientConnection.of(req.socket)?.clientAddress ?? req.socket.remoteAddress ?? "");
}

/**
 * Walks X-Forwarded-For from the right, skipping trusted proxies. An entry that is not an address means
 * the chain cannot be read past it; then the nearest trusted hop is the best we know (undefined → the peer).
 * If every entry is trusted, the left-most is the client (a request from inside the proxy tier).
 */
export function rightmostUntrusted(header: string | string[] | undefined, isTrusted: (address: string) => boolean): string | undefined {
  if (header === undefined) return undefined;
  // Several X-Forwarded-For lines read as one comma-separated list, in order (RFC 9110 §5.3).
  const entries = (Array.isArray(header) ? header.join(",") : header).split(",");
  let nearestTrusted: string | undefined;
  for (let i = entries.length - 1; i >= 0; i--) {
    const entry = normalizeAddress(stripPort(entries[i]!.trim()));
    if (entry === "") continue;
    if (isIP(entry) === 0) return nearestTrusted;
    if (!isTrusted(entry)) return entry;
    nearestTrusted = entry;
  }
  return nearestTrusted;
}

/** IPv4-mapped IPv6 (`::ffff:10.0.0.1`, what a dual-stack socket reports) → the IPv4 address. */
export function normalizeAddress(address: string): string {
  return address.startsWith("::ffff:") && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
}

/** Some proxies write `1.2.3.4:5678` or `[2001:db8::1]:443`. */
function stripPort(entry: string): string {
  if (entry.startsWith("[")) {
    const end = entry.indexOf("]");
    return end > 0 ? entry.slice(1, end) : entry;
  }
  const colon = entry.indexOf(":");
  return colon > 0 && colon === entry.lastIndexOf(":") ? entry.slice(0, colon) : entry;
}
