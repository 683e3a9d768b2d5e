import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  renderDeleteConfirm, renderError, renderLogin, renderRepositoryList, renderTagDetails, renderTagList,
} from "../../../src/web/views/index.js";
import { elementsNamed, parseHtml, type Element, type ParsedHtml } from "../../helpers/html-check.js";
import * as sample from "../../helpers/web-samples.js";

/** Every page, from realistic models. */
function pages(): [string, string][] {
  return [
    ["repository list", renderRepositoryList(sample.repositoryList())],
    ["empty search", renderRepositoryList(sample.repositoryList({ query: "zzz", repositories: [], nextPageUrl: null, firstPageUrl: "/" }))],
    ["tag list", renderTagList(sample.tagList())],
    ["tag details", renderTagDetails(sample.tagDetails())],
    ["login", renderLogin(sample.login({ error: "Wrong user name or password" }))],
    ["error", renderError(sample.errorPage())],
    ["delete confirmation", renderDeleteConfirm(sample.deleteConfirm())],
  ];
}

/** Every page with every string a pusher or visitor controls set to something that tries to break out. */
function hostilePages(): [string, string][] {
  const chrome = sample.hostileChrome();
  const h = sample.HOSTILE;
  const platform = { os: h, architecture: h, variant: h, digest: h };
  return [
    ["repository list", renderRepositoryList(sample.repositoryList({ chrome, query: h, repositories: [{ name: h, url: "/repo/x" }] }))],
    ["tag list", renderTagList(sample.tagList({ chrome, repository: h, nextPageUrl: `/repo/${h}`, tags: [{ name: h, digest: h, size: 1, created: h, platforms: [platform], url: "/tag/x:y" }] }))],
    ["tag details", renderTagDetails(sample.tagDetails({
      chrome, repository: h, tag: h, digest: h, mediaType: h, created: h, pullByTag: h, pullByDigest: h, platforms: [platform],
      layers: [{ digest: h, mediaType: h, size: 1 }], layersOf: platform, labels: { [h]: h },
      history: [{ created: h, createdBy: h, emptyLayer: true }], referrers: [{ artifactType: h, digest: h, size: 1, annotations: { [h]: h } }],
    }))],
    ["login", renderLogin(sample.login({ chrome, error: h, next: h, username: h }))],
    ["error", renderError(sample.errorPage({ chrome, title: h, message: h }))],
    ["delete confirmation", renderDeleteConfirm(sample.deleteConfirm({ chrome, repository: h, tag: h, digest: h, alsoRemoved: [h], backUrl: h }))],
  ];
}

function parsed(page: string): ParsedHtml {
  const result = parseHtml(page);
  assert.deepEqual(result.errors, [], page);
  return result;
}

const forms = (doc: ParsedHtml, action: string) => elementsNamed(doc, "form").filter((form) => form.attrs.get("action") === action);
const hidden = (doc: ParsedHtml, name: string) =>
  elementsNamed(doc, "input").filter((input) => input.attrs.get("type") === "hidden" && input.attrs.get("name") === name);
const withClass = (doc: ParsedHtml, className: string) =>
  doc.elements.filter((element) => (element.attrs.get("class") ?? "").split(" ").includes(className));

