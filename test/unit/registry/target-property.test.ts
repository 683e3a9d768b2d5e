// "The access boundary holds however a request is spelled". Property: for any raw request target
// and method, the gateway's reading (checkTarget → formValues → classify) either refuses, or names exactly
// the route, repository and reference that distribution 2.8 would route the SAME raw target to, and demands
// at least the accesses distribution would. Distribution is modelled independently in
// test/helpers/distribution.ts (Go's url.ParseRequestURI, gorilla/mux cleaning and strict slash, the v2
// route regexes with reference.NameRegexp's optional domain prefix, handler method tables, app.go's access
// records). Random targets come from an alphabet biased to the dangerous pieces, plus generators that
// build near-valid registry paths and mutate them.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { classify, type RegistryRoute } from "../../../src/registry/routes.js";
import { checkTarget, formValues } from "../../../src/registry/target.js";
import {
  distributionAccesses,
  distributionHandles,
  distributionRoute,
  goForm,
  goParseQuery,
  goPathClean,
  goParseRequestURI,
  type DistributionRouteName,
  type ModelAccess,
} from "../../helpers/distribution.js";

const HEX64 = "0123456789abcdef".repeat(4);
const DIGEST = `sha256:${HEX64}`;
const RUNS = Number(process.env.PROPERTY_RUNS ?? 20_000);

type GatewayReading = { refused: string } | { route: RegistryRoute; rawQuery: string };

/** What the pipeline does with a target before any auth (src/pipeline.ts stage 2, without a body). */
function gatewayReading(method: string, target: string): GatewayReading {
  const checked = checkTarget(target);
  if (!checked.ok) return { refused: checked.reason };
  const mountFrom = method === "POST" ? formValues(checked.rawQuery, "from") : [];
  if (mountFrom === null) return { refused: "bad escape in query" };
  const classified = classify(method, checked.path, mountFrom);
  if (!classified.ok) return { refused: classified.message };
  // The token endpoint and docker search (v1 ping and search) are the gateway's own: never forwarded, so
  // never the backend's reading.
  if (classified.route.kind === "token") return { refused: "token endpoint" };
  if (classified.route.kind === "search" || classified.route.kind === "ping") return { refused: "answered by the gateway" };
  return { route: classified.route, rawQuery: checked.rawQuery };
}

/** The gateway's route kind + phase as distribution's route name. */
function distributionNameOf(route: RegistryRoute): DistributionRouteName | "referrers" {
  switch (route.kind) {
    case "upload":
      return route.uploadPhase === "start" ? "blob-upload" : "blob-upload-chunk";
    case "base":
    case "catalog":
    case "tags":
    case "manifest":
    case "blob":
    case "referrers":
      return route.kind;
    default:
      throw new Error(`unexpected route kind ${route.kind}`);
  }
}

/** Go works on bytes; compare as text (the gateway refuses anything that is not ASCII anyway). */
const asBytes = (text: string) => Buffer.from(text, "utf8").toString("latin1");
const asText = (bytes: string) => Buffer.from(bytes, "latin1").toString("utf8");
const key = (a: { type: string; name: string; action: string }) => `${a.type}:${a.name}:${a.action}`;

/**
 * Throws (with the reason) when the gateway's reading of method + target differs from distribution's.
 * Returns what happened, for the statistics that keep the generators honest.
 */
function assertSameReading(method: string, target: string): "refused" | "agreed" | "benign" {
  const gateway = gatewayReading(method, target);
  if ("refused" in gateway) return "refused";
  const { route } = gateway;
  const model = distributionRoute(asBytes(target));
  const where = `${method} ${JSON.stringify(target)}: gateway ${JSON.stringify(route)}, distribution ${JSON.stringify(model)}`;

  // One documented difference that cannot widen access: referrers (OCI 1.1) is not a route of distribution
  // 2.8 (404), and the gateway passes it on for backends that have it.
  if (route.kind === "referrers" && model.outcome === "notFound") return "benign";

  assert.equal(model.outcome, "routed", `the gateway accepted a target distribution does not route: ${where}`);
  if (model.outcome !== "routed") throw new Error("unreachable");
  assert.equal(distributionNameOf(route), model.route.name, `route differs: ${where}`);
  assert.equal(route.repository, model.route.repository === undefined ? undefined : asText(model.route.repository), `repository differs: ${where}`);
  assert.equal(route.reference, model.route.reference === undefined ? undefined : asText(model.route.reference), `reference differs: ${where}`);
  assert.ok(distributionHandles(model.route.name, method), `the gateway accepted a method distribution has no handler for: ${where}`);

  // Every right distribution would exercise is one the gateway demands (cancel: push instead of delete,
  // with delete kept for a token-checking backend — the documented exception).
  const demanded = new Set(route.accesses.map(key));
  const forBackend = new Set((route.backendAccesses ?? []).map(key));
  const needed: ModelAccess[] = distributionAccesses(model.route, method, goForm(method, model.rawQuery, undefined, undefined)).map((a) => ({
    ...a,
    name: asText(a.name),
  }));
  for (const access of needed) {
    if (demanded.has(key(access))) continue;
    const cancel = route.kind === "upload" && route.uploadPhase === "cancel" && access.action === "delete";
    assert.ok(cancel && forBackend.has(key(access)) && demanded.has(`repository:${access.name}:push`), `the gateway does not demand ${key(access)}: ${where}`);
  }
  return "agreed";
}

