// The gateway's own catalog and tags lists (src/registry/catalog.ts): reading `n`/`last`, paginating a merged
// list with Link headers, and fetching every page of a member's list from real loopback servers (and, when
// it is installed, a real distribution registry).
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, it } from "node:test";
import {
  fetchRepositories,
  fetchTags,
  ListTooLarge,
  MAX_NAMES,
  MAX_PAGE,
  MAX_PAGES,
  MAX_TAG_LIST_BYTES,
  mergeSorted,
  nextLink,
  PAGE_TIMEOUT_MS,
  paginate,
  readPageRequest,
  type ListSource,
} from "../../../src/registry/catalog.js";

// ---------------------------------------------------------------- readPageRequest

describe("readPageRequest", () => {
  const ok = (query: string) => {
    const request = readPageRequest(query);
    assert.ok(request.ok, `expected ${JSON.stringify(query)} to be accepted, got ${JSON.stringify(request)}`);
    return { n: request.n, last: request.last };
  };
  const refused = (query: string) => {
    const request = readPageRequest(query);
    assert.ok(!request.ok, `expected ${JSON.stringify(query)} to be refused, got ${JSON.stringify(request)}`);
    assert.ok(request.message.length > 0);
    return request.message;
  };

  it("reads n and last; absent or empty values are null", () => {
    assert.deepEqual(ok(""), { n: null, last: null });
    assert.deepEqual(ok("n=2&last=b"), { n: 2, last: "b" });
    assert.deepEqual(ok("last=b"), { n: null, last: "b" });
    assert.deepEqual(ok("n=&last="), { n: null, last: null });
    assert.deepEqual(ok("q=x&n=7"), { n: 7, last: null });
  });

  it("allows n=0 and leading zeros", () => {
    assert.deepEqual(ok("n=0"), { n: 0, last: null });
    assert.deepEqual(ok("n=000"), { n: 0, last: null });
    assert.deepEqual(ok("n=007"), { n: 7, last: null });
  });

  it("caps n at MAX_PAGE, however many digits it has", () => {
    assert.equal(MAX_PAGE, 1000);
    assert.equal(ok("n=1000").n, 1000);
    assert.equal(ok("n=1001").n, 1000);
    assert.equal(ok("n=99999999999999999999999999999").n, 1000);
    assert.equal(ok("n=0000000000000000000012").n, 12);
  });

  it("refuses an n that is not a non-negative integer", () => {
    // "+5" reads as " 5" ('+' is a space); %2B5 is "+5", which Go's Atoi would take; %EF%BC%95 is a fullwidth 5.
    for (const query of ["n=-1", "n=-0", "n=abc", "n=1.5", "n=1e3", "n=+5", "n=%2B5", "n=%205", "n=5%20", "n=0x10", "n=1,2", "n=Infinity", "n=NaN", "n=%EF%BC%95"]) {
      assert.match(refused(query), /n must be a non-negative integer/);
    }
  });

  it("decodes percent-escapes and '+' in values", () => {
    assert.deepEqual(ok("n=%31%30&last=a%2Fb"), { n: 10, last: "a/b" });
    assert.deepEqual(ok("last=a+b"), { n: null, last: "a b" });
    assert.match(refused("last=%zz"), /percent-escape/);
    assert.match(refused("n=%E0%A4%A"), /percent-escape/);
  });

  it("takes the first of repeated parameters, as Go's url.Values.Get does", () => {
    assert.deepEqual(ok("n=2&n=3"), { n: 2, last: null });
    assert.deepEqual(ok("last=a&last=b&n=1"), { n: 1, last: "a" });
    refused("n=abc&n=2");
    assert.equal(ok("n=2&n=abc").n, 2);
  });
});

// ---------------------------------------------------------------- paginate

/** Follows the Links from the first page to the end, as a client would; returns every page. */
function walk(sorted: readonly string[], query: string, path: string): string[][] {
  const pages: string[][] = [];
  for (let i = 0; i < 10_000; i++) {
    const request = readPageRequest(query);
    assert.ok(request.ok);
    const { items, link } = paginate(sorted, request, path);
    pages.push(items);
    if (link === null) return pages;
    const match = /^<([^>]*)>; rel="next"$/.exec(link);
    assert.ok(match, `malformed Link ${link}`);
    const target = match[1]!;
    assert.ok(target.startsWith(`${path}?`), `Link ${link} leaves ${path}`);
    query = target.slice(path.length + 1);
  }
  assert.fail("the Links never ended");
}

