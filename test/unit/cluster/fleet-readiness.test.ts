// The cluster's /readyz from its workers' own pool views: healthy only where every worker that answered
// says so, outstanding requests summed, not listening when no worker answered.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { aggregateReadiness } from "../../../src/cluster/fleet-data-plane.js";
import type { BackendReadiness } from "../../../src/control/data-plane.js";

const backend = (url: string, healthy: boolean, outstanding: number, pool = "site/main"): BackendReadiness => ({ pool, url, origin: new URL(url).origin, healthy, outstanding });

describe("aggregateReadiness", () => {
  it("marks a backend unhealthy if any worker that answered sees it unhealthy, and sums what is outstanding", () => {
    const one = { listening: true, backends: [backend("http://127.0.0.1:5001/", true, 2), backend("http://127.0.0.1:5002/", true, 0)] };
    const two = { listening: true, backends: [backend("http://127.0.0.1:5001/", true, 1), backend("http://127.0.0.1:5002/", false, 3)] };
    assert.deepEqual(aggregateReadiness([one, two]), {
      listening: true,
      backends: [backend("http://127.0.0.1:5001/", true, 3), backend("http://127.0.0.1:5002/", false, 3)],
    });
  });

  it("keeps pools apart: the same backend in two pools is two entries", () => {
    const view = { listening: true, backends: [backend("http://127.0.0.1:5001/", true, 1, "a"), backend("http://127.0.0.1:5001/", false, 0, "b")] };
    assert.deepEqual(aggregateReadiness([view, view]).backends, [backend("http://127.0.0.1:5001/", true, 2, "a"), backend("http://127.0.0.1:5001/", false, 0, "b")]);
  });

  it("is listening when one worker is, and not when none answered", () => {
    assert.equal(aggregateReadiness([{ listening: false, backends: [] }, { listening: true, backends: [] }]).listening, true);
    assert.deepEqual(aggregateReadiness([]), { listening: false, backends: [] });
  });
});
