// Which group members answer for a repository name: members' declared repositories, and the names pushTo
// owns, which no other member may serve (a public cache after the hosted registry must never supply them).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { membersFor, owns } from "../../../src/backends/namespaces.js";
import type { GroupUpstream } from "../../../src/backends/upstream.js";
import { parseConfig } from "../../../src/config/load.js";
import { gatewayConfig } from "../../../src/config/schema.js";
import { SiteMap } from "../../../src/sites.js";
import { configIssues } from "../../helpers/config-issues.js";

type Member = { name: string; repositories?: string[] };

/** The group a site of these members builds (members on distinct loopback ports, nothing started). */
function groupOf(members: Member[], pushTo?: string): GroupUpstream {
  const group = members.map((member, i) => ({ ...member, backend: `http://127.0.0.1:${5001 + i}` }));
  const config = gatewayConfig.parse({ sites: [{ hosts: ["group.test"], group, ...(pushTo ? { pushTo } : {}) }] });
  const upstream = new SiteMap(config).sites[0]!.upstreams.fallback;
  assert.equal(upstream.kind, "group");
  return upstream;
}

const asked = (group: GroupUpstream, repository: string) => {
  const choice = membersFor(group, repository);
  return { members: choice.members.map((member) => member.name), owned: choice.owned };
};

describe("group member selection (backends/namespaces.ts)", () => {
  it("pushTo declaring its repositories owns them: only pushTo is asked, whatever the others declare", () => {
    const group = groupOf([{ name: "hosted", repositories: ["team/**"] }, { name: "cache" }], "hosted");
    assert.deepEqual(asked(group, "team/svc"), { members: ["hosted"], owned: true });
    assert.deepEqual(asked(group, "team/a/b"), { members: ["hosted"], owned: true });
    // Not pushTo's: the cache alone (hosted serves only what it declares).
    assert.deepEqual(asked(group, "library/alpine"), { members: ["cache"], owned: false });
    assert.deepEqual(asked(group, "teams/svc"), { members: ["cache"], owned: false });
    // A member declaring an owned name is not asked for it either.
    const overlapping = groupOf([{ name: "cache", repositories: ["**"] }, { name: "hosted", repositories: ["team/**"] }], "hosted");
    assert.deepEqual(asked(overlapping, "team/svc"), { members: ["hosted"], owned: true });
    assert.deepEqual(asked(overlapping, "library/alpine"), { members: ["cache"], owned: false });
  });

  it("pushTo declaring nothing owns every name no other member declares: the others serve an allow-list", () => {
    const group = groupOf([{ name: "hosted" }, { name: "cache", repositories: ["library/**", "bitnami/*"] }], "hosted");
    assert.deepEqual(asked(group, "team/svc"), { members: ["hosted"], owned: true });
    assert.deepEqual(asked(group, "bitnami/a/b"), { members: ["hosted"], owned: true });
    // Declared by the cache: hosted first (it serves every name), then the cache.
    assert.deepEqual(asked(group, "library/alpine"), { members: ["hosted", "cache"], owned: false });
    assert.deepEqual(asked(group, "bitnami/redis"), { members: ["hosted", "cache"], owned: false });
  });

  it("members declaring nothing serve every name pushTo does not own, in group order", () => {
    const group = groupOf([{ name: "cache-a", repositories: ["library/**"] }, { name: "hosted", repositories: ["team/**"] }, { name: "cache-b" }], "hosted");
    assert.deepEqual(asked(group, "library/alpine"), { members: ["cache-a", "cache-b"], owned: false });
    assert.deepEqual(asked(group, "other/app"), { members: ["cache-b"], owned: false });
    assert.deepEqual(asked(group, "team/x"), { members: ["hosted"], owned: true });
  });

  it("a group without pushTo owns nothing; a name no member serves has no member", () => {
    const group = groupOf([{ name: "m1", repositories: ["a/**"] }, { name: "m2", repositories: ["b/**"] }]);
    assert.deepEqual(asked(group, "a/x"), { members: ["m1"], owned: false });
    assert.deepEqual(asked(group, "b/x"), { members: ["m2"], owned: false });
    assert.deepEqual(asked(group, "c/x"), { members: [], owned: false });
    assert.equal(owns(group, "a/x"), false);
    const open = groupOf([{ name: "m1" }, { name: "m2" }]);
    assert.deepEqual(asked(open, "anything"), { members: ["m1", "m2"], owned: false });
  });
});

describe("group member repositories in the configuration", () => {
  const site = (...member: string[]) =>
    ["sites:", "  - hosts: [a.test]", "    pushTo: hosted", "    group:", "      - name: hosted", "        backend: http://127.0.0.1:5001", ...member].join("\n") + "\n";

  it("refuses a pattern outside the glob grammar, naming the key", () => {
    const issues = configIssues(site("      - name: cache", "        backend: http://127.0.0.1:5002", '        repositories: ["Team/(a|b)"]'));
    assert.equal(issues.length, 1, JSON.stringify(issues));
    assert.equal(issues[0]!.key, "sites[0].group[1].repositories[0]");
    assert.equal(issues[0]!.line, 9);
    assert.match(issues[0]!.message, /expected a repository name or glob/);
  });

  it("refuses an empty list, naming the key", () => {
    const issues = configIssues(site("        repositories: []", "      - name: cache", "        backend: http://127.0.0.1:5002"));
    assert.equal(issues.length, 1, JSON.stringify(issues));
    assert.equal(issues[0]!.key, "sites[0].group[0].repositories");
    assert.match(issues[0]!.message, />=1 items/);
  });

  it("refuses a group with pushTo where no member declares repositories: the other members would never be asked", () => {
    const issues = configIssues(site("      - name: cache", "        backend: http://127.0.0.1:5002"));
    assert.equal(issues.length, 1, JSON.stringify(issues));
    assert.equal(issues[0]!.key, "sites[0].group[0].repositories");
    assert.match(issues[0]!.message, /declare the names "hosted" owns/);
  });

  it("accepts a declaration on pushTo or on another member, and a group without pushTo declaring nothing", () => {
    parseConfig(site('        repositories: ["team/**"]', "      - name: cache", "        backend: http://127.0.0.1:5002"), "test.yaml", {});
    parseConfig(site("      - name: cache", "        backend: http://127.0.0.1:5002", '        repositories: ["library/**"]'), "test.yaml", {});
    parseConfig(site().replace("    pushTo: hosted\n", "") + "      - name: cache\n        backend: http://127.0.0.1:5002\n", "test.yaml", {});
  });
});