describe("paginate", () => {
  const abcd = ["a", "b", "c", "d"];

  it("writes the Link the way distribution 2.8 does", () => {
    // distribution 2.8.2 over a, b, c, d answers ?n=2 with exactly this header.
    assert.deepEqual(paginate(abcd, { n: 2, last: null }, "/v2/_catalog"), {
      items: ["a", "b"],
      link: '</v2/_catalog?last=b&n=2>; rel="next"',
    });
    assert.deepEqual(paginate(abcd, { n: 2, last: "b" }, "/v2/_catalog"), { items: ["c", "d"], link: null });
  });

  it("gives a Link only when entries remain after the page", () => {
    assert.deepEqual(paginate(abcd, { n: 4, last: null }, "/v2/_catalog"), { items: abcd, link: null });
    assert.deepEqual(paginate(abcd, { n: 3, last: "a" }, "/v2/_catalog"), { items: ["b", "c", "d"], link: null });
    assert.deepEqual(paginate(abcd, { n: 2, last: "a" }, "/v2/x/tags/list"), { items: ["b", "c"], link: '</v2/x/tags/list?last=c&n=2>; rel="next"' });
  });

  it("n=0: an empty page and no Link, even when entries exist", () => {
    assert.deepEqual(paginate(abcd, { n: 0, last: null }, "/v2/_catalog"), { items: [], link: null });
    assert.deepEqual(paginate(abcd, { n: 0, last: "a" }, "/v2/_catalog"), { items: [], link: null });
  });

  it("n beyond the end: what remains, no Link", () => {
    assert.deepEqual(paginate(abcd, { n: 100, last: null }, "/v2/_catalog"), { items: abcd, link: null });
    assert.deepEqual(paginate(abcd, { n: 100, last: "c" }, "/v2/_catalog"), { items: ["d"], link: null });
  });

  it("starts strictly after last, which need not be in the list", () => {
    assert.deepEqual(paginate(abcd, { n: 2, last: "bb" }, "/v2/_catalog").items, ["c", "d"]);
    assert.deepEqual(paginate(abcd, { n: 2, last: "0" }, "/v2/_catalog").items, ["a", "b"]);
    assert.deepEqual(paginate(abcd, { n: 2, last: "A" }, "/v2/_catalog").items, ["a", "b"]);
    assert.deepEqual(paginate(abcd, { n: null, last: "b" }, "/v2/_catalog"), { items: ["c", "d"], link: null });
  });

  it("last after everything (or equal to the last entry): an empty page, no Link", () => {
    assert.deepEqual(paginate(abcd, { n: 2, last: "zzz" }, "/v2/_catalog"), { items: [], link: null });
    assert.deepEqual(paginate(abcd, { n: 2, last: "d" }, "/v2/_catalog"), { items: [], link: null });
    assert.deepEqual(paginate([], { n: 2, last: null }, "/v2/_catalog"), { items: [], link: null });
    assert.deepEqual(paginate([], { n: null, last: "a" }, "/v2/_catalog"), { items: [], link: null });
  });

  it("without n, pages by MAX_PAGE with a Link that names it", () => {
    const names = Array.from({ length: 2500 }, (_, i) => `repo-${String(i).padStart(5, "0")}`);
    const first = paginate(names, { n: null, last: null }, "/v2/_catalog");
    assert.equal(first.items.length, MAX_PAGE);
    assert.equal(first.link, `</v2/_catalog?last=repo-00999&n=${MAX_PAGE}>; rel="next"`);
    assert.deepEqual(walk(names, "", "/v2/_catalog").map((page) => page.length), [1000, 1000, 500]);
    // An n above MAX_PAGE given straight to paginate is capped too.
    assert.equal(paginate(names, { n: 5000, last: null }, "/v2/_catalog").items.length, MAX_PAGE);
    // Exactly MAX_PAGE entries: one page, no Link.
    assert.equal(paginate(names.slice(0, MAX_PAGE), { n: null, last: null }, "/v2/_catalog").link, null);
  });

  it("escapes last in the Link", () => {
    const { link } = paginate(["team/a", "team/b"], { n: 1, last: null }, "/v2/_catalog");
    assert.equal(link, '</v2/_catalog?last=team%2Fa&n=1>; rel="next"');
    assert.deepEqual(walk(["team/a", "team/b", "x y", "x+y"], "n=1", "/v2/_catalog"), [["team/a"], ["team/b"], ["x y"], ["x+y"]]);
  });

  it("following the Links yields every entry exactly once, in order, for any n", () => {
    const names = mergeSorted([["b", "a", "c/d", "c", "c-d", "c.d", "c_d", "0", "Z", "aa", "ab", "b1", "b10", "b2"]]);
    for (let n = 1; n <= names.length + 2; n++) {
      const pages = walk(names, `n=${n}`, "/v2/_catalog");
      assert.deepEqual(pages.flat(), names, `n=${n}`);
      assert.ok(pages.every((page) => page.length > 0 && page.length <= n), `n=${n}: ${JSON.stringify(pages)}`);
      assert.equal(pages.length, Math.ceil(names.length / n));
    }
  });
});

