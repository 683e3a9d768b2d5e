// Whatever a client puts in Authorization parses to credentials or "malformed", never throws.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseAuthorization } from "../../../src/auth/credentials.js";

const basic = (text: string) => `Basic ${Buffer.from(text).toString("base64")}`;

describe("Authorization header", () => {
  it("reads Basic credentials, the password being everything after the first colon", () => {
    assert.deepEqual(parseAuthorization(basic("admin:Admin123")), { kind: "basic", user: "admin", password: "Admin123" });
    assert.deepEqual(parseAuthorization(basic("u:p:with:colons")), { kind: "basic", user: "u", password: "p:with:colons" });
    assert.deepEqual(parseAuthorization(`basic   ${Buffer.from("ü:pässword").toString("base64")}`), { kind: "basic", user: "ü", password: "pässword" });
    assert.deepEqual(parseAuthorization(basic("u:")), { kind: "basic", user: "u", password: "" });
  });

  it("reads Bearer tokens", () => {
    assert.deepEqual(parseAuthorization("Bearer abc.def-_~+/="), { kind: "bearer", token: "abc.def-_~+/=" });
  });

  it("tells absent from malformed", () => {
    assert.deepEqual(parseAuthorization(undefined), { kind: "none" });
    assert.deepEqual(parseAuthorization(""), { kind: "none" });
  });

  for (const [what, value] of [
    ["no scheme", "YWRtaW46QWRtaW4xMjM="],
    ["a scheme alone", "Basic"],
    ["bad base64", "Basic !!!notbase64"],
    ["base64 with a stray character", "Basic YWRt=aW4"],
    ["no colon", basic("adminAdmin123")],
    ["an empty user", basic(":password")],
    ["invalid UTF-8", `Basic ${Buffer.from([0x61, 0x3a, 0xff, 0xfe]).toString("base64")}`],
    ["a 10 KB value", `Basic ${"A".repeat(10 * 1024)}`],
    ["a 10 KB token", `Bearer ${"a".repeat(10 * 1024)}`],
    ["an unknown scheme", "Digest username=admin"],
    ["a bearer token with spaces", "Bearer a b"],
  ] as const) {
    it(`calls ${what} malformed`, () => {
      assert.deepEqual(parseAuthorization(value), { kind: "malformed" });
    });
  }
});
