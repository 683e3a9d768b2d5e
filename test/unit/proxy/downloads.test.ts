import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import type { ServerResponse } from "node:http";
import { describe, it } from "node:test";
import { DownloadLimits } from "../../../src/proxy/downloads.js";
import type { RegistryRoute } from "../../../src/registry/routes.js";

const blob = { kind: "blob", repository: "a/b", reference: "sha256:x", accesses: [] } as unknown as RegistryRoute;
const manifest = { kind: "manifest", repository: "a/b", reference: "latest", accesses: [] } as unknown as RegistryRoute;
const tags = { kind: "tags", repository: "a/b", accesses: [] } as unknown as RegistryRoute;
/** A response that closes when told: all the limits watch of it. */
const response = () => new EventEmitter() as unknown as ServerResponse & EventEmitter;

describe("concurrent downloads per client address and user", () => {
  it("refuses the download over the per-address cap, with Retry-After, until one closes", () => {
    const limits = new DownloadLimits({ downloadsPerClient: 2, downloadsPerUser: 10 });
    const first = response();
    assert.equal(limits.admit("GET", blob, { ip: "10.0.0.1" }, first), null);
    assert.equal(limits.admit("GET", manifest, { ip: "10.0.0.1" }, response()), null);
    const refused = limits.admit("GET", blob, { ip: "10.0.0.1" }, response());
    assert.match(refused!.message, /too many downloads at once from 10\.0\.0\.1 \(at most 2\)/);
    assert.equal(refused!.headers["Retry-After"], "1");
    assert.equal(limits.admit("GET", blob, { ip: "10.0.0.2" }, response()), null, "another address has its own count");
    first.emit("close");
    assert.equal(limits.admit("GET", blob, { ip: "10.0.0.1" }, response()), null);
  });

  it("counts an IPv6 client by its /64, so picking new addresses gets no new cap", () => {
    const limits = new DownloadLimits({ downloadsPerClient: 2, downloadsPerUser: 10 });
    assert.equal(limits.admit("GET", blob, { ip: "2001:db8:1:2::1" }, response()), null);
    assert.equal(limits.admit("GET", blob, { ip: "2001:db8:1:2::2" }, response()), null);
    assert.match(limits.admit("GET", blob, { ip: "2001:db8:1:2:ffff::3" }, response())!.message, /too many downloads at once from 2001:db8:1:2:0:0:0:0\/64/);
    assert.equal(limits.admit("GET", blob, { ip: "2001:db8:1:3::1" }, response()), null, "another /64 has its own count");
  });

  it("counts only GETs of blobs and manifests", () => {
    const limits = new DownloadLimits({ downloadsPerClient: 1, downloadsPerUser: 1 });
    assert.equal(limits.admit("GET", blob, { ip: "10.0.0.1", user: "u" }, response()), null);
    assert.equal(limits.admit("HEAD", blob, { ip: "10.0.0.1", user: "u" }, response()), null);
    assert.equal(limits.admit("GET", tags, { ip: "10.0.0.1", user: "u" }, response()), null);
    assert.notEqual(limits.admit("GET", manifest, { ip: "10.0.0.1", user: "u" }, response()), null);
  });

  it("caps an authenticated user across addresses", () => {
    const limits = new DownloadLimits({ downloadsPerClient: 10, downloadsPerUser: 2 });
    assert.equal(limits.admit("GET", blob, { ip: "10.0.0.1", user: "ci" }, response()), null);
    assert.equal(limits.admit("GET", blob, { ip: "10.0.0.2", user: "ci" }, response()), null);
    assert.match(limits.admit("GET", blob, { ip: "10.0.0.3", user: "ci" }, response())!.message, /for this user \(at most 2\)/);
    assert.equal(limits.admit("GET", blob, { ip: "10.0.0.3", user: "other" }, response()), null);
    assert.equal(limits.inFlight("ip 10.0.0.3"), 1, "a refused download is not counted");
  });

  it("keeps the counts across a reload (a new instance built on the previous one) under the new caps", () => {
    const before = new DownloadLimits({ downloadsPerClient: 5, downloadsPerUser: 5 });
    const held = response();
    before.admit("GET", blob, { ip: "10.0.0.1" }, held);
    const after = new DownloadLimits({ downloadsPerClient: 1, downloadsPerUser: 5 }, before);
    assert.notEqual(after.admit("GET", blob, { ip: "10.0.0.1" }, response()), null);
    held.emit("close");
    assert.equal(after.admit("GET", blob, { ip: "10.0.0.1" }, response()), null);
  });
});
