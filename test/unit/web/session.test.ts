import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import { SessionSigner } from "../../../src/web/session.js";

const HOUR = 3600_000;

describe("browser sessions", () => {
  const key = randomBytes(32);
  const fingerprints = new Map([["alice", "fp-1"]]);
  const signer = new SessionSigner(key, "web", 8 * HOUR, (user) => fingerprints.get(user));

  it("verifies what it signed, and names the user", async () => {
    const issued = (await signer.issue("alice", fingerprints.get("alice")))!;
    const session = await signer.verify(issued.token);
    assert.deepEqual(session, issued.session);
    assert.equal(session!.user, "alice");
    assert.doesNotMatch(Buffer.from(issued.token.split(".")[1]!, "base64url").toString(), /fp-1/, "the fingerprint itself is not in the cookie");
  });

  it("refuses an expired session, a tampered one, one signed with another key, and one of another site", async () => {
    const now = Date.now();
    const { token } = (await signer.issue("alice", "fp-1", now))!;
    assert.equal(await signer.verify(token, now + 8 * HOUR + 1000), null);
    assert.notEqual(await signer.verify(token, now + 8 * HOUR - 1000), null);
    const [header, payload, signature] = token.split(".");
    const forged = Buffer.from(payload!, "base64url").toString().replace('"sub":"alice"', '"sub":"admin"');
    assert.equal(await signer.verify(`${header}.${Buffer.from(forged).toString("base64url")}.${signature}`), null);
    const otherKey = new SessionSigner(randomBytes(32), "web", HOUR, (user) => fingerprints.get(user));
    assert.equal(await otherKey.verify(token), null);
    const otherSite = new SessionSigner(key, "elsewhere", HOUR, (user) => fingerprints.get(user));
    assert.equal(await otherSite.verify(token), null);
  });

  it("ends every session of a user whose password changed or who was removed", async () => {
    const { token } = (await signer.issue("alice", fingerprints.get("alice")))!;
    fingerprints.set("alice", "fp-2");
    assert.equal(await signer.verify(token), null);
    const fresh = (await signer.issue("alice", fingerprints.get("alice")))!;
    assert.notEqual(await signer.verify(fresh.token), null);
    fingerprints.delete("alice");
    assert.equal(await signer.verify(fresh.token), null);
    assert.equal(await signer.issue("alice", "fp-1"), null, "no session for a user who is gone");
    fingerprints.set("alice", "fp-1");
  });

  it("issues no session when the password changed while it was being checked", async () => {
    fingerprints.set("alice", "fp-2");
    assert.equal(await signer.issue("alice", "fp-1"), null, "checked against the old password");
    assert.equal(await signer.issue("alice", undefined), null, "checked against no user");
    assert.notEqual(await signer.issue("alice", "fp-2"), null, "the control: checked against the current one");
    fingerprints.set("alice", "fp-1");
  });

  it("gives each session its own CSRF token and accepts only that one", async () => {
    const one = (await signer.issue("alice", fingerprints.get("alice")))!.session;
    const two = (await signer.issue("alice", fingerprints.get("alice")))!.session;
    const token = signer.csrfToken(one);
    assert.ok(signer.csrfMatches(one, token));
    assert.notEqual(signer.csrfToken(two), token);
    assert.equal(signer.csrfMatches(two, token), false);
    assert.equal(signer.csrfMatches(one, undefined), false);
    assert.equal(signer.csrfMatches(one, ""), false);
    assert.equal(signer.csrfMatches(one, `${token}x`), false);
  });
});
