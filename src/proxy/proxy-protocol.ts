// The PROXY protocol header (haproxy's proxy-protocol.txt) an L4 balancer writes at the start of each
// connection: who the client is, since the TCP peer is the balancer. Version 1 is one text line, version 2
// a binary block. Only what the gateway needs is read: TCP over IPv4 or IPv6, or "no address" (v1 UNKNOWN,
// v2 LOCAL or UNSPEC, a balancer's own health check). TLVs are skipped, not interpreted.
//
// The parser is given everything received so far and says whether a complete, valid header starts it, how
// long it is, or that more bytes are needed. Bounds are enforced on the prefix, so a peer can never make the
// reader buffer more than MAX_PROXY_HEADER_BYTES.
import { isIP } from "node:net";

export interface ProxiedEndpoint {
  address: string;
  port: number;
}

export type ProxyHeader =
  /** More bytes are needed to tell. */
  | { kind: "incomplete" }
  | { kind: "invalid"; reason: string }
  /** The balancer speaks for itself (health check, unknown family): the TCP peer is the client. */
  | { kind: "local"; length: number }
  | { kind: "proxied"; length: number; source: ProxiedEndpoint; destination: ProxiedEndpoint };

/** v1: "PROXY" … CRLF is at most 107 bytes (the spec's worst case, TCP6 with full-length addresses). */
export const MAX_V1_BYTES = 107;
/**
 * v2 may announce up to 65535 bytes after its 16-byte preamble, nearly all of it TLVs the gateway does not
 * read. 1 KiB is far more than any balancer sends (addresses are 36 bytes at most, common TLVs tens).
 */
export const MAX_V2_PAYLOAD_BYTES = 1024;
export const MAX_PROXY_HEADER_BYTES = 16 + MAX_V2_PAYLOAD_BYTES;

const V1_PREFIX = Buffer.from("PROXY ", "latin1");
const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const V2_PREAMBLE_BYTES = 16;

export function parseProxyHeader(received: Buffer): ProxyHeader {
  if (startsLike(received, V2_SIGNATURE)) return parseV2(received);
  if (startsLike(received, V1_PREFIX)) return parseV1(received);
  return { kind: "invalid", reason: "the connection does not start with a PROXY protocol header" };
}

/** True when `received` and `prefix` agree on as many bytes as both have. */
function startsLike(received: Buffer, prefix: Buffer): boolean {
  const length = Math.min(received.length, prefix.length);
  return received.subarray(0, length).equals(prefix.subarray(0, length));
}

function parseV1(received: Buffer): ProxyHeader {
  const lineFeed = received.subarray(0, MAX_V1_BYTES).indexOf(0x0a);
  if (lineFeed < 0) {
    return received.length >= MAX_V1_BYTES ? { kind: "invalid", reason: `a PROXY v1 line is at most ${MAX_V1_BYTES} bytes` } : { kind: "incomplete" };
  }
  if (received[lineFeed - 1] !== 0x0d) return { kind: "invalid", reason: "a PROXY v1 line ends in CRLF" };
  const length = lineFeed + 1;
  const fields = received.subarray(V1_PREFIX.length, lineFeed - 1).toString("latin1").split(" ");
  // UNKNOWN may be followed by anything up to the CRLF (spec: the receiver ignores it).
  if (fields[0] === "UNKNOWN") return { kind: "local", length };
  if (fields.length !== 5) return { kind: "invalid", reason: "a PROXY v1 line has a protocol, two addresses and two ports" };
  const [protocol, sourceAddress, destinationAddress, sourcePort, destinationPort] = fields as [string, string, string, string, string];
  const family = protocol === "TCP4" ? 4 : protocol === "TCP6" ? 6 : 0;
  if (family === 0) return { kind: "invalid", reason: "a PROXY v1 protocol is TCP4, TCP6 or UNKNOWN" };
  if (isIP(sourceAddress) !== family || isIP(destinationAddress) !== family) {
    return { kind: "invalid", reason: `a PROXY v1 ${protocol} line carries IPv${family} addresses` };
  }
  const ports = [sourcePort, destinationPort].map(v1Port);
  if (ports[0] === undefined || ports[1] === undefined) return { kind: "invalid", reason: "a PROXY v1 port is a number from 0 to 65535" };
  return { kind: "proxied", length, source: { address: sourceAddress, port: ports[0] }, destination: { address: destinationAddress, port: ports[1] } };
}

