// The PROXY protocol header parser (v1 text, v2 binary) and the reader that takes it off a real socket.
import assert from "node:assert/strict";
import { once } from "node:events";
import net from "node:net";
import { describe, it } from "node:test";
import fc from "fast-check";
import { readProxyHeader } from "../../../src/proxy/proxy-protocol-gate.js";
import { MAX_PROXY_HEADER_BYTES, MAX_V1_BYTES, MAX_V2_PAYLOAD_BYTES, parseProxyHeader } from "../../../src/proxy/proxy-protocol.js";

const SIGNATURE = Buffer.from("0d0a0d0a000d0a515549540a", "hex");

/** A v2 header: version/command byte, family/transport byte, then the payload (addresses and TLVs). */
function v2(command: number, familyAndTransport: number, payload: Buffer): Buffer {
  const length = Buffer.alloc(2);
  length.writeUInt16BE(payload.length);
  return Buffer.concat([SIGNATURE, Buffer.from([0x20 | command, familyAndTransport]), length, payload]);
}

function ports(source: number, destination: number): Buffer {
  const bytes = Buffer.alloc(4);
  bytes.writeUInt16BE(source, 0);
  bytes.writeUInt16BE(destination, 2);
  return bytes;
}

const ipv4Payload = Buffer.concat([Buffer.from([192, 0, 2, 7, 10, 0, 0, 1]), ports(51234, 443)]);
const ipv6Payload = Buffer.concat([
  Buffer.from("20010db8000000000000000000000005", "hex"),
  Buffer.from("00000000000000000000000000000001", "hex"),
  ports(40000, 5443),
]);

describe("PROXY protocol v1", () => {
  it("reads TCP4 and TCP6 lines: the source is the client", () => {
    const line = Buffer.from("PROXY TCP4 192.0.2.7 10.0.0.1 51234 443\r\nGET");
    assert.deepEqual(parseProxyHeader(line), {
      kind: "proxied",
      length: line.length - 3,
      source: { address: "192.0.2.7", port: 51234 },
      destination: { address: "10.0.0.1", port: 443 },
    });
    const six = parseProxyHeader(Buffer.from("PROXY TCP6 2001:db8::5 ::1 40000 5443\r\n"));
    assert.equal(six.kind, "proxied");
    assert.deepEqual(six.kind === "proxied" && six.source, { address: "2001:db8::5", port: 40000 });
  });

  it("UNKNOWN: the peer speaks for itself", () => {
    assert.deepEqual(parseProxyHeader(Buffer.from("PROXY UNKNOWN\r\n")), { kind: "local", length: 15 });
    assert.deepEqual(parseProxyHeader(Buffer.from("PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n")).kind, "local");
  });

  it("needs more bytes until the CRLF, and refuses a line that grows past 107 bytes", () => {
    for (const prefix of ["P", "PROXY", "PROXY TCP4 192.0.2.7 10.0.0.1 51234 443", "PROXY TCP4 192.0.2.7 10.0.0.1 51234 443\r"]) {
      assert.deepEqual(parseProxyHeader(Buffer.from(prefix)), { kind: "incomplete" }, prefix);
    }
    assert.equal(parseProxyHeader(Buffer.from(`PROXY UNKNOWN ${"x".repeat(MAX_V1_BYTES)}`)).kind, "invalid");
    // Exactly 107 bytes with its CRLF is still valid.
    const longest = `PROXY UNKNOWN ${"x".repeat(MAX_V1_BYTES - 16)}\r\n`;
    assert.equal(longest.length, MAX_V1_BYTES);
    assert.equal(parseProxyHeader(Buffer.from(longest)).kind, "local");
  });

  it("refuses malformed lines", () => {
    for (const line of [
      "PROXY TCP4 192.0.2.7 10.0.0.1 51234 443\n", // bare LF
      "PROXY TCP4 2001:db8::5 10.0.0.1 51234 443\r\n", // family mismatch
      "PROXY TCP6 192.0.2.7 10.0.0.1 51234 443\r\n",
      "PROXY TCP4 192.0.2.7 10.0.0.1 65536 443\r\n", // port range
      "PROXY TCP4 192.0.2.7 10.0.0.1 0443 443\r\n", // leading zero
      "PROXY TCP4 192.0.2.7 10.0.0.1 -1 443\r\n",
      "PROXY TCP4 192.0.2.7  10.0.0.1 51234 443\r\n", // double space
      "PROXY TCP4 192.0.2.7 10.0.0.1 51234\r\n",
      "PROXY UDP4 192.0.2.7 10.0.0.1 51234 443\r\n",
      "PROXY tcp4 192.0.2.7 10.0.0.1 51234 443\r\n",
      "PROXY TCP4 host.example 10.0.0.1 51234 443\r\n",
    ]) {
      assert.equal(parseProxyHeader(Buffer.from(line)).kind, "invalid", JSON.stringify(line));
    }
  });
});

