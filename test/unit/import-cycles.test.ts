// No import cycles in src/. A cycle means neither module can be understood, tested or loaded without the
// other, and at runtime one of them sees the other half-initialized; so layers stay layers.
//
// Edges: every static `import … from` and `export … from`, type-only ones included: a type-only cycle is
// no runtime hazard, but it is the same knot in the design (sites.ts needing auth/build.ts's types while
// auth/build.ts needed sites.ts's names was one) and the next value import along it makes it a real one.
// Not edges: dynamic `import()` (and `typeof import()` types): that is how a module is deliberately split
// off to be loaded only when needed (acme.js behind acme-sites.ts), so it cannot form a load cycle.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { cycles, importGraph, loopThrough, staticImports, type Graph } from "../helpers/import-graph.js";

const srcDir = fileURLToPath(new URL("../../src/", import.meta.url));

/**
 * Imports tolerated for now, as [importer, imported] relative to src/: each closes a cycle through a file
 * another change is restructuring. The cycle check ignores these edges; whoever untangles one deletes its
 * entry (the test fails on an entry that no longer closes a cycle, so the list only shrinks).
 */
const ALLOWED_EDGES: readonly (readonly [string, string])[] = [];

const withoutAllowed = (graph: Graph): Graph =>
  new Map([...graph].map(([from, targets]) => [from, targets.filter((to) => !ALLOWED_EDGES.some(([a, b]) => a === from && b === to))]));

describe("import cycles in src/", () => {
  const graph = importGraph(srcDir);

  it("has none but through the allowed imports", () => {
    const pruned = withoutAllowed(graph);
    const found = cycles(pruned);
    const described = found.map((component) => `  ${component.join(", ")}\n    e.g. ${loopThrough(pruned, component).join(" → ")}`);
    assert.equal(found.length, 0, `import cycles (the modules of each, and one loop through it):\n${described.join("\n")}`);
  });

  it("allows no import that no longer closes a cycle", () => {
    const components = cycles(graph);
    const stale = ALLOWED_EDGES.filter(
      ([from, to]) => !graph.get(from)?.includes(to) || !components.some((component) => component.includes(from) && component.includes(to)),
    );
    assert.deepEqual(stale, [], "these allowed imports are gone or close no cycle any more: delete their entries");
  });

  it("sees static imports and re-exports, type-only ones too, but not dynamic import()", () => {
    const text = [
      'import { a } from "./a.js";',
      'import type { B } from "../b.js";',
      'export { c } from "./c.js";',
      'export type { D } from "./d/index.js";',
      'import "node:fs";',
      'const lazy = () => import("./lazy.js");',
      'let typed: typeof import("./typed.js") | null = null;',
    ].join("\n");
    assert.deepEqual(staticImports("x/y.ts", text), ["x/a.ts", "b.ts", "x/c.ts", "x/d/index.ts"]);
  });

  it("finds a cycle, and only the modules on it", () => {
    const graph: Graph = new Map([
      ["a.ts", ["b.ts"]],
      ["b.ts", ["c.ts", "d.ts"]],
      ["c.ts", ["a.ts"]],
      ["d.ts", []],
      ["e.ts", ["e.ts"]],
    ]);
    assert.deepEqual(cycles(graph).sort(), [["a.ts", "b.ts", "c.ts"], ["e.ts"]]);
    assert.deepEqual(loopThrough(graph, ["a.ts", "b.ts", "c.ts"]), ["a.ts", "b.ts", "c.ts", "a.ts"]);
  });
});
