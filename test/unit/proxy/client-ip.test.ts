// The client address behind trusted proxies (right-most untrusted X-Forwarded-For entry).
import assert from "node:assert/strict";
import type { IncomingMessage } from "node:http";
import { describe, it } from "node:test";
import { cidr } from "../../../src/config/schema.js";
import { clientAddressResolver, normalizeAddress } from "../../../src/proxy/client-ip.js";

const request = (remoteAddress: string, xff?: string | string[]) =>
  ({ socket: { remoteAddress }, headers: xff === undefined ? {} : { "x-forwarded-for": xff } }) as unknown as IncomingMessage;
const resolver = (...trusted: string[]) => clientAddressResolver(trusted.map((t) => cidr.parse(t)));

describe("client address", () => {
  it("is the socket peer when no proxy is trusted, whatever X-Forwarded-For says", () => {
    assert.equal(resolver()(request("203.0.113.7", "1.2.3.4")), "203.0.113.7");
  });

  it("ignores X-Forwarded-For from a peer that is not trusted", () => {
    assert.equal(resolver("10.0.0.0/8")(request("203.0.113.7", "1.2.3.4")), "203.0.113.7");
  });

  it("takes the right-most entry that is not a trusted proxy, never the forgeable left-most", () => {
    const resolve = resolver("10.0.0.0/8");
    assert.equal(resolve(request("10.0.0.2", "6.6.6.6, 198.51.100.4")), "198.51.100.4");
    assert.equal(resolve(request("10.0.0.2", "6.6.6.6, 198.51.100.4, 10.1.1.1")), "198.51.100.4");
    assert.equal(resolve(request("10.0.0.2", ["6.6.6.6", "198.51.100.4, 10.1.1.1"])), "198.51.100.4", "several header lines are one list");
  });

  it("uses the left-most entry when every entry is a trusted proxy, the peer when there is none", () => {
    const resolve = resolver("10.0.0.0/8");
    assert.equal(resolve(request("10.0.0.2", "10.0.0.5, 10.0.0.4")), "10.0.0.5");
    assert.equal(resolve(request("10.0.0.2")), "10.0.0.2");
    assert.equal(resolve(request("10.0.0.2", "")), "10.0.0.2");
  });

  it("stops at an entry that is not an address, keeping the nearest trusted hop", () => {
    const resolve = resolver("10.0.0.0/8");
    assert.equal(resolve(request("10.0.0.2", "198.51.100.4, garbage, 10.0.0.9")), "10.0.0.9");
    assert.equal(resolve(request("10.0.0.2", "198.51.100.4, garbage")), "10.0.0.2");
  });

  it("reads ports and brackets, IPv6 and IPv4-mapped peers", () => {
    const resolve = resolver("10.0.0.0/8", "fd00::/8", "127.0.0.1");
    assert.equal(resolve(request("::ffff:10.0.0.2", "198.51.100.4:5678")), "198.51.100.4");
    assert.equal(resolve(request("fd00::1", "[2001:db8::1]:443, fd00::2")), "2001:db8::1");
    assert.equal(resolve(request("::ffff:127.0.0.1", "2001:db8::2")), "2001:db8::2");
    assert.equal(resolve(request("::ffff:192.0.2.1", "2001:db8::2")), "192.0.2.1");
    assert.equal(normalizeAddress("::ffff:192.0.2.1"), "192.0.2.1");
    assert.equal(normalizeAddress("::ffff:abcd"), "::ffff:abcd");
  });

  it("rejects malformed trusted proxy entries at load time", () => {
    for (const bad of ["10.0.0.0/33", "fd00::/129", "example.com", "10.0.0.0/8/1", "10.0.0.0/x"]) {
      assert.equal(cidr.safeParse(bad).success, false, bad);
    }
    assert.deepEqual(cidr.parse("192.0.2.10"), { address: "192.0.2.10", prefix: 32, family: "ipv4" });
  });
});
