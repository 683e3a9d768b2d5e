import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { clientResponseHeaders, forwardRequestHeaders, rewriteLocation, type EdgeContext } from "../../../src/proxy/headers.js";

const edge: EdgeContext = { requestId: "req-1", externalOrigin: "https://hub.registry.test:5443", authority: "hub.registry.test:5443", clientIp: "127.0.0.9" };
const backend = new URL("http://127.0.0.1:5001");
const pairs = (flat: string[]) => Array.from({ length: flat.length / 2 }, (_, i) => [flat[2 * i], flat[2 * i + 1]]);

describe("request headers towards the backend", () => {
  it("replaces client-supplied forwarding headers with the gateway's own", () => {
    const out = forwardRequestHeaders(
      {
        host: "hub.registry.test:5443",
        "x-forwarded-for": "6.6.6.6",
        "x-forwarded-host": "evil.example",
        "x-forwarded-proto": "http",
        "x-real-ip": "6.6.6.6",
        forwarded: "for=6.6.6.6;host=evil.example",
      },
      edge,
      backend,
    );
    assert.equal(out["x-forwarded-for"], "127.0.0.9");
    assert.equal(out["x-forwarded-host"], "hub.registry.test:5443");
    assert.equal(out["x-forwarded-proto"], "https");
    assert.equal(out["forwarded"], 'for=127.0.0.9;host="hub.registry.test:5443";proto=https');
    assert.equal(out["x-real-ip"], undefined);
    assert.equal(out.host, "hub.registry.test:5443");
  });

  it("sends the pipeline's request id, never the client's own value", () => {
    const out = forwardRequestHeaders({ host: "hub.registry.test:5443", "x-request-id": "not sane; <script>" }, edge, backend);
    assert.equal(out["x-request-id"], "req-1");
    assert.equal(forwardRequestHeaders({ host: "hub.registry.test:5443" }, edge, backend)["x-request-id"], "req-1");
  });

  it("quotes and brackets an IPv6 client in Forwarded", () => {
    const out = forwardRequestHeaders({}, { ...edge, clientIp: "::1" }, backend);
    assert.equal(out["forwarded"], 'for="[::1]";host="hub.registry.test:5443";proto=https');
  });

  it("drops hop-by-hop headers, those named in Connection, and Expect", () => {
    const out = forwardRequestHeaders(
      { connection: "keep-alive, x-secret-hop", "x-secret-hop": "1", "keep-alive": "timeout=5", te: "trailers", "transfer-encoding": "chunked", expect: "100-continue", upgrade: "h2c" },
      edge,
      backend,
    );
    for (const name of ["connection", "x-secret-hop", "keep-alive", "te", "transfer-encoding", "expect", "upgrade"]) {
      assert.equal(out[name], undefined, name);
    }
  });

  it("passes registry headers untouched", () => {
    const incoming = {
      accept: "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json",
      range: "bytes=0-99",
      "content-range": "0-99",
      "content-length": "100",
      "content-type": "application/octet-stream",
    };
    const out = forwardRequestHeaders(incoming, edge, backend);
    for (const [name, value] of Object.entries(incoming)) assert.equal(out[name], value, name);
  });

  // The backend trusts the gateway; a client's password or token is none of its business.
  it("drops the client's Authorization unless told to pass it, and sends the gateway's own instead", () => {
    const incoming = { authorization: "Basic YWRtaW46QWRtaW4xMjM=" };
    assert.equal(forwardRequestHeaders(incoming, edge, backend).authorization, undefined);
    assert.equal(forwardRequestHeaders(incoming, { ...edge, passClientAuthorization: true }, backend).authorization, incoming.authorization);
    assert.equal(forwardRequestHeaders(incoming, { ...edge, backendAuthorization: "Bearer ours" }, backend).authorization, "Bearer ours");
  });

  // A managed registry accepts the gateway's token for it; no other backend may ever be handed that token.
  it("sends the managed registries' token to those only, whatever else the site sends", () => {
    const incoming = { authorization: "Basic YWRtaW46QWRtaW4xMjM=" };
    const managed = { ...edge, backendAuthorization: "Bearer site", managedAuthorization: { origins: new Set([backend.origin]), authorization: "Bearer managed" } };
    const other = new URL("http://127.0.0.1:5002");
    assert.equal(forwardRequestHeaders(incoming, managed, backend).authorization, "Bearer managed");
    assert.equal(forwardRequestHeaders(incoming, { ...managed, passClientAuthorization: true }, backend).authorization, "Bearer managed");
    assert.equal(forwardRequestHeaders(incoming, managed, other).authorization, "Bearer site");
    const passthrough = { ...managed, backendAuthorization: undefined, passClientAuthorization: true };
    assert.equal(forwardRequestHeaders(incoming, passthrough, other).authorization, incoming.authorization);
  });
});

