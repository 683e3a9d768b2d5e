// The owner of an anonymous client's upload sessions is its address. An IPv4 address is one client (or a
// NAT in front of several); an IPv6 client is routinely given a whole /64 and picks any address in it, so
// per-address owners would let one client be as many owners as it likes. Its /64 is the owner instead.
import { isIP } from "node:net";

const MAPPED_IPV4 = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i;
const DOTTED_TAIL = /(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/** "192.0.2.7" as it is; "2001:db8:1:2:a:b:c:d" as "2001:db8:1:2::/64"; "::ffff:192.0.2.7" as "192.0.2.7". */
export function addressOwner(address: string): string {
  const bare = address.split("%")[0]!.toLowerCase();
  if (isIP(bare) !== 6) return address;
  const mapped = MAPPED_IPV4.exec(bare);
  if (mapped) return mapped[1]!;
  // A dotted tail (::ffff:a.b.c.d and the like) is the last two groups: written as hex, the count comes out right.
  const hex = bare.replace(DOTTED_TAIL, (_, a, b, c, d) => `${((+a << 8) | +b).toString(16)}:${((+c << 8) | +d).toString(16)}`);
  const [head = "", tail] = hex.split("::");
  const left = head === "" ? [] : head.split(":");
  const right = tail === undefined || tail === "" ? [] : tail.split(":");
  const groups = [...left, ...Array<string>(8 - left.length - right.length).fill("0"), ...right];
  return `${groups.slice(0, 4).map((group) => parseInt(group, 16).toString(16)).join(":")}::/64`;
}