// ---------------------------------------------------------------- generators

const METHODS = ["GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "OPTIONS", "TRACE", "PROPFIND", "get", "Get", "CONNECT"];
const method = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom("GET", "HEAD", "PUT", "POST", "PATCH", "DELETE") },
  { weight: 1, arbitrary: fc.constantFrom(...METHODS) },
);

/** The dangerous pieces of a target, each a token. */
const piece = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom("/", "/", "/", ".", "..", "\\", "#", "?", ";", ":", "=", "&", "_", "-", "+", "%", "@", "~", " ") },
  { weight: 6, arbitrary: fc.constantFrom("v2", "manifests", "blobs", "uploads", "tags", "list", "referrers", "_catalog", "token", "secret", "public", "app") },
  { weight: 4, arbitrary: fc.constantFrom("%2F", "%2f", "%2e", "%2E%2E", "%65", "%5C", "%5c", "%3A", "%3a", "%23", "%3F", "%25", "%00", "%20", "%5F", "%C3%A9", "%zz", "%4") },
  { weight: 4, arbitrary: fc.constantFrom(...[..."0123456789abcdefABCDEF"]) },
  { weight: 4, arbitrary: fc.constantFrom(...[..."abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"]) },
  { weight: 2, arbitrary: fc.constantFrom(DIGEST, "sha256:", `sha512:${HEX64}${HEX64}`, "sha256+b64:abc=", `SHA256:${HEX64}`) },
  { weight: 1, arbitrary: fc.constantFrom("é", "ſ", "\u212a", "\u200b", "ｓ", "\u0000", "\t", "\r\n", "\x7f") },
);

const randomTarget = fc.oneof(
  fc.array(piece, { maxLength: 24 }).map((parts) => `/${parts.join("")}`),
  fc.array(piece, { maxLength: 24 }).map((parts) => `/v2/${parts.join("")}`),
  fc.array(piece, { maxLength: 8 }).map((parts) => parts.join("")),
);

/** Pick the plain (valid) choice most of the time and a near miss otherwise. */
const mostly = <T,>(valid: fc.Arbitrary<T>, nearMiss: fc.Arbitrary<T>) => fc.oneof({ weight: 5, arbitrary: valid }, { weight: 1, arbitrary: nearMiss });

const validComponent = fc.oneof(
  fc.constantFrom("app", "secret", "public", "a", "x1", "my-app", "my.app", "my_app", "my__app", "a--b", "manifests", "blobs", "uploads", "tags", "list", "referrers", "v2", "token"),
  fc.stringMatching(/^[a-z0-9]{1,6}(?:(?:[._]|__|-+)[a-z0-9]{1,4})?$/),
);
const component = mostly(
  validComponent,
  fc.constantFrom(
    "Secret", "SECRET", "secr%65t", "%73ecret", ".", "..", "", "_app", "app_", "a.-b", "a___b", "-a", "a-", "my..app",
    "localhost:5000", "example.com", "Example.COM:443", "[::1]", "a:b", "_catalog", "secret%2Fapp", "app;x", "app#", "app\\x", "app ", "a=b",
  ),
);

const name = fc.oneof(
  { weight: 9, arbitrary: fc.array(component, { minLength: 1, maxLength: 4 }).map((parts) => parts.join("/")) },
  // Over-long names around the 255 limit.
  { weight: 1, arbitrary: fc.integer({ min: 120, max: 130 }).map((n) => `public/${"ab".repeat(n)}`) },
);

