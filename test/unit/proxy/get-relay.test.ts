// The relay reads response heads itself (src/proxy/get-relay.ts): it must take only plainly valid ones,
// framed by one Content-Length, and leave everything else to Node's client.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseResponseHead, requestHead } from "../../../src/proxy/get-relay.js";

const head = (...lines: string[]) => lines.join("\r\n");

describe("blob relay: response heads", () => {
  it("takes a plain answer: status, reason, headers as sent (duplicates kept), its length", () => {
    const parsed = parseResponseHead(head("HTTP/1.1 200 OK", "Content-Length: 12", "Docker-Content-Digest: sha256:ab", "Link: <a>", "Link:  <b>\t"));
    assert.deepEqual(parsed, {
      status: 200,
      statusMessage: "OK",
      rawHeaders: ["Content-Length", "12", "Docker-Content-Digest", "sha256:ab", "Link", "<a>", "Link", "<b>"],
      length: 12,
      close: false,
      keepAliveMs: null,
    });
  });

  it("knows when the backend closes after the answer", () => {
    assert.equal(parseResponseHead(head("HTTP/1.1 200 OK", "Connection: keep-alive, Close", "Content-Length: 0"))!.close, true);
    assert.equal(parseResponseHead(head("HTTP/1.0 200 OK", "Content-Length: 0"))!.close, true);
  });

  it("reads the backend's keep-alive hint", () => {
    assert.equal(parseResponseHead(head("HTTP/1.1 200 OK", "Keep-Alive: timeout=5, max=100", "Content-Length: 0"))!.keepAliveMs, 5000);
    assert.equal(parseResponseHead(head("HTTP/1.1 200 OK", "Keep-Alive: max=100", "Content-Length: 0"))!.keepAliveMs, null);
  });

  it("takes 204 and 304 without a length", () => {
    assert.equal(parseResponseHead(head("HTTP/1.1 304 Not Modified", 'ETag: "x"'))!.length, 0);
    assert.equal(parseResponseHead(head("HTTP/1.1 204 No Content"))!.length, 0);
    assert.equal(parseResponseHead(head("HTTP/1.1 200", "Content-Length: 0"))!.statusMessage, "", "a status line without a reason");
  });

  const refused: Record<string, string> = {
    "no length": head("HTTP/1.1 200 OK"),
    chunked: head("HTTP/1.1 200 OK", "Transfer-Encoding: chunked"),
    "chunked and a length": head("HTTP/1.1 200 OK", "Content-Length: 5", "Transfer-Encoding: chunked"),
    "two different lengths": head("HTTP/1.1 200 OK", "Content-Length: 5", "Content-Length: 6"),
    "a repeated identical length (Node's client refuses it too)": head("HTTP/1.1 200 OK", "Content-Length: 5", "content-length: 5"),
    "a length list": head("HTTP/1.1 200 OK", "Content-Length: 5, 5"),
    "a signed length": head("HTTP/1.1 200 OK", "Content-Length: +5"),
    "a hex length": head("HTTP/1.1 200 OK", "Content-Length: 0x5"),
    "a huge length": head("HTTP/1.1 200 OK", "Content-Length: 9999999999999999"),
    "a 304 with a body length": head("HTTP/1.1 304 Not Modified", "Content-Length: 5"),
    "1xx": head("HTTP/1.1 100 Continue"),
    "HTTP/2 status line": head("HTTP/2 200", "Content-Length: 0"),
    "no space before the status": head("HTTP/1.1  200 OK", "Content-Length: 0"),
    "a four-digit status": head("HTTP/1.1 2000 OK", "Content-Length: 0"),
    "a control character in the reason": head("HTTP/1.1 200 O\x01K", "Content-Length: 0"),
    "obs-fold": head("HTTP/1.1 200 OK", "Content-Length: 0", "X-A: a", " continued"),
    "space before the colon": head("HTTP/1.1 200 OK", "Content-Length : 0"),
    "a line without a colon": head("HTTP/1.1 200 OK", "Content-Length: 0", "garbage"),
    "an empty name": head("HTTP/1.1 200 OK", ": x", "Content-Length: 0"),
    "a NUL in a value": head("HTTP/1.1 200 OK", "X-A: a\0b", "Content-Length: 0"),
    "a bare CR in a value": head("HTTP/1.1 200 OK", "X-A: a\rb", "Content-Length: 0"),
    "a bare LF in a value": head("HTTP/1.1 200 OK", "X-A: a\nSet-Cookie: b", "Content-Length: 0"),
    "DEL in a value": head("HTTP/1.1 200 OK", "X-A: a\x7fb", "Content-Length: 0"),
  };
  for (const [what, text] of Object.entries(refused)) {
    it(`leaves to Node's client: ${what}`, () => assert.equal(parseResponseHead(text), null));
  }
});

describe("blob relay: request heads", () => {
  it("writes the target as given and every header value, repeated ones each on a line", () => {
    assert.equal(
      requestHead("/v2/a/blobs/sha256:ab?x=%2F", { host: "r.example", accept: ["a", "b"], "x-none": undefined }),
      "GET /v2/a/blobs/sha256:ab?x=%2F HTTP/1.1\r\nhost: r.example\r\naccept: a\r\naccept: b\r\n\r\n",
    );
  });

  it("refuses a target that is not visible ASCII in origin form", () => {
    assert.equal(requestHead("/v2/a b", {}), null);
    assert.equal(requestHead("/v2/a\r\nX-Injected: 1", {}), null);
    assert.equal(requestHead("/v2/a\tb", {}), null);
    assert.equal(requestHead("http://elsewhere/v2/", {}), null);
    assert.equal(requestHead("/v2/\u00e9", {}), null);
  });

  it("refuses a name or value it could not write faithfully", () => {
    assert.equal(requestHead("/", { "bad name": "x" }), null);
    assert.equal(requestHead("/", { "x-a": "a\r\nInjected: 1" }), null);
    assert.equal(requestHead("/", { "x-a": ["ok", "a\nb"] }), null);
  });
});