// ---------------------------------------------------------------- mergeSorted

describe("mergeSorted", () => {
  it("is the sorted, deduplicated union", () => {
    assert.deepEqual(mergeSorted([]), []);
    assert.deepEqual(mergeSorted([[], []]), []);
    assert.deepEqual(mergeSorted([["c", "a", "a"], ["b", "a"], ["d"]]), ["a", "b", "c", "d"]);
  });

  it("orders like distribution: bytes, so upper case before lower case, '-' '.' '/' before digits", () => {
    assert.deepEqual(mergeSorted([["b", "B", "a", "A"]]), ["A", "B", "a", "b"]);
    assert.deepEqual(mergeSorted([["v10", "v2", "v1"]]), ["v1", "v10", "v2"]);
    assert.deepEqual(mergeSorted([["a_b", "a/b", "a.b", "a-b", "a0", "ab"]]), ["a-b", "a.b", "a/b", "a0", "a_b", "ab"]);
  });

  it("does not modify its inputs", () => {
    const input = ["b", "a"];
    mergeSorted([input]);
    assert.deepEqual(input, ["b", "a"]);
  });
});

// ---------------------------------------------------------------- nextLink

describe("nextLink", () => {
  const backend = new URL("http://127.0.0.1:5000");
  it("accepts the relative and the same-origin absolute forms of the expected path", () => {
    assert.equal(nextLink('</v2/_catalog?last=b&n=2>; rel="next"', backend, "/v2/_catalog"), "/v2/_catalog?last=b&n=2");
    assert.equal(nextLink("<http://127.0.0.1:5000/v2/_catalog?last=b&n=2>; rel=next", backend, "/v2/_catalog"), "/v2/_catalog?last=b&n=2");
    assert.equal(nextLink('</v2/_catalog?page=1>; rel="prev", </v2/_catalog?page=3>; rel="next"', backend, "/v2/_catalog"), "/v2/_catalog?page=3");
    assert.equal(nextLink('</v2/_catalog?x=1>; rel="prev next"', backend, "/v2/_catalog"), "/v2/_catalog?x=1");
  });
  it("refuses another origin, another path, credentials and other relations", () => {
    for (const link of [
      '<http://127.0.0.1:5001/v2/_catalog?last=b>; rel="next"',
      '<https://127.0.0.1:5000/v2/_catalog?last=b>; rel="next"',
      '<//evil.example/v2/_catalog?last=b>; rel="next"',
      '<http://user:pw@127.0.0.1:5000/v2/_catalog?last=b>; rel="next"',
      '</v2/other/tags/list?last=b>; rel="next"',
      '</v2/_catalog/../x?last=b>; rel="next"',
      '</v2/_catalog?last=b>; rel="prev"',
      "</v2/_catalog?last=b>",
      "garbage",
    ]) {
      assert.equal(nextLink(link, backend, "/v2/_catalog"), null, link);
    }
    assert.equal(nextLink(undefined, backend, "/v2/_catalog"), null);
  });
});

// ---------------------------------------------------------------- fetching from loopback servers

interface Seen {
  url: string;
  authorization: string | undefined;
}

interface TestServer {
  url: URL;
  seen: Seen[];
  close(): Promise<void>;
}

async function serve(handler: (req: IncomingMessage, res: ServerResponse, url: URL) => void): Promise<TestServer> {
  const seen: Seen[] = [];
  const server = http.createServer((req, res) => {
    seen.push({ url: req.url ?? "", authorization: req.headers.authorization });
    handler(req, res, new URL(req.url ?? "/", "http://localhost"));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: new URL(`http://127.0.0.1:${port}`),
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text), ...headers });
  res.end(text);
}