const tagOrDigest = mostly(
  fc.oneof(fc.constantFrom("latest", "v1.0", "_x", "a".repeat(128), "LATEST", "manifests", "x..y", DIGEST), fc.stringMatching(/^[\w][\w.-]{0,10}$/)),
  fc.constantFrom(".hidden", "-x", "a".repeat(129), `sha256:${HEX64.slice(0, 31)}`, "sha256:xyz", "lat%65st", "latest;x", "latest#x", "", "a:b", "x=y"),
);
const digest = mostly(
  fc.constantFrom(DIGEST, `sha256:${HEX64.toUpperCase()}`, `sha512:${HEX64}${HEX64}`, `sha256:${HEX64.slice(0, 32)}`, `a.b+c_d-e:${HEX64}`),
  fc.constantFrom("sha256:abc", "sha256%3Aabc", `sha256%3A${HEX64}`, "sha256:A=B_C-d", `Sha256:${HEX64}`, "sha256:", `:${HEX64}`),
);
const uuid = mostly(
  fc.oneof(fc.constantFrom("0b1c-uuid", "a=b", "x.y_z-w", "..x", "x.."), fc.stringMatching(/^[a-zA-Z0-9\-_.=]{1,12}$/)),
  fc.constantFrom("..", ".", "a:b", "a%20b", "", "a;b"),
);

const suffix = mostly(
  fc.oneof(
    tagOrDigest.map((ref) => `/manifests/${ref}`),
    fc.constant("/tags/list"),
    digest.map((d) => `/blobs/${d}`),
    fc.constant("/blobs/uploads/"),
    uuid.map((u) => `/blobs/uploads/${u}`),
    digest.map((d) => `/referrers/${d}`),
  ),
  fc.constantFrom("/tags/list/", "/tags/lis%74", "/tags/LIST", "/tags/", "/tags/list/x", "/blobs/uploads", "/blobs/uploads//", "/blobs/uploads/.", "/_catalog", "", "/", "/manifests", "/blobs/"),
);

const junk = mostly(fc.constant(""), fc.constantFrom("/", "/.", "/..", "//", ";", ";x=y", "#", "#frag", "%20", "%00", "\\", "?x#y", "/../../secret/app/manifests/latest"));

const query = mostly(
  fc.constantFrom("", "", "?n=10&last=a", `?digest=${DIGEST}`, "?_state=abc%3D%3D", `?mount=${DIGEST}&from=secret/app`, "?from=public/app&from=secret/app&mount=x", "?"),
  fc.constantFrom("?from=secret%2Fapp&mount=x", "?fr%6Fm=secret/app&mount=x", "?from=public/app;from=secret/app&mount=x", "?from=%zz", "?#", "?a=%E9"),
);

const prefix = mostly(fc.constant("/v2/"), fc.constantFrom("/V2/", "//v2/", "/v2//", "/v2/./", "/v2/../v2/", "/v2\\", "v2/", "/v3/"));

const structuredTarget = fc.oneof(
  { weight: 9, arbitrary: fc.tuple(prefix, name, suffix, junk, query).map(([p, n, s, j, q]) => `${p}${n}${s}${j}${q}`) },
  { weight: 1, arbitrary: fc.tuple(fc.constantFrom("/v2/", "/v2", "/v2/_catalog", "/token", "/v2/_catalog/", "/v2/_CATALOG", "/v2/%5Fcatalog", "/"), junk, query).map(([p, j, q]) => `${p}${j}${q}`) },
);

/** A canonical-looking route, then with one piece of it percent-encoded, doubled, dotted, upper-cased or slashed. */
const mutatedTarget = fc
  .tuple(fc.tuple(name, suffix, query).map(([n, s, q]) => `/v2/${n}${s}${q}`), fc.nat(), fc.constantFrom("encode", "encodeSlash", "dot", "double", "upper", "backslash"))
  .map(([target, at, how]) => {
    const i = 4 + (at % Math.max(1, target.length - 4));
    const c = target[i] ?? "";
    switch (how) {
      case "encode":
        return `${target.slice(0, i)}%${c.charCodeAt(0).toString(16).padStart(2, "0")}${target.slice(i + 1)}`;
      case "encodeSlash":
        return `${target.slice(0, i)}${target.slice(i).replace("/", "%2F")}`;
      case "dot":
        return `${target.slice(0, i)}/.${target.slice(i)}`;
      case "double":
        return `${target.slice(0, i)}/${target.slice(i)}`;
      case "upper":
        return `${target.slice(0, i)}${c.toUpperCase()}${target.slice(i + 1)}`;
      case "backslash":
        return `${target.slice(0, i)}${target.slice(i).replace("/", "\\")}`;
    }
    return target;
  });

