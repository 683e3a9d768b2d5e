import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FAULT_NAMES, planSchedule } from "../../../soak/schedule.js";
import { largestLayer, layerSize } from "../../../soak/sizes.js";
import { parseSoakOptions } from "../../../soak/options.js";

describe("soak schedule", () => {
  it("a 20-minute run: two quiet minutes, every fault once, in order, apart, the last settled well before the end", () => {
    const schedule = planSchedule(20 * 60);
    assert.equal(schedule.quietSeconds, 120);
    assert.equal(schedule.warmupSeconds, 40);
    assert.deepEqual(schedule.faults.map((f) => f.name), [...FAULT_NAMES]);
    for (const [index, fault] of schedule.faults.entries()) {
      assert.ok(fault.at >= schedule.quietSeconds);
      const next = schedule.faults[index + 1];
      if (next) assert.ok(fault.at + fault.settleSeconds < next.at, `${fault.name} settles before ${next.name}`);
    }
    const last = schedule.faults.at(-1)!;
    assert.ok(last.at + last.settleSeconds <= 20 * 60 - 60);
  });

  it("a 90-second run is compressed: a quiet phase of at least 12 s, faults about 6 s apart, settling at least 2 s", () => {
    const schedule = planSchedule(90);
    assert.equal(schedule.quietSeconds, 12);
    assert.equal(schedule.faults.length, FAULT_NAMES.length);
    assert.ok(Math.abs(schedule.faults[1]!.at - schedule.faults[0]!.at - 5.8) < 0.05);
    assert.ok(schedule.faults.every((f) => f.settleSeconds >= 2));
    assert.ok(schedule.faults.at(-1)!.at < 90 - 8);
  });

  it("refuses a run of no length", () => {
    assert.throws(() => planSchedule(0), /positive length/);
  });
});

describe("layer sizes", () => {
  it("mostly small, the largest rarely: 512 MiB in a 20-minute run, scaled down for a short one", () => {
    assert.equal(largestLayer(20), 512 * 1024 * 1024);
    assert.equal(largestLayer(60), 512 * 1024 * 1024);
    assert.equal(largestLayer(1.5), Math.round((512 * 1024 * 1024 * 1.5) / 20));
    assert.equal(largestLayer(0.1), 16 * 1024 * 1024);
    const sizes = Array.from({ length: 100 }, (_, n) => layerSize(n, largestLayer(20)));
    assert.equal(Math.min(...sizes), 1024);
    assert.equal(sizes.filter((s) => s === 512 * 1024 * 1024).length, 4);
    assert.equal(sizes[3], 512 * 1024 * 1024, "one early, so even a short run has one");
    assert.ok(sizes.filter((s) => s <= 1024 * 1024).length >= 70);
  });
});

describe("soak options", () => {
  it("20 minutes with docker by default; a short run without; flags override", () => {
    assert.deepEqual(parseSoakOptions([]), { minutes: 20, out: "docs/reliability", docker: true, unattributedFault: false, rate: 20 });
    assert.equal(parseSoakOptions(["--minutes", "1.5"]).docker, false);
    assert.equal(parseSoakOptions(["--minutes", "1.5", "--docker"]).docker, true);
    assert.equal(parseSoakOptions(["--no-docker"]).docker, false);
    assert.equal(parseSoakOptions(["--unattributed-fault", "--out", "/tmp/x/"]).out, "/tmp/x");
    assert.throws(() => parseSoakOptions(["--minutes", "0"]), /positive/);
    assert.throws(() => parseSoakOptions(["--bogus"]), /bogus/);
  });
});
