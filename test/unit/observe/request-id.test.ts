// Which client X-Request-Id values are kept, and what replaces the rest.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { requestIdFrom } from "../../../src/observe/request-id.js";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe("requestIdFrom", () => {
  it("keeps a client's id made of letters, digits, '.', '_' and '-', up to 128 characters", () => {
    for (const id of ["abc", "trace-42.a_b", "0f3c9a2e-1b7d-4c55-9e0f-2a4b6c8d0e1f", "x".repeat(128), "A.B_C-D"]) {
      assert.equal(requestIdFrom(id), id);
    }
  });

  it("replaces anything else with a fresh UUID", () => {
    const rejected: (string | string[] | undefined)[] = [
      undefined,
      "",
      "x".repeat(129),
      "has space",
      "quote\"d",
      "new\nline",
      "a,b",
      "ünïcode",
      "semi;colon",
      "{\"json\":1}",
      ["a", "b"],
    ];
    for (const id of rejected) {
      const replaced = requestIdFrom(id);
      assert.match(replaced, UUID, JSON.stringify(id));
    }
    assert.notEqual(requestIdFrom(undefined), requestIdFrom(undefined));
  });
});