/** Script only from this site, no inline script, style or event handler: what `script-src 'self'` allows. */
function assertCspSafe(doc: ParsedHtml, name: string): void {
  for (const element of doc.elements) {
    for (const attr of element.attrs.keys()) {
      assert.ok(!attr.startsWith("on"), `${name}: handler ${attr} on <${element.name}>`);
      assert.notEqual(attr, "style", `${name}: inline style on <${element.name}>`);
    }
    assert.notEqual(element.name, "style", `${name}: <style> element`);
    assert.notEqual(element.name, "img", `${name}: <img> element`);
    for (const url of [element.attrs.get("href"), element.attrs.get("src"), element.attrs.get("action")]) {
      if (url !== undefined) assert.match(url, /^\/(?![/\\])|^#/, `${name}: <${element.name}> leaves the site: ${url}`);
    }
  }
  const scripts = elementsNamed(doc, "script");
  assert.equal(scripts.length, 1, name);
  assert.ok(scripts[0]?.attrs.has("defer") && scripts[0]?.attrs.get("src")?.startsWith("/assets/"), name);
  assert.equal(scripts[0]?.text, "", `${name}: inline script`);
}

describe("registry browser views", () => {
  it("render well-formed HTML5 documents with the page landmarks", () => {
    for (const [name, page] of pages()) {
      const doc = parsed(page);
      assert.equal(elementsNamed(doc, "html")[0]?.attrs.get("lang"), "en", name);
      for (const landmark of ["header", "main", "nav", "title", "h1"]) assert.ok(elementsNamed(doc, landmark).length >= 1, `${name}: no <${landmark}>`);
      assert.equal(elementsNamed(doc, "h1").length, 1, `${name}: one <h1>`);
      assert.ok(elementsNamed(doc, "link").some((link) => link.attrs.get("href") === sample.chrome().assets.css), name);
    }
  });

  it("have no inline script, inline style, event handler or other origin (raw text and parsed)", () => {
    for (const [name, page] of pages()) {
      assert.doesNotMatch(page, /\son[a-z]+\s*=|\sstyle\s*=|<style|javascript:|https?:\/\/(?!git\.example|sigstore\.dev)/i, name);
      assertCspSafe(parsed(page), name);
    }
  });

  it("escape every string a pusher or visitor controls, in text and in attributes", () => {
    for (const [name, page] of hostilePages()) {
      assert.ok(!page.includes("<script>alert") && !page.includes('"><img') && !page.includes("'&amp;"), `${name}: unescaped`);
      const doc = parsed(page);
      assertCspSafe(doc, name);
      // Escaped, not dropped: the text reads back as it was given.
      assert.ok(doc.elements.some((element) => element.text.includes(sample.HOSTILE)), `${name}: hostile text not shown`);
    }
  });

  it("label every visible input and give tables captions and header scopes", () => {
    for (const [name, page] of pages()) {
      const doc = parsed(page);
      const labelled = new Set(elementsNamed(doc, "label").map((label) => label.attrs.get("for")));
      for (const input of elementsNamed(doc, "input").filter((i) => i.attrs.get("type") !== "hidden")) {
        assert.ok(labelled.has(input.attrs.get("id")), `${name}: input ${input.attrs.get("name")} has no label`);
      }
      const tables = elementsNamed(doc, "table");
      assert.equal(elementsNamed(doc, "caption").length, tables.length, `${name}: a table without caption`);
      for (const th of elementsNamed(doc, "th")) assert.ok(th.attrs.has("scope"), `${name}: <th> without scope`);
    }
  });
});

describe("pull commands", () => {
  const copyTexts = (doc: ParsedHtml) => withClass(doc, "copy-button").map((button) => button.attrs.get("data-copy"));

  it("are shown as text and copied exactly on the tag page", () => {
    const model = sample.tagDetails();
    const doc = parsed(renderTagDetails(model));
    assert.equal(model.pullByTag, `docker pull ${sample.HOST}/team/backend/api:v1.10.0`);
    assert.deepEqual(withClass(doc, "command-text").map((code) => code.text), [model.pullByTag, model.pullByDigest]);
    assert.deepEqual(copyTexts(doc), [model.pullByTag, model.pullByDigest]);
  });

  it("are copied per tag on the repository page", () => {
    const doc = parsed(renderTagList(sample.tagList()));
    const expected = sample.tagList().tags.map((tag) => `docker pull ${sample.HOST}/team/backend/api:${tag.name}`);
    assert.deepEqual(copyTexts(doc).slice(1), expected);
    // Hidden until the script can copy; without script the command above the table is plain text.
    assert.ok(withClass(doc, "copy-button").every((button) => button.attrs.has("hidden")));
    assert.equal(withClass(doc, "command-text")[0]?.text, expected[0]);
  });
});

describe("delete", () => {
  const deleteEntries = (doc: ParsedHtml) => forms(doc, "/delete");
  const deleteLinks = (doc: ParsedHtml) =>
    elementsNamed(doc, "a").map((a) => a.attrs.get("href") ?? "").filter((href) => href.startsWith("/delete"));

  it("is offered on the tag list and tag page only to users who may delete", () => {
    const pagesFor = (canDelete: boolean) => [
      renderTagList({ ...sample.tagList(), canDelete }),
      renderTagDetails({ ...sample.tagDetails(), canDelete }),
    ];
    for (const page of pagesFor(true)) {
      const doc = parsed(page);
      // A link to the confirmation page: nothing is deleted, and no token is put in a URL, before it.
      assert.ok(deleteLinks(doc).includes("/delete?repository=team%2Fbackend%2Fapi&tag=v1.10.0"), String(deleteLinks(doc)));
      assert.deepEqual(deleteEntries(doc), []);
    }
    for (const page of pagesFor(false)) {
      assert.deepEqual(deleteLinks(parsed(page)), []);
      assert.doesNotMatch(page, />Delete/);
    }
  });

  it("is confirmed with a POST carrying the session's CSRF token, repository and tag", () => {
    const doc = parsed(renderDeleteConfirm(sample.deleteConfirm()));
    const [form] = deleteEntries(doc);
    assert.equal(form?.attrs.get("method"), "post");
    assert.equal(hidden(doc, "csrf").filter((input) => input.attrs.get("value") === "csrf-token-123").length, 2);
    assert.equal(hidden(doc, "repository")[0]?.attrs.get("value"), "team/backend/api");
    assert.equal(hidden(doc, "tag")[0]?.attrs.get("value"), "v1.10.0");
    assert.ok(doc.elements.some((e) => e.name === "li" && e.text === "team/backend/api:latest"), "the other tags that go too");
  });

  it("offers no form without a session token to send", () => {
    const doc = parsed(renderDeleteConfirm(sample.deleteConfirm({ chrome: sample.anonymous() })));
    assert.deepEqual(deleteEntries(doc), []);
  });

  it("says when not every other tag could be checked, with or without tags found, and only then", () => {
    const warning = /Not every other tag of this repository could be checked/;
    for (const alsoRemoved of [["latest"], []]) {
      assert.match(renderDeleteConfirm(sample.deleteConfirm({ alsoRemoved, alsoRemovedComplete: false })), warning);
      assert.doesNotMatch(renderDeleteConfirm(sample.deleteConfirm({ alsoRemoved, alsoRemovedComplete: true })), warning);
    }
  });
});

describe("page chrome", () => {
  it("signs out with a POST carrying the CSRF token", () => {
    const doc = parsed(renderTagList(sample.tagList()));
    const [logout] = forms(doc, "/logout");
    assert.equal(logout?.attrs.get("method"), "post");
    assert.equal(hidden(doc, "csrf")[0]?.attrs.get("value"), "csrf-token-123");
    assert.ok(doc.elements.some((e) => e.name === "nav" && e.text.includes("alice")));
  });

  it("links anonymous users to sign in and come back to the page they were on", () => {
    const links = (doc: ParsedHtml) => elementsNamed(doc, "a").map((a) => a.attrs.get("href"));
    const tagList = parsed(renderTagList(sample.tagList({ chrome: sample.anonymous() })));
    assert.ok(links(tagList).includes("/login?next=%2Frepo%2Fteam%2Fbackend%2Fapi"));
    assert.deepEqual(forms(tagList, "/logout"), []);
    const search = parsed(renderRepositoryList(sample.repositoryList({ chrome: sample.anonymous(), query: "a b" })));
    assert.ok(links(search).includes("/login?next=%2F%3Fq%3Da%2Bb"));
    const given = parsed(renderError(sample.errorPage({ status: 401, chrome: sample.anonymous({ currentPath: "/tag/a:b" }) })));
    assert.ok(links(given).includes("/login?next=%2Ftag%2Fa%3Ab"));
    const login = parsed(renderLogin(sample.login()));
    assert.ok(!links(login).some((href) => href?.startsWith("/login")), "no sign-in link on the sign-in page");
  });

  it("shows the notice", () => {
    const doc = parsed(renderRepositoryList(sample.repositoryList({ chrome: sample.chrome({ notice: "Tag v1 deleted" }) })));
    assert.equal(withClass(doc, "notice")[0]?.text, "Tag v1 deleted");
  });
});

describe("forms and links", () => {
  const input = (doc: ParsedHtml, name: string): Element | undefined =>
    elementsNamed(doc, "input").find((i) => i.attrs.get("name") === name);

  it("search with a GET to / and a labelled q holding the query", () => {
    const doc = parsed(renderRepositoryList(sample.repositoryList({ query: "nginx" })));
    const [form] = forms(doc, "/");
    assert.equal(form?.attrs.get("method"), "get");
    assert.equal(input(doc, "q")?.attrs.get("value"), "nginx");
    assert.equal(elementsNamed(doc, "label")[0]?.attrs.get("for"), input(doc, "q")?.attrs.get("id"));
  });

  it("sign in with a POST of username, password and next", () => {
    const doc = parsed(renderLogin(sample.login({ username: "bob", next: "/repo/a", error: "Wrong user name or password" })));
    assert.equal(forms(doc, "/login")[0]?.attrs.get("method"), "post");
    assert.equal(input(doc, "username")?.attrs.get("value"), "bob");
    assert.equal(input(doc, "password")?.attrs.get("type"), "password");
    assert.ok(!input(doc, "password")?.attrs.has("value"), "a password is never written back");
    assert.equal(input(doc, "next")?.attrs.get("value"), "/repo/a");
    assert.equal(doc.elements.find((e) => e.attrs.get("role") === "alert")?.text, "Wrong user name or password");
  });

  it("encode names in paths, keeping '/' between components", () => {
    const doc = parsed(renderTagDetails(sample.tagDetails({ repository: "team/a b?c", tag: "v1" })));
    const hrefs = elementsNamed(doc, "a").map((a) => a.attrs.get("href"));
    assert.ok(hrefs.includes("/repo/team/a%20b%3Fc"));
  });

  it("keep only links to paths on this site from the models", () => {
    const doc = parsed(renderRepositoryList(sample.repositoryList({
      repositories: [{ name: "x", url: "javascript:alert(1)" }], nextPageUrl: "//evil.example/", firstPageUrl: "/\\evil.example",
    })));
    const hrefs = elementsNamed(doc, "a").map((a) => a.attrs.get("href"));
    assert.ok(!hrefs.some((href) => /javascript|evil/.test(href ?? "")), String(hrefs));
    const tags = parsed(renderTagList(sample.tagList({ nextPageUrl: "//evil.example/" })));
    assert.ok(!elementsNamed(tags, "a").some((a) => /evil/.test(a.attrs.get("href") ?? "")));
  });

  it("link a repository's next page of tags when there is one", () => {
    const next = (model: Parameters<typeof sample.tagList>[0]) => elementsNamed(parsed(renderTagList(sample.tagList(model))), "a").filter((a) => a.attrs.get("rel") === "next").map((a) => a.attrs.get("href"));
    assert.deepEqual(next({ nextPageUrl: "/repo/team/backend/api?page=2" }), ["/repo/team/backend/api?page=2"]);
    assert.deepEqual(next({ nextPageUrl: null }), []);
    assert.deepEqual(next({}), []);
  });
});

describe("sizes and dates", () => {
  it("read as people read them", () => {
    const doc = parsed(renderTagList(sample.tagList({
      tags: [0, 512, 1536, 31_457_280, 5_000_000_000].map((size, i) => ({
        name: `t${i}`, digest: sample.DIGEST, size, created: "2026-11-30T14:05:09Z", platforms: [], url: `/tag/a:t${i}`,
      })),
    })));
    const sizes = doc.elements.filter((e) => e.attrs.get("data-label") === "Size").map((e) => e.text);
    assert.deepEqual(sizes, ["0 B", "512 B", "1.5 KiB", "30 MiB", "4.66 GiB"]);
    const [time] = elementsNamed(doc, "time");
    assert.equal(time?.attrs.get("datetime"), "2026-11-30T14:05:09.000Z");
    assert.equal(time?.text, "30 Nov 2026, 14:05 UTC");
  });
});