describe("PROXY protocol v2", () => {
  it("reads TCP over IPv4 and IPv6, skipping TLVs", () => {
    const tlv = Buffer.from([0x04, 0x00, 0x03, 0x61, 0x62, 0x63]); // PP2_TYPE_NOOP, 3 bytes
    const four = v2(1, 0x11, Buffer.concat([ipv4Payload, tlv]));
    assert.deepEqual(parseProxyHeader(Buffer.concat([four, Buffer.from([0x16, 0x03, 0x01])])), {
      kind: "proxied",
      length: four.length,
      source: { address: "192.0.2.7", port: 51234 },
      destination: { address: "10.0.0.1", port: 443 },
    });
    const six = parseProxyHeader(v2(1, 0x21, ipv6Payload));
    assert.deepEqual(six.kind === "proxied" && [six.source, six.destination], [
      { address: "2001:db8::5", port: 40000 },
      { address: "::1", port: 5443 },
    ]);
    const mapped = Buffer.concat([Buffer.from("00000000000000000000ffffc0000207", "hex"), Buffer.alloc(16), ports(1, 2)]);
    const fromMapped = parseProxyHeader(v2(1, 0x21, mapped));
    assert.equal(fromMapped.kind === "proxied" && fromMapped.source.address, "::ffff:192.0.2.7");
  });

  it("LOCAL (a balancer's health check) and UNSPEC: the peer speaks for itself", () => {
    assert.deepEqual(parseProxyHeader(v2(0, 0x00, Buffer.alloc(0))), { kind: "local", length: 16 });
    assert.deepEqual(parseProxyHeader(v2(0, 0x11, ipv4Payload)), { kind: "local", length: 16 + ipv4Payload.length });
    assert.equal(parseProxyHeader(v2(1, 0x00, Buffer.alloc(0))).kind, "local");
  });

  it("needs more bytes until the announced length, and refuses more than the cap", () => {
    const whole = v2(1, 0x11, ipv4Payload);
    for (let cut = 1; cut < whole.length; cut++) assert.deepEqual(parseProxyHeader(whole.subarray(0, cut)), { kind: "incomplete" }, `cut at ${cut}`);
    const oversized = v2(1, 0x11, Buffer.alloc(MAX_V2_PAYLOAD_BYTES + 1));
    // Refused from the preamble alone, before the payload is waited for.
    assert.equal(parseProxyHeader(oversized.subarray(0, 16)).kind, "invalid");
    assert.equal(parseProxyHeader(v2(1, 0x11, Buffer.concat([ipv4Payload, Buffer.alloc(MAX_V2_PAYLOAD_BYTES - 12)]))).kind, "proxied");
  });

  it("refuses other versions, commands, families and short address blocks", () => {
    const bad = [
      Buffer.concat([SIGNATURE, Buffer.from([0x11, 0x11, 0, 12]), ipv4Payload]), // version 1 in a v2 preamble
      v2(2, 0x11, ipv4Payload), // command 2
      v2(1, 0x12, ipv4Payload), // UDP over IPv4
      v2(1, 0x31, Buffer.alloc(216)), // AF_UNIX
      v2(1, 0x11, ipv4Payload.subarray(0, 11)),
      v2(1, 0x21, ipv4Payload),
    ];
    for (const header of bad) assert.equal(parseProxyHeader(header).kind, "invalid", header.toString("hex"));
  });
});

