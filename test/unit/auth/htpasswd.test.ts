// Runs alone: times verifications against the bcrypt cost.
// Htpasswd files as `htpasswd` (apache2-utils) writes them, and the live user set of one file.
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { after, before, describe, it } from "node:test";
import bcrypt from "bcryptjs";
import { HtpasswdError, HtpasswdUsers, parseHtpasswd, verifyPassword } from "../../../src/auth/htpasswd.js";
import { createLogger } from "../../../src/observe/log.js";
import { run, waitFor } from "../../helpers/process.js";

/** One `user:hash` line from the real htpasswd command. */
async function htpasswdLine(flags: string[], user: string, password: string): Promise<string> {
  const result = await run("htpasswd", ["-nb", ...flags, user, password]);
  assert.equal(result.code, 0, result.stderr);
  return result.stdout.trim();
}

function captureLogger() {
  const lines: Record<string, any>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split("\n")) if (line.trim()) lines.push(JSON.parse(line));
      done();
    },
  });
  return { logger: createLogger({ level: "debug", format: "json" }, sink), lines };
}

describe("htpasswd parser", () => {
  let lines: Record<string, string> = {};

  before(async () => {
    lines = {
      bcrypt: await htpasswdLine(["-B", "-C", "4"], "bcrypt-user", "pw-bcrypt"),
      apr1: await htpasswdLine(["-m"], "apr1-user", "pw-apr1"),
      sha: await htpasswdLine(["-s"], "sha-user", "pw-sha"),
      crypt: await htpasswdLine(["-d"], "crypt-user", "pw"),
    };
  });

  it("reads bcrypt ($2y$ from htpasswd -B, $2a$, $2b$), $apr1$ and {SHA}, skipping comments and blank lines", async () => {
    assert.match(lines.bcrypt!, /^bcrypt-user:\$2y\$04\$/);
    const b = await bcrypt.hash("pw-2b", 4);
    const a = b.replace(/^\$2b\$/, "$2a$");
    const text = ["# users", "", lines.bcrypt, lines.apr1, lines.sha, `b-user:${b}`, `a-user:${a}\r`, "  # indented comment", ""].join("\n");
    const entries = parseHtpasswd(text, "users.htpasswd");
    assert.deepEqual(
      [...entries.values()].map((e) => [e.user, e.kind, e.line]),
      [
        ["bcrypt-user", "bcrypt", 3],
        ["apr1-user", "apr1", 4],
        ["sha-user", "sha1", 5],
        ["b-user", "bcrypt", 6],
        ["a-user", "bcrypt", 7],
      ],
    );
    assert.equal(entries.get("bcrypt-user")!.cost, 4);
  });

  it("verifies each kind of hash, and only with the right password", async () => {
    const entries = parseHtpasswd([lines.bcrypt, lines.apr1, lines.sha].join("\n"), "f");
    for (const [user, password] of [["bcrypt-user", "pw-bcrypt"], ["apr1-user", "pw-apr1"], ["sha-user", "pw-sha"]] as const) {
      const entry = entries.get(user)!;
      assert.equal(await verifyPassword(entry, password), true, user);
      assert.equal(await verifyPassword(entry, `${password}x`), false, user);
      assert.equal(await verifyPassword(entry, ""), false, user);
    }
  });

  for (const [what, line, reason] of [
    ["crypt(3) DES from htpasswd -d", () => lines.crypt!, /crypt-user.*unsupported password hash/],
    ["a plain-text password", () => "plain:secret", /unsupported password hash/],
    ["a line without a colon", () => "no-colon-here", /expected user:hash/],
    ["an MD5-crypt $1$ hash", () => "md5:$1$abcdefgh$0123456789012345678901", /unsupported password hash/],
    ["a truncated bcrypt hash", () => "short:$2y$10$abc", /unsupported password hash/],
  ] as const) {
    it(`refuses ${what}, naming file and line and never the hash`, () => {
      const text = ["# header", lines.bcrypt, line()].join("\n");
      assert.throws(
        () => parseHtpasswd(text, "/etc/rg/htpasswd"),
        (err: unknown) => {
          assert.ok(err instanceof HtpasswdError);
          assert.equal(err.line, 3);
          assert.match(err.message, /^\/etc\/rg\/htpasswd:3: /);
          assert.match(err.message, reason);
          const hash = line().split(":")[1];
          if (hash && hash.length > 8) assert.ok(!err.message.includes(hash), "the hash must not be echoed");
          return true;
        },
      );
    });
  }

  it("refuses a user defined twice", () => {
    assert.throws(() => parseHtpasswd([lines.bcrypt, lines.bcrypt].join("\n"), "f"), /f:2: user "bcrypt-user" is already defined on line 1/);
  });
});

