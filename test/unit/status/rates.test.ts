// The status panel's rates: counter readings compared over the last minute, and the exposition lines they
// are read from.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { readSamples } from "../../../src/status/exposition.js";
import { RateWindow } from "../../../src/status/rates.js";

const totals = (value: number) => new Map([["requests", value]]);

describe("RateWindow", () => {
  it("has no rate at the first reading, then the increase per second since it", () => {
    const window = new RateWindow(60_000);
    assert.equal(window.observe(totals(100), 0), null);
    const rates = window.observe(totals(130), 10_000)!;
    assert.equal(rates.windowSeconds, 10);
    assert.equal(rates.perSecond.get("requests"), 3);
  });

  it("compares with the newest reading at least a window old, so the window stays about a minute", () => {
    const window = new RateWindow(60_000);
    for (let second = 0; second <= 120; second += 10) window.observe(totals(second * 2), second * 1000);
    const rates = window.observe(totals(260), 130_000)!;
    assert.equal(rates.windowSeconds, 60);
    assert.equal(rates.perSecond.get("requests"), (260 - 140) / 60);
  });

  it("never reports a negative rate, and a key new since the base counts from zero", () => {
    const window = new RateWindow(60_000);
    window.observe(totals(50), 0);
    const rates = window.observe(new Map([["requests", 10], ["refused", 4]]), 2_000)!;
    assert.equal(rates.perSecond.get("requests"), 0);
    assert.equal(rates.perSecond.get("refused"), 2);
  });
});

describe("readSamples", () => {
  it("reads the asked families' samples with their labels, unescaped, and skips the rest", () => {
    const text = [
      "# HELP registry_gateway_requests_total Requests.",
      "# TYPE registry_gateway_requests_total counter",
      'registry_gateway_requests_total{site="a\\"b\\\\c",operation="base",method="GET",code="200"} 7',
      "registry_gateway_requests_in_flight 3",
      'registry_gateway_requests_total{site="",code="404"} 2 1700000000000',
      "",
    ].join("\n");
    assert.deepEqual(readSamples(text, new Set(["registry_gateway_requests_total"])), [
      { name: "registry_gateway_requests_total", labels: { site: 'a"b\\c', operation: "base", method: "GET", code: "200" }, value: 7 },
      { name: "registry_gateway_requests_total", labels: { site: "", code: "404" }, value: 2 },
    ]);
  });
});
