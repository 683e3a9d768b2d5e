// Group namespaces match repository names with the access rules' glob grammar, without backtracking.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { compileGlob } from "../../../src/auth/access.js";
import { compileRepositoryGlobs } from "../../../src/backends/repository-globs.js";

const matches = (glob: string, name: string) => compileRepositoryGlobs([glob])(name);

describe("repository globs for group members", () => {
  it("* stays within one path component, ** crosses them (also none), ? is one character", () => {
    assert.ok(matches("team/*", "team/app"));
    assert.ok(!matches("team/*", "team/app/sub"));
    assert.ok(!matches("team/*", "team"));
    assert.ok(matches("team/**", "team/app/sub") && matches("team/**", "team/app"));
    assert.ok(!matches("team/**", "teams/app") && !matches("team/**", "other/team/app"));
    assert.ok(matches("**", "a/b/c"));
    assert.ok(matches("a/**/z", "a/z") && matches("a/**/z", "a/b/c/z") && !matches("a/**/z", "a/bz"));
    assert.ok(matches("app-?", "app-1") && !matches("app-?", "app-10") && !matches("a?b", "a/b"));
    assert.ok(matches("my.app", "my.app") && !matches("my.app", "myxapp"));
  });

  it("a list matches when any of its globs does", () => {
    const owned = compileRepositoryGlobs(["team/**", "tools/*"]);
    assert.deepEqual(["team/a/b", "tools/x", "tools/x/y", "library/alpine"].map(owned), [true, true, false, false]);
  });

  it("agrees with the access rules' globs on every glob and name", () => {
    const char = fc.constantFrom("a", "b", "/", "*", "?", "-", ".");
    const nameChar = fc.constantFrom("a", "b", "/", "-", ".");
    fc.assert(
      fc.property(fc.array(char, { maxLength: 10 }), fc.array(nameChar, { maxLength: 12 }), (globChars, nameChars) => {
        const glob = globChars.join("");
        const name = nameChars.join("");
        assert.equal(matches(glob, name), new RegExp(`^(?:${compileGlob(glob)})$`).test(name), `${glob} vs ${name}`);
      }),
      { numRuns: 20_000 },
    );
  });

  it("takes time bounded by name × glob length on a glob a backtracking regex stalls on (seconds at 40 characters)", () => {
    const glob = "**a**a**a**a**a**a**a**a**b";
    const name = "a".repeat(255);
    const started = performance.now();
    assert.equal(matches(glob, name), false);
    assert.ok(performance.now() - started < 200, `took ${performance.now() - started} ms`);
  });
});