// ---------------------------------------------------------------- the properties

describe("request target property: the gateway reads a target the way distribution routes it", () => {
  function run(arbitrary: fc.Arbitrary<string>, label: string, minAgreed: number): void {
    const tally = { refused: 0, agreed: 0, benign: 0 };
    fc.assert(
      fc.property(method, arbitrary, (m, target) => {
        tally[assertSameReading(m, target)]++;
      }),
      { numRuns: RUNS, seed: process.env.PROPERTY_SEED ? Number(process.env.PROPERTY_SEED) : undefined },
    );
    // Not vacuous: a share of the generated targets must get through the gateway and be compared.
    if (process.env.PROPERTY_VERBOSE) console.log(label, JSON.stringify(tally));
    assert.ok(tally.agreed >= minAgreed, `${label}: only ${tally.agreed} of ${RUNS} targets were accepted and compared (${JSON.stringify(tally)})`);
  }

  it("random targets over a dangerous alphabet", () => run(randomTarget, "random", 1));
  it("near-valid registry paths", () => run(structuredTarget, "structured", RUNS / 20));
  // Most mutations make a target non-canonical (refused); the rest (an upper-cased letter, a doubled
  // piece that stays canonical) must still agree.
  it("near-valid registry paths with one mutation", () => run(mutatedTarget, "mutated", RUNS / 50));

  it("agrees on known examples (a check of the model and of the comparison itself)", () => {
    // Accepted and equal.
    assert.equal(assertSameReading("GET", "/v2/secret/app/manifests/manifests/latest"), "agreed");
    assert.equal(assertSameReading("POST", `/v2/public/app/blobs/uploads/?mount=${DIGEST}&from=secret/app`), "agreed");
    assert.equal(assertSameReading("DELETE", "/v2/public/app/blobs/uploads/0b1c-uuid"), "agreed");
    assert.equal(assertSameReading("GET", "/v2/_catalog?n=1"), "agreed");
    // Refused spellings that distribution would have routed to secret/app.
    for (const target of ["/v2/secr%65t/app/manifests/latest", "/v2/secret%2Fapp/tags/list", "/v2/secret/app/tags/lis%74", "/v2/%5Fcatalog"]) {
      const model = distributionRoute(target);
      assert.equal(model.outcome, "routed", `the model routes ${target}`);
      assert.equal(assertSameReading("GET", target), "refused", target);
    }
    assert.equal(assertSameReading("GET", "/v2"), "refused");
    assert.equal(assertSameReading("GET", `/v2/a/referrers/${DIGEST}`), "benign");
  });

  it("the comparison fails when the readings differ (it can fail)", () => {
    // Feed the comparison a reading the gateway does not make, through the model directly.
    const model = distributionRoute("/v2/secr%65t/app/manifests/latest");
    assert.ok(model.outcome === "routed" && model.route.repository === "secret/app");
    const plain = gatewayReading("GET", "/v2/secrxt/app/manifests/latest");
    assert.ok("route" in plain && plain.route.repository !== model.route.repository);
    assert.throws(() => assert.equal(plain.route.repository, model.route.repository));
  });
});

describe("the distribution model itself", () => {
  it("decodes and cleans like Go and gorilla/mux", () => {
    assert.deepEqual(goParseRequestURI("/v2/a%2Fb/x?y=%zz"), { path: "/v2/a/b/x", rawQuery: "y=%zz" });
    assert.equal(goParseRequestURI("/v2/%zz"), null);
    assert.deepEqual(goParseRequestURI("/v2/a#b?c"), { path: "/v2/a#b", rawQuery: "c" });
    assert.equal(goPathClean("/v2/a/../b/./c//d/"), "/v2/b/c/d");
    assert.equal(distributionRoute("/v2/a/b/../tags/list").outcome, "redirect");
    assert.equal(distributionRoute("/v2/a/tags/list/").outcome, "redirect");
    assert.equal(distributionRoute("/v2/a/blobs/uploads").outcome, "redirect");
    assert.equal(distributionRoute("/v2").outcome, "redirect");
    assert.equal(distributionRoute("/v2/a\\b/tags/list").outcome, "notFound");
    assert.equal(distributionRoute("/v2/a/referrers/" + DIGEST).outcome, "notFound");
  });

  it("routes like distribution 2.8: names with a domain prefix, manifests in names, digests", () => {
    const routed = (target: string) => {
      const r = distributionRoute(target);
      assert.equal(r.outcome, "routed", target);
      return r.outcome === "routed" ? r.route : undefined;
    };
    assert.deepEqual(routed("/v2/Secret/app/manifests/latest"), { name: "manifest", repository: "Secret/app", reference: "latest" });
    assert.deepEqual(routed("/v2/localhost:5000/a/tags/list"), { name: "tags", repository: "localhost:5000/a" });
    assert.deepEqual(routed("/v2/secret/app/manifests/manifests/latest"), { name: "manifest", repository: "secret/app/manifests", reference: "latest" });
    assert.deepEqual(routed("/v2/a/blobs/sha256:A=B"), { name: "blob", repository: "a", reference: "sha256:A=B" });
    assert.deepEqual(routed("/v2/a/blobs/uploads/x=y"), { name: "blob-upload-chunk", repository: "a", reference: "x=y" });
    assert.deepEqual(routed("/v2/_catalog"), { name: "catalog" });
    assert.equal(distributionRoute("/v2/a/tags/LIST").outcome, "notFound");
  });
});

