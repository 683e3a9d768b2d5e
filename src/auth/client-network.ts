// Which network a client address belongs to, for the failed-login budgets and the fair hashing queue.
// One IPv4 address is one client; an IPv6 client usually holds a whole /64 (SLAAC, a home or cloud
// prefix), so anything keyed "per client" must group IPv6 addresses by their /64, or an attacker would
// get a fresh budget and a fresh queue with every address it picks.
import { isIP } from "node:net";

export interface NetworkPrefixes {
  /** Prefix length grouping IPv4 addresses, 0..32. */
  ipv4: number;
  /** Prefix length grouping IPv6 addresses, 0..128. */
  ipv6: number;
}

/** One IPv4 address, or one IPv6 /64: what "one client" means for queueing password checks. */
export const CLIENT_PREFIXES: NetworkPrefixes = { ipv4: 32, ipv6: 64 };

/**
 * `address` masked to its prefix, as `network/length` (IPv6 written as eight full groups). IPv4-mapped IPv6
 * counts as IPv4. Something that is not an address (no peer address at all) stands for itself.
 */
export function networkOf(address: string, prefixes: NetworkPrefixes): string {
  const unzoned = address.includes("%") ? address.slice(0, address.indexOf("%")) : address;
  const family = isIP(unzoned);
  if (family === 4) return ipv4Network(unzoned, prefixes.ipv4);
  if (family === 6) {
    const groups = ipv6Groups(unzoned);
    if (groups[0] === 0 && groups[1] === 0 && groups[2] === 0 && groups[3] === 0 && groups[4] === 0 && groups[5] === 0xffff) {
      return ipv4Network(`${groups[6]! >> 8}.${groups[6]! & 255}.${groups[7]! >> 8}.${groups[7]! & 255}`, prefixes.ipv4);
    }
    return `${maskGroups(groups, prefixes.ipv6).map((group) => group.toString(16)).join(":")}/${prefixes.ipv6}`;
  }
  return address;
}

function ipv4Network(address: string, length: number): string {
  const octets = address.split(".").map(Number);
  const value = ((octets[0]! << 24) | (octets[1]! << 16) | (octets[2]! << 8) | octets[3]!) >>> 0;
  const masked = length === 0 ? 0 : (value & (~0 << (32 - length))) >>> 0;
  return `${masked >>> 24}.${(masked >>> 16) & 255}.${(masked >>> 8) & 255}.${masked & 255}/${length}`;
}

/** The eight 16-bit groups of a valid IPv6 address (isIP said so), `::` and a dotted IPv4 tail expanded. */
function ipv6Groups(address: string): number[] {
  let text = address;
  const tail: number[] = [];
  const lastColon = text.lastIndexOf(":");
  if (text.includes(".", lastColon)) {
    const octets = text.slice(lastColon + 1).split(".").map(Number);
    tail.push((octets[0]! << 8) | octets[1]!, (octets[2]! << 8) | octets[3]!);
    text = text.slice(0, lastColon + 1) + "0";
  }
  const [head, rest] = text.split("::") as [string, string | undefined];
  const parse = (part: string) => (part === "" ? [] : part.split(":").map((group) => parseInt(group, 16)));
  let groups = parse(head);
  if (rest !== undefined) {
    const after = parse(rest);
    groups = [...groups, ...new Array<number>(8 - (tail.length ? 1 : 0) - groups.length - after.length).fill(0), ...after];
  }
  if (tail.length) groups = [...groups.slice(0, -1), ...tail];
  return groups;
}

function maskGroups(groups: number[], length: number): number[] {
  return groups.map((group, i) => {
    const bits = Math.min(16, Math.max(0, length - i * 16));
    return bits === 0 ? 0 : group & ((0xffff << (16 - bits)) & 0xffff);
  });
}