/** A registry that honours n (capped at `pageCap`) and last, with distribution's Link. */
function paginatingHandler(all: readonly string[], field: "repositories" | "tags", pageCap: number, absolute = false) {
  return (_req: IncomingMessage, res: ServerResponse, url: URL) => {
    const sorted = [...all].sort();
    const n = Math.min(Number(url.searchParams.get("n") ?? 100), pageCap);
    const last = url.searchParams.get("last");
    const rest = last === null ? sorted : sorted.filter((name) => name > last);
    const page = rest.slice(0, n);
    const headers: Record<string, string> = {};
    if (rest.length > n) {
      const target = `${url.pathname}?last=${encodeURIComponent(page[page.length - 1]!)}&n=${n}`;
      headers.link = `<${absolute ? `http://${_req.headers.host}` : ""}${target}>; rel="next"`;
    }
    json(res, 200, field === "tags" ? { name: "x", tags: page } : { repositories: page }, headers);
  };
}

describe("fetchRepositories and fetchTags against loopback servers", () => {
  const agent = new http.Agent({ keepAlive: true });
  const servers: TestServer[] = [];
  const start = async (handler: Parameters<typeof serve>[0]) => {
    const server = await serve(handler);
    servers.push(server);
    return server;
  };
  const source = (server: TestServer, authorization?: string): ListSource => ({ backend: server.url, agent, authorization });
  after(async () => {
    await Promise.all(servers.map((server) => server.close()));
    agent.destroy();
  });

  const repos = Array.from({ length: 25 }, (_, i) => `team/app-${String(i).padStart(2, "0")}`);

  it("(a) follows a registry's Link pages, with the credentials on every page", async () => {
    const server = await start(paginatingHandler(repos, "repositories", 10));
    const names = await fetchRepositories(source(server, "Basic Zm9vOmJhcg=="));
    assert.deepEqual(names.sort(), repos);
    assert.deepEqual(
      server.seen.map((s) => s.url),
      ["/v2/_catalog?n=1000", "/v2/_catalog?last=team%2Fapp-09&n=10", "/v2/_catalog?last=team%2Fapp-19&n=10"],
    );
    assert.ok(server.seen.every((s) => s.authorization === "Basic Zm9vOmJhcg=="));
  });

  it("(a) follows absolute same-origin Links; tags too", async () => {
    const tags = ["v1", "v2", "v10", "latest", "B", "a"];
    const server = await start(paginatingHandler(tags, "tags", 2, true));
    assert.deepEqual((await fetchTags(source(server), "team/app"))?.sort(), [...tags].sort());
    assert.equal(server.seen.length, 3);
    assert.deepEqual(
      server.seen.map((s) => s.url.split("?")[0]),
      ["/v2/team/app/tags/list", "/v2/team/app/tags/list", "/v2/team/app/tags/list"],
    );
    assert.equal(server.seen[0]!.authorization, undefined);
  });

  it("(a) does not follow a Link to another origin or path: the list ends there", async () => {
    const elsewhere = await start((_req, res) => json(res, 200, { repositories: ["stolen"] }));
    const server = await start((_req, res, url) => {
      if (url.searchParams.get("n") === "1000") json(res, 200, { repositories: ["a"] }, { link: `<${elsewhere.url.origin}/v2/_catalog?last=a>; rel="next"` });
      else json(res, 200, { repositories: ["b"] }, { link: '</v2/other/tags/list?last=b>; rel="next"' });
    });
    assert.deepEqual(await fetchRepositories(source(server, "Bearer secret")), ["a"]);
    assert.equal(elsewhere.seen.length, 0, "the credentials went to another origin");
    assert.equal(server.seen.length, 1);
  });

  it("(b) a registry that ignores n and last: everything, as sent (unsorted, invalid names dropped)", async () => {
    const server = await start((_req, res) => json(res, 200, { repositories: ["zeta", "alpha", "alpha", "Bad_Name", "x//y", 7, null, "mid/dle"] }));
    assert.deepEqual(await fetchRepositories(source(server)), ["zeta", "alpha", "mid/dle"]);
    assert.equal(server.seen.length, 1);
  });

  it("(b) ignores n and last but sends a Link each time: stops at the repeated Link", async () => {
    const all = ["c", "a", "b"];
    const server = await start((_req, res) => json(res, 200, { repositories: all }, { link: '</v2/_catalog?last=c&n=1000>; rel="next"' }));
    assert.deepEqual((await fetchRepositories(source(server))).sort(), ["a", "b", "c"]);
    assert.deepEqual(
      server.seen.map((s) => s.url),
      ["/v2/_catalog?n=1000", "/v2/_catalog?last=c&n=1000"],
    );
  });

  it("(c) a Link that points at the page itself, or cycles, terminates", async () => {
    const self = await start((_req, res) => json(res, 200, { repositories: ["a"] }, { link: '</v2/_catalog?n=1000>; rel="next"' }));
    assert.deepEqual(await fetchRepositories(source(self)), ["a"]);
    assert.equal(self.seen.length, 1);

    const cycle = await start((_req, res, url) => {
      const next = url.searchParams.get("last") === "x" ? "y" : "x";
      json(res, 200, { repositories: [next] }, { link: `</v2/_catalog?last=${next}>; rel="next"` });
    });
    assert.deepEqual((await fetchRepositories(source(cycle))).sort(), ["x", "y"]);
    assert.equal(cycle.seen.length, 3);
  });

  it("(c) a Link that never repeats and never ends is cut at MAX_PAGES", async () => {
    let page = 0;
    const server = await start((_req, res) => {
      page++;
      json(res, 200, { repositories: page % 2 ? [] : [`r${page}`] }, { link: `</v2/_catalog?page=${page}>; rel="next"` });
    });
    const names = await fetchRepositories(source(server));
    assert.equal(server.seen.length, MAX_PAGES);
    assert.equal(names.length, MAX_PAGES / 2);
  });

  it("(d) tags of a repository the registry does not hold: null", async () => {
    const server = await start((_req, res) =>
      json(res, 404, { errors: [{ code: "NAME_UNKNOWN", message: "repository name not known to registry", detail: { name: "nope" } }] }),
    );
    assert.equal(await fetchTags(source(server), "nope"), null);
    // Asked as a client asks, without n: distribution 2.8 ignores it on tags/list.
    assert.deepEqual(server.seen.map((s) => s.url), ["/v2/nope/tags/list"]);
  });

  it("(d) `tags: null` (every tag deleted) is no tags; bad tags are dropped", async () => {
    const empty = await start((_req, res) => json(res, 200, { name: "a", tags: null }));
    assert.deepEqual(await fetchTags(source(empty), "a"), []);
    const mixed = await start((_req, res) => json(res, 200, { name: "a", tags: ["v1", "-bad", "a".repeat(129), "ok_tag.1-2", "sp ace", "é"] }));
    assert.deepEqual(await fetchTags(source(mixed), "a"), ["v1", "ok_tag.1-2"]);
  });

  it("(e) 500, 401, bad JSON, no list: rejects", async () => {
    const failing = await start((_req, res) => json(res, 500, { errors: [{ code: "UNKNOWN", message: "boom" }] }));
    await assert.rejects(fetchRepositories(source(failing)), /answered 500/);
    await assert.rejects(fetchTags(source(failing), "a"), /answered 500/);

    const unauthorized = await start((_req, res) => json(res, 401, { errors: [{ code: "UNAUTHORIZED", message: "no" }] }));
    await assert.rejects(fetchRepositories(source(unauthorized)), /answered 401/);

    const notJson = await start((_req, res) => {
      res.writeHead(200, { "content-type": "text/html" });
      res.end("<html>nope</html>");
    });
    await assert.rejects(fetchRepositories(source(notJson)), /not JSON/);
    await assert.rejects(fetchTags(source(notJson), "a"), /not JSON/);

    const noList = await start((_req, res) => json(res, 200, { repos: ["a"] }));
    await assert.rejects(fetchRepositories(source(noList)), /without a repositories list/);
    const wrongType = await start((_req, res) => json(res, 200, { name: "a", tags: "v1" }));
    await assert.rejects(fetchTags(source(wrongType), "a"), /without a tags list/);
  });

  it("(e) a catalog that answers 404 rejects; a 404 after the first tags page rejects", async () => {
    const missing = await start((_req, res) => json(res, 404, { errors: [{ code: "NOT_FOUND", message: "no catalog" }] }));
    await assert.rejects(fetchRepositories(source(missing)), /404/);

    const vanishing = await start((_req, res, url) => {
      if (url.searchParams.has("last")) json(res, 404, { errors: [{ code: "NAME_UNKNOWN", message: "gone" }] });
      else json(res, 200, { name: "a", tags: ["v1"] }, { link: '</v2/a/tags/list?last=v1&n=1>; rel="next"' });
    });
    await assert.rejects(fetchTags(source(vanishing), "a"), /answered 404/);
  });

  it("a 400 to n=1000 (distribution 3 with a lower maximum) is asked again without n", async () => {
    const server = await start((req, res, url) => {
      if (url.searchParams.has("n") && Number(url.searchParams.get("n")) > 100) {
        json(res, 400, { errors: [{ code: "PAGINATION_NUMBER_INVALID", message: "invalid number of results requested" }] });
      } else paginatingHandler(repos, "repositories", 10)(req, res, url);
    });
    assert.deepEqual((await fetchRepositories(source(server))).sort(), repos);
    assert.deepEqual(server.seen.slice(0, 2).map((s) => s.url), ["/v2/_catalog?n=1000", "/v2/_catalog"]);

    const stillRefusing = await start((_req, res) => json(res, 400, { errors: [{ code: "UNSUPPORTED", message: "no" }] }));
    await assert.rejects(fetchRepositories(source(stillRefusing)), /answered 400/);
    assert.equal(stillRefusing.seen.length, 2);
  });

  it("a connection cut mid-body or a refused connection rejects", async () => {
    const cut = await start((_req, res) => {
      res.writeHead(200, { "content-type": "application/json", "content-length": 1000 });
      res.write('{"repositories":["a"');
      setTimeout(() => res.destroy(), 20);
    });
    await assert.rejects(fetchRepositories(source(cut)));

    const closed = await serve(() => undefined);
    await closed.close();
    await assert.rejects(fetchRepositories(source(closed)), /ECONNREFUSED/);
  });

  it("a page larger than MAX_PAGE_BYTES rejects", async () => {
    const huge = await start((_req, res) => {
      res.writeHead(200, { "content-type": "application/json" });
      res.write('{"repositories":["a"');
      const chunk = " ".repeat(1024 * 1024);
      let written = 0;
      const pump = () => {
        while (written < 40 && !res.destroyed) {
          written++;
          if (!res.write(chunk)) return void res.once("drain", pump);
        }
        res.end("]}");
      };
      pump();
    });
    await assert.rejects(fetchRepositories(source(huge)), /answered more than 33554432 bytes/);
  });

  it("a tag list is read whole or not at all: over MAX_NAMES tags, MAX_PAGES pages or MAX_TAG_LIST_BYTES it rejects", async () => {
    const many = Array.from({ length: MAX_NAMES + 1 }, (_, i) => `t${i}`);
    const tooMany = await start((_req, res) => json(res, 200, { name: "a", tags: many }));
    await assert.rejects(fetchTags(source(tooMany), "a"), (err) => err instanceof ListTooLarge && /more than 100000 tags/.test(err.message));
    // Exactly MAX_NAMES is a whole list; a catalog over it is kept as read (its bound, not an error).
    const enough = await start((_req, res) => json(res, 200, { name: "a", tags: many.slice(0, MAX_NAMES) }));
    assert.equal((await fetchTags(source(enough), "a"))?.length, MAX_NAMES);
    const manyRepos = await start((_req, res) => json(res, 200, { repositories: many }));
    assert.equal((await fetchRepositories(source(manyRepos))).length, MAX_NAMES);

    let page = 0;
    const endless = await start((_req, res) => json(res, 200, { name: "a", tags: [`t${++page}`] }, { link: `</v2/a/tags/list?page=${page}>; rel="next"` }));
    await assert.rejects(fetchTags(source(endless), "a"), ListTooLarge);
    assert.equal(endless.seen.length, MAX_PAGES);

    // The byte bound covers every page of the walk: two pages of 9 MiB each exceed 16 MiB together.
    const padding = " ".repeat(9 * 1024 * 1024);
    const heavy = await start((_req, res, url) => {
      const more = url.searchParams.has("last") ? {} : { link: '</v2/a/tags/list?last=x>; rel="next"' };
      res.writeHead(200, { "content-type": "application/json", ...more });
      res.end(`{"name":"a","tags":["x"]${padding}}`);
    });
    assert.equal(MAX_TAG_LIST_BYTES, 16 * 1024 * 1024);
    await assert.rejects(fetchTags(source(heavy), "a"), (err) => err instanceof ListTooLarge && /16777216 bytes/.test(err.message));
    assert.equal(heavy.seen.length, 2);
  });

  it("a tag list is read with the client's User-Agent", async () => {
    const agents: (string | undefined)[] = [];
    const server = await start((req, res) => {
      agents.push(req.headers["user-agent"]);
      json(res, 200, { name: "a", tags: ["v1"] });
    });
    assert.deepEqual(await fetchTags({ ...source(server), userAgent: "skopeo/1.2" }, "a"), ["v1"]);
    assert.deepEqual(agents, ["skopeo/1.2"]);
  });

  it("a page that does not arrive within the page timeout rejects (10 s unless set)", async () => {
    assert.equal(PAGE_TIMEOUT_MS, 10_000);
    const slow = await start((_req, res) => {
      // Headers at once, then a trickle that never completes: the limit covers the whole page.
      res.writeHead(200, { "content-type": "application/json" });
      res.write('{"repositories":[');
      const timer = setInterval(() => res.write('"a",'), 1000);
      res.on("close", () => clearInterval(timer));
    });
    const started = Date.now();
    // The trickle's writes come every second: a limit they could reset would never fire.
    await assert.rejects(fetchRepositories({ ...source(slow), pageTimeoutMs: 2500 }), /did not answer within 2.5 s/);
    const elapsed = Date.now() - started;
    assert.ok(elapsed >= 2_400 && elapsed < 7_000, `gave up after ${elapsed} ms`);
  });
});