describe("PROXY protocol: anything else", () => {
  it("refuses a TLS ClientHello, HTTP, and an empty-line start at the first byte that differs", () => {
    for (const start of [Buffer.from([0x16, 0x03, 0x01, 0x02]), Buffer.from("GET / HTTP/1.1\r\n"), Buffer.from("\r\n\r\n\r"), Buffer.from("PROXY\r\n")]) {
      assert.equal(parseProxyHeader(start).kind, "invalid", start.toString("hex"));
    }
  });

  it("fuzz: any bytes settle within the bounds, and a valid header reads the same whatever follows it", () => {
    fc.assert(
      fc.property(fc.constantFrom(Buffer.alloc(0), SIGNATURE, Buffer.from("PROXY ")), fc.uint8Array({ maxLength: 2 * MAX_PROXY_HEADER_BYTES }), (start, bytes) => {
        // Random bytes after each start: the first byte alone settles most of them otherwise.
        const received = Buffer.concat([start, bytes]);
        const header = parseProxyHeader(received);
        if (header.kind === "local" || header.kind === "proxied") assert.ok(header.length <= Math.min(received.length, MAX_PROXY_HEADER_BYTES));
        if (header.kind === "incomplete") assert.ok(received.length < MAX_PROXY_HEADER_BYTES);
      }),
      { numRuns: 3000 },
    );
    const addresses = fc.tuple(fc.ipV4(), fc.ipV4(), fc.nat(65535), fc.nat(65535));
    fc.assert(
      fc.property(addresses, fc.uint8Array({ maxLength: 64 }), ([source, destination, sourcePort, destinationPort], after) => {
        const line = Buffer.from(`PROXY TCP4 ${source} ${destination} ${sourcePort} ${destinationPort}\r\n`);
        const header = parseProxyHeader(Buffer.concat([line, after]));
        assert.deepEqual(header, { kind: "proxied", length: line.length, source: { address: source, port: sourcePort }, destination: { address: destination, port: destinationPort } });
      }),
    );
  });

  it("fuzz: a prefix of a valid v1 or v2 header is incomplete, never invalid", () => {
    const headers = fc.oneof(
      fc.tuple(fc.ipV6(), fc.ipV6(), fc.nat(65535), fc.nat(65535)).map(([s, d, sp, dp]) => Buffer.from(`PROXY TCP6 ${s} ${d} ${sp} ${dp}\r\n`)),
      fc.uint8Array({ minLength: 36, maxLength: 36 + 64 }).map((payload) => v2(1, 0x21, Buffer.from(payload))),
    );
    fc.assert(
      fc.property(headers, fc.nat(), (header, at) => {
        const cut = at % header.length;
        assert.deepEqual(parseProxyHeader(header.subarray(0, cut)), { kind: "incomplete" });
        assert.equal(parseProxyHeader(header).kind, "proxied");
      }),
    );
  });
});

describe("readProxyHeader on a socket", () => {
  /** A connected pair on loopback: what `send` writes (in pieces, pausing between them) arrives at the server side. */
  async function receive(pieces: readonly Buffer[], deadlineMs = 2000, endAfterPieces = false): Promise<{ result: string | { reason: string }; rest: Buffer }> {
    const server = net.createServer();
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    const { port } = server.address() as net.AddressInfo;
    const client = net.connect({ port, host: "127.0.0.1" });
    const [socket] = (await once(server, "connection")) as [net.Socket];
    try {
      const reading = readProxyHeader(socket, deadlineMs);
      for (const piece of pieces) {
        client.write(piece);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      if (endAfterPieces) client.end();
      const result = await reading;
      // What follows the header is left for the next reader, in order.
      client.end();
      const rest: Buffer[] = [];
      socket.on("data", (chunk: Buffer) => rest.push(chunk));
      socket.resume();
      if (!socket.destroyed && !socket.readableEnded) await once(socket, "end");
      return { result, rest: Buffer.concat(rest) };
    } finally {
      client.destroy();
      socket.destroy();
      server.close();
    }
  }

  it("a header split across TCP reads, then the bytes after it left in place", async () => {
    const header = v2(1, 0x11, ipv4Payload);
    const { result, rest } = await receive([header.subarray(0, 5), header.subarray(5, 20), Buffer.concat([header.subarray(20), Buffer.from("hello")]), Buffer.from(" world")]);
    assert.equal(result, "192.0.2.7");
    assert.equal(rest.toString(), "hello world");
  });

  it("LOCAL: the peer's own address", async () => {
    const { result } = await receive([v2(0, 0x00, Buffer.alloc(0))]);
    assert.equal(result, "127.0.0.1");
  });

  it("garbage, a silent peer and a truncated header (left open, or closed) are refused", async () => {
    assert.deepEqual((await receive([Buffer.from([0x16, 0x03, 0x01])])).result, { reason: "the connection does not start with a PROXY protocol header" });
    const silent = await receive([], 200);
    assert.deepEqual(silent.result, { reason: "no PROXY header in time" });
    const truncated = await receive([Buffer.from("PROXY TCP4 192.0.2.7")], 200);
    assert.deepEqual(truncated.result, { reason: "no PROXY header in time" });
    const cutShort = await receive([Buffer.from("PROXY TCP4 192.0.2.7")], 2000, true);
    assert.deepEqual(cutShort.result, { reason: "the connection ended before its PROXY header" });
  });
});