describe("response headers towards the client", () => {
  it("rewrites an upload Location on 202 and keeps _state byte for byte", () => {
    const state = "_state=Ab%2Bc%3D%3D.x_-~&digest=sha256%3Aabc";
    const out = clientResponseHeaders(
      ["Location", `http://127.0.0.1:5001/v2/a/blobs/uploads/u-1?${state}`, "Docker-Upload-UUID", "u-1", "Range", "0-0"],
      202,
      backend,
      edge,
    );
    assert.deepEqual(pairs(out), [
      ["Location", `https://hub.registry.test:5443/v2/a/blobs/uploads/u-1?${state}`],
      ["Docker-Upload-UUID", "u-1"],
      ["Range", "0-0"],
      ["Docker-Distribution-Api-Version", "registry/2.0"],
    ]);
  });

  it("fixes the scheme of a Location built from our host over http", () => {
    assert.equal(rewriteLocation("http://hub.registry.test:5443/v2/a/blobs/x", backend, edge), "https://hub.registry.test:5443/v2/a/blobs/x");
  });

  it("leaves storage redirects, relative and look-alike hosts alone", () => {
    assert.equal(rewriteLocation("https://s3.example.com/bucket/blob?sig=1", backend, edge), "https://s3.example.com/bucket/blob?sig=1");
    assert.equal(rewriteLocation("/v2/a/blobs/uploads/u", backend, edge), "/v2/a/blobs/uploads/u");
    assert.equal(rewriteLocation("http://127.0.0.1:50011/v2/", backend, edge), "http://127.0.0.1:50011/v2/");
    const out = clientResponseHeaders(["Location", "https://storage.example/blob"], 307, backend, edge);
    assert.equal(out[1], "https://storage.example/blob");
  });

  it("does not rewrite Location on statuses other than 201, 202 and 3xx", () => {
    const out = clientResponseHeaders(["Location", "http://127.0.0.1:5001/v2/x"], 200, backend, edge);
    assert.equal(out[1], "http://127.0.0.1:5001/v2/x");
  });

  it("keeps duplicate challenges separate and strips hop-by-hop headers", () => {
    const out = clientResponseHeaders(
      ["WWW-Authenticate", 'Bearer realm="a"', "WWW-Authenticate", 'Basic realm="b"', "Connection", "close", "Transfer-Encoding", "chunked", "Keep-Alive", "timeout=5", "Content-Length", "12", "Docker-Distribution-Api-Version", "registry/2.0"],
      401,
      backend,
      edge,
    );
    assert.deepEqual(pairs(out), [
      ["WWW-Authenticate", 'Bearer realm="a"'],
      ["WWW-Authenticate", 'Basic realm="b"'],
      ["Content-Length", "12"],
      ["Docker-Distribution-Api-Version", "registry/2.0"],
    ]);
  });
});

describe("headers the gateway adds to a proxied response", () => {
  it("appends extraHeaders after the backend's, replacing any the backend sent under the same names", () => {
    const withLimits: EdgeContext = { ...edge, extraHeaders: ["RateLimit-Limit", "5;w=60", "RateLimit-Remaining", "4;w=60"] };
    const out = clientResponseHeaders(
      ["Content-Type", "application/json", "ratelimit-limit", "999;w=1", "Docker-Distribution-Api-Version", "registry/2.0"],
      200,
      backend,
      withLimits,
    );
    assert.deepEqual(pairs(out), [
      ["Content-Type", "application/json"],
      ["Docker-Distribution-Api-Version", "registry/2.0"],
      ["RateLimit-Limit", "5;w=60"],
      ["RateLimit-Remaining", "4;w=60"],
    ]);
  });
});