describe("htpasswd user set", () => {
  let dir: string;
  let file: string;
  let users: HtpasswdUsers;
  const log = captureLogger();

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "rg-htpasswd-"));
    file = join(dir, "htpasswd");
    const lines = await Promise.all([
      htpasswdLine(["-B", "-C", "10"], "alice", "Alice123"),
      htpasswdLine(["-B", "-C", "10"], "bob", "Bob12345"),
    ]);
    await writeFile(file, `${lines.join("\n")}\n`);
    users = await HtpasswdUsers.open(file, log.logger, { cacheTtlMs: 60_000, pollIntervalMs: 200 });
  });

  after(async () => {
    users?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("remembers a successful verification: bcrypt is paid once, not per request", async () => {
    const first = performance.now();
    assert.equal(await users.verify("alice", "Alice123"), true);
    const firstMs = performance.now() - first;
    const again = performance.now();
    for (let i = 0; i < 100; i++) assert.equal(await users.verify("alice", "Alice123"), true);
    const hundredMs = performance.now() - again;
    assert.ok(hundredMs < firstMs, `100 cached verifications took ${hundredMs} ms, one bcrypt ${firstMs} ms`);
  });

  it("never remembers a failure", async () => {
    assert.equal(await users.verify("alice", "wrong"), false);
    const started = performance.now();
    assert.equal(await users.verify("alice", "wrong"), false);
    assert.ok(performance.now() - started > 20, "a wrong password pays bcrypt every time");
  });

  it("shares one bcrypt among concurrent identical verifications", async () => {
    const started = performance.now();
    const results = await Promise.all(Array.from({ length: 8 }, () => users.verify("bob", "Bob12345")));
    const elapsed = performance.now() - started;
    assert.deepEqual(new Set(results), new Set([true]));
    const single = performance.now();
    await users.verify("bob", "not-bobs");
    const oneMs = performance.now() - single;
    assert.ok(elapsed < oneMs * 3, `8 concurrent logins took ${elapsed} ms, one bcrypt ${oneMs} ms`);
  });

  it("takes as long for an unknown user as for a known user with a wrong password", async () => {
    const time = async (user: string) => {
      const started = performance.now();
      assert.equal(await users.verify(user, "guess"), false);
      return performance.now() - started;
    };
    const known = (await time("alice")) + (await time("bob"));
    const unknown = (await time("mallory")) + (await time("eve"));
    const ratio = unknown / known;
    assert.ok(ratio > 0.5 && ratio < 2, `unknown ${unknown} ms vs known ${known} ms`);
  });

  it("re-reads the file on change: a removed user stops working, a cached login included", async () => {
    assert.equal(await users.verify("bob", "Bob12345"), true);
    const alice = await htpasswdLine(["-B", "-C", "4"], "alice", "Alice123");
    await writeFile(file, `${alice}\n`);
    await waitFor(async () => !users.has("bob"), { timeoutMs: 5000, what: "bob to be removed" });
    assert.equal(await users.verify("bob", "Bob12345"), false);
    assert.equal(await users.verify("alice", "Alice123"), true);
  });

  it("does not believe one empty read (a writer caught between truncate and write), but a file left empty empties the set", async () => {
    const alice = await htpasswdLine(["-B", "-C", "4"], "alice", "Alice123");
    await writeFile(file, `${alice}\n`);
    await waitFor(() => users.has("alice"), { timeoutMs: 5000, what: "alice" });
    await writeFile(file, "");
    await new Promise((resolve) => setTimeout(resolve, 150));
    assert.equal(users.has("alice"), true, "a single empty read must not drop every user");
    await writeFile(file, `${alice}\n`);
    await new Promise((resolve) => setTimeout(resolve, 600));
    assert.equal(users.has("alice"), true);
    await writeFile(file, "");
    await waitFor(() => !users.has("alice"), { timeoutMs: 5000, what: "the emptied file to take effect" });
    await writeFile(file, `${alice}\n`);
    await waitFor(() => users.has("alice"), { timeoutMs: 5000, what: "alice back for the next test" });
  });

  it("keeps the last good set when an edit breaks the file, and logs file and line", async () => {
    const alice = await htpasswdLine(["-B", "-C", "4"], "alice", "Alice123");
    await writeFile(file, `${alice}\ncarol:plaintext\n`);
    const warning = await waitFor(() => log.lines.find((l) => l.msg?.startsWith("htpasswd file has an error")), { timeoutMs: 5000, what: "the warning" });
    assert.equal(warning.line, 2);
    assert.equal(warning.file, file);
    assert.ok(!JSON.stringify(warning).includes("plaintext"), "the bad line's secret is not logged");
    assert.equal(await users.verify("alice", "Alice123"), true);
    assert.equal(users.has("carol"), false);
  });
});