// ---------------------------------------------------------------- formValues against Go's url.ParseQuery

describe("formValues reads `from` at least as Go's url.ParseQuery does", () => {
  /** [raw, Go's values of "from" (Go ≥ 1.17), the gateway's: a list, or null for a refusal]. */
  const EXAMPLES: [string, string[], string[] | null][] = [
    ["from=secret/app", ["secret/app"], ["secret/app"]],
    ["mount=x&from=a&from=b", ["a", "b"], ["a", "b"]],
    ["fr%6Fm=secret/app", ["secret/app"], ["secret/app"]],
    ["%66%72%6f%6d=x", ["x"], ["x"]],
    ["from=secret%2Fapp", ["secret/app"], ["secret/app"]],
    ["from=secret%2fapp", ["secret/app"], ["secret/app"]],
    ["from=a+b", ["a b"], ["a b"]],
    ["from", [""], [""]],
    ["from=", [""], [""]],
    ["&&from=x&&", ["x"], ["x"]],
    ["from=x%26from%3Dy", ["x&from=y"], ["x&from=y"]],
    ["FROM=x", [], []],
    ["from%3Dx", [], []],
    ["from=%2561", ["%61"], ["%61"]],
    ["from=x#y", ["x#y"], ["x#y"]],
    ["from=x=y", ["x=y"], ["x=y"]],
    // Go ≥ 1.17 skips a pair with ';'; Go < 1.17 split on it. The gateway reads both ways.
    ["from=a;from=b", [], ["a", "b"]],
    ["mount=x;from=secret/app", [], ["secret/app"]],
    // Go skips a pair with a bad escape (and keeps the rest); the gateway refuses the whole request.
    ["from=%zz&from=secret/app", ["secret/app"], null],
    ["from=%4", [], null],
    // Go keeps bytes that are not UTF-8; the gateway refuses them.
    ["from=%E9", ["\xe9"], null],
    ["from=%C3%A9", [Buffer.from("é").toString("latin1")], ["é"]],
  ];

  for (const [raw, go, gateway] of EXAMPLES) {
    it(`${JSON.stringify(raw)} → Go ${JSON.stringify(go)}, gateway ${JSON.stringify(gateway)}`, () => {
      assert.deepEqual(goParseQuery(raw).get("from") ?? [], go, "the model of Go");
      assert.deepEqual(formValues(raw, "from"), gateway);
    });
  }

  it("property: unless it refuses, the gateway's values include every value Go reads, for any key", () => {
    const formPiece = fc.oneof(
      fc.constantFrom("from", "mount", "fr", "om", "=", "&", ";", "+", "%", "%2F", "%6F", "%66", "%3D", "%26", "%3B", "%zz", "%E9", "%C3%A9", "#", "?", "/", "secret", "app", "a", "F"),
      fc.stringMatching(/^[a-z0-9%]{1,3}$/),
    );
    fc.assert(
      fc.property(fc.array(formPiece, { maxLength: 16 }).map((p) => p.join("")), fc.constantFrom("from", "mount", "fr"), (raw, name) => {
        const gateway = formValues(raw, name);
        if (gateway === null) return;
        const go = (goParseQuery(raw).get(name) ?? []).map(asText);
        const remaining = [...gateway];
        for (const value of go) {
          const at = remaining.indexOf(value);
          assert.ok(at >= 0, `${JSON.stringify(raw)}: Go reads ${name}=${JSON.stringify(value)}, the gateway ${JSON.stringify(gateway)}`);
          remaining.splice(at, 1);
        }
      }),
      { numRuns: RUNS },
    );
  });
});