// ---------------------------------------------------------------- a real distribution registry

const REGISTRY_BINARY = "/usr/bin/docker-registry";

describe("against a real distribution registry", { skip: !existsSync(REGISTRY_BINARY) && `${REGISTRY_BINARY} is not installed` }, () => {
  const agent = new http.Agent({ keepAlive: true });
  let registry: { url: string; stop(): Promise<void> } | undefined;
  const pushed = ["team/b", "a", "team/a", "c"];
  const tags = ["v2", "B", "v10", "latest", "a"];

  before(async () => {
    const { startRegistry } = await import("../../helpers/registry.js");
    const { pushTinyImage } = await import("../../helpers/seed.js");
    registry = await startRegistry();
    for (const repository of pushed) await pushTinyImage(registry.url, repository, "v1", "catalog-test");
    for (const tag of tags) await pushTinyImage(registry.url, "a", tag, "catalog-test");
  });
  after(async () => {
    agent.destroy();
    await registry?.stop();
  });

  it("reads the catalog and tags, which the gateway then sorts and pages itself", async () => {
    const source: ListSource = { backend: new URL(registry!.url), agent };
    const repositories = await fetchRepositories(source);
    assert.deepEqual([...repositories].sort(), [...pushed].sort());
    const aTags = await fetchTags(source, "a");
    assert.ok(aTags);
    // distribution 2.8 ignores n and last on tags/list and does not sort: the merge does.
    assert.deepEqual(mergeSorted([aTags]), ["B", "a", "latest", "v1", "v10", "v2"]);
    assert.equal(await fetchTags(source, "not/there"), null);

    const merged = mergeSorted([repositories, ["b", "a"]]);
    assert.deepEqual(merged, ["a", "b", "c", "team/a", "team/b"]);
    assert.deepEqual(walk(merged, "n=2", "/v2/_catalog"), [["a", "b"], ["c", "team/a"], ["team/b"]]);
  });

  it("writes the same Link as distribution for the same list", async () => {
    const response = await fetch(`${registry!.url}/v2/_catalog?n=2`);
    const body = (await response.json()) as { repositories: string[] };
    const ours = paginate(mergeSorted([pushed]), { n: 2, last: null }, "/v2/_catalog");
    assert.deepEqual(ours.items, body.repositories);
    assert.equal(ours.link, response.headers.get("link"));
    const second = await fetch(`${registry!.url}/v2/_catalog?n=2&last=c`);
    const secondBody = (await second.json()) as { repositories: string[] };
    const oursSecond = paginate(mergeSorted([pushed]), { n: 2, last: "c" }, "/v2/_catalog");
    assert.deepEqual(oursSecond.items, secondBody.repositories);
    assert.equal(oursSecond.link, null);
    assert.equal(second.headers.get("link"), null);
  });
});