/** Decimal, no sign, no leading zero (the spec's form), at most 65535. */
function v1Port(text: string): number | undefined {
  if (!/^(0|[1-9]\d{0,4})$/.test(text)) return undefined;
  const port = Number(text);
  return port <= 65535 ? port : undefined;
}

const V2_COMMAND_LOCAL = 0x0;
const V2_COMMAND_PROXY = 0x1;
/** Family and transport byte → the size of the address block, for the ones the gateway accepts. */
const V2_TCP_OVER_IPV4 = 0x11;
const V2_TCP_OVER_IPV6 = 0x21;
const V2_UNSPEC = 0x00;

function parseV2(received: Buffer): ProxyHeader {
  if (received.length < V2_PREAMBLE_BYTES) return { kind: "incomplete" };
  const versionAndCommand = received[12]!;
  if (versionAndCommand >> 4 !== 2) return { kind: "invalid", reason: "a PROXY v2 header has version 2" };
  const command = versionAndCommand & 0x0f;
  if (command !== V2_COMMAND_LOCAL && command !== V2_COMMAND_PROXY) return { kind: "invalid", reason: "a PROXY v2 command is LOCAL or PROXY" };
  const payloadBytes = received.readUInt16BE(14);
  if (payloadBytes > MAX_V2_PAYLOAD_BYTES) return { kind: "invalid", reason: `a PROXY v2 header carries at most ${MAX_V2_PAYLOAD_BYTES} bytes here` };
  const length = V2_PREAMBLE_BYTES + payloadBytes;
  if (received.length < length) return { kind: "incomplete" };
  if (command === V2_COMMAND_LOCAL) return { kind: "local", length };
  const familyAndTransport = received[13]!;
  const payload = received.subarray(V2_PREAMBLE_BYTES, length);
  // UNSPEC: the spec has the receiver use the connection's own addresses.
  if (familyAndTransport === V2_UNSPEC) return { kind: "local", length };
  if (familyAndTransport === V2_TCP_OVER_IPV4) return v2Addresses(payload, length, 4);
  if (familyAndTransport === V2_TCP_OVER_IPV6) return v2Addresses(payload, length, 16);
  return { kind: "invalid", reason: "a PROXY v2 header is accepted for TCP over IPv4 or IPv6 only" };
}

function v2Addresses(payload: Buffer, length: number, addressBytes: 4 | 16): ProxyHeader {
  if (payload.length < 2 * addressBytes + 4) return { kind: "invalid", reason: "a PROXY v2 address block is too short for its family" };
  const address = addressBytes === 4 ? ipv4 : ipv6;
  return {
    kind: "proxied",
    length,
    source: { address: address(payload.subarray(0, addressBytes)), port: payload.readUInt16BE(2 * addressBytes) },
    destination: { address: address(payload.subarray(addressBytes, 2 * addressBytes)), port: payload.readUInt16BE(2 * addressBytes + 2) },
  };
}

function ipv4(bytes: Buffer): string {
  return Array.from(bytes).join(".");
}

/**
 * Compressed like Node reports socket addresses (`::1`, `2001:db8::5`), via the URL parser's serializer;
 * an IPv4-mapped one as `::ffff:10.0.0.1`, as a dual-stack socket reports it, so it reads as that IPv4 client.
 */
function ipv6(bytes: Buffer): string {
  if (bytes.subarray(0, 10).every((byte) => byte === 0) && bytes[10] === 0xff && bytes[11] === 0xff) return `::ffff:${ipv4(bytes.subarray(12))}`;
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i).toString(16));
  return new URL(`http://[${groups.join(":")}]/`).hostname.slice(1, -1);
}
