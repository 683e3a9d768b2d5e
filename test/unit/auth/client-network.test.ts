// Which network an address counts in, for the per-network failure budget and the per-client hashing queue.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CLIENT_PREFIXES, networkOf } from "../../../src/auth/client-network.js";

const DEFAULT = { ipv4: 24, ipv6: 64 };

describe("networkOf", () => {
  it("masks IPv4 to the prefix", () => {
    assert.equal(networkOf("203.0.113.77", DEFAULT), "203.0.113.0/24");
    assert.equal(networkOf("203.0.113.77", { ipv4: 32, ipv6: 64 }), "203.0.113.77/32");
    assert.equal(networkOf("203.0.113.77", { ipv4: 20, ipv6: 64 }), "203.0.112.0/20");
    assert.equal(networkOf("255.255.255.255", { ipv4: 0, ipv6: 64 }), "0.0.0.0/0");
    assert.equal(networkOf("127.0.0.2", DEFAULT), networkOf("127.0.0.4", DEFAULT));
  });

  it("counts IPv4-mapped IPv6 as the IPv4 address", () => {
    assert.equal(networkOf("::ffff:203.0.113.77", DEFAULT), "203.0.113.0/24");
    assert.equal(networkOf("::ffff:cb00:714d", DEFAULT), "203.0.113.0/24");
  });

  it("masks IPv6 to the prefix, whatever the spelling", () => {
    const net = "2001:db8:aaaa:bbbb:0:0:0:0/64";
    for (const address of ["2001:db8:aaaa:bbbb::1", "2001:DB8:AAAA:BBBB:1:2:3:4", "2001:0db8:aaaa:bbbb:ffff::", "2001:db8:aaaa:bbbb::1%eth0"]) {
      assert.equal(networkOf(address, DEFAULT), net, address);
    }
    assert.notEqual(networkOf("2001:db8:aaaa:bbbc::1", DEFAULT), net);
    assert.equal(networkOf("2001:db8:aaaa:bbbb::1", { ipv4: 24, ipv6: 48 }), "2001:db8:aaaa:0:0:0:0:0/48");
    assert.equal(networkOf("2001:db8::ff", { ipv4: 24, ipv6: 120 }), "2001:db8:0:0:0:0:0:0/120");
    assert.equal(networkOf("::1", { ipv4: 24, ipv6: 128 }), "0:0:0:0:0:0:0:1/128");
    assert.equal(networkOf("64:ff9b::192.0.2.1", { ipv4: 24, ipv6: 128 }), "64:ff9b:0:0:0:0:c000:201/128");
  });

  it("one client: an IPv4 address, an IPv6 /64", () => {
    assert.notEqual(networkOf("127.0.0.2", CLIENT_PREFIXES), networkOf("127.0.0.3", CLIENT_PREFIXES));
    assert.equal(networkOf("2001:db8::1", CLIENT_PREFIXES), networkOf("2001:db8::2", CLIENT_PREFIXES));
  });

  it("something that is not an address stands for itself", () => {
    assert.equal(networkOf("", DEFAULT), "");
    assert.equal(networkOf("not-an-ip", DEFAULT), "not-an-ip");
  });
});
