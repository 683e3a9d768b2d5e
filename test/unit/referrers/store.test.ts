// Read-modify-write of a subject's index (src/referrers/store.ts) over an in-memory registry: concurrent
// adds under one lock keep every entry, a write another writer overwrote is made again, a removal of
// something not listed writes nothing, and a registry refusing the write is reported.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { BackendAnswer, IndexBackend } from "../../../src/referrers/index-backend.js";
import { fallbackTag, parseIndex } from "../../../src/referrers/index-document.js";
import { LocalLock, type IndexLock } from "../../../src/referrers/lock.js";
import { ReferrersStore } from "../../../src/referrers/store.js";
import { OCI_MANIFEST } from "../../../src/registry/manifest.js";

const SUBJECT = `sha256:${"f".repeat(64)}`;
const PATH = `/v2/app/manifests/${fallbackTag(SUBJECT)}`;
const referrer = (n: number) => ({ mediaType: OCI_MANIFEST, digest: `sha256:${n.toString(16).padStart(64, "0")}`, size: n, artifactType: "x/sig" });

/** A registry holding manifests by path, answering after a turn of the event loop (so writers interleave). */
class MemoryRegistry implements IndexBackend {
  readonly id = "memory";
  readonly stored = new Map<string, Buffer>();
  puts = 0;
  /** Called after each PUT is stored: lets a test play another writer. */
  afterPut?: (put: number) => void;
  putStatus = 201;

  async get(path: string): Promise<BackendAnswer> {
    await new Promise((resolve) => setImmediate(resolve));
    const body = this.stored.get(path);
    return body ? { status: 200, contentType: "", body } : { status: 404, contentType: "", body: Buffer.alloc(0) };
  }

  async put(path: string, body: Buffer): Promise<BackendAnswer> {
    await new Promise((resolve) => setImmediate(resolve));
    this.puts++;
    if (this.putStatus === 201) this.stored.set(path, body);
    this.afterPut?.(this.puts);
    return { status: this.putStatus, contentType: "", body: Buffer.from("refused") };
  }

  listed(): string[] {
    return parseIndex(this.stored.get(PATH) ?? Buffer.from("{}"))?.manifests.map((d) => d.digest) ?? [];
  }
}

/** No lock at all: what the store would do without one. */
const NO_LOCK: IndexLock = { run: (_key, work) => work(), close: async () => {} };

describe("referrers store", () => {
  it("keeps every one of 20 concurrent adds under the lock", async () => {
    const registry = new MemoryRegistry();
    const store = new ReferrersStore(new LocalLock());
    await Promise.all(Array.from({ length: 20 }, (_, n) => store.add(registry, "app", SUBJECT, referrer(n + 1))));
    assert.deepEqual(registry.listed().sort(), Array.from({ length: 20 }, (_, n) => referrer(n + 1).digest).sort());
  });

  it("makes a write again when another writer's write replaced it", async () => {
    const registry = new MemoryRegistry();
    const store = new ReferrersStore(NO_LOCK);
    // The first write is overwritten at once by a writer that never saw it.
    registry.afterPut = (put) => {
      if (put === 1) registry.stored.set(PATH, Buffer.from(JSON.stringify({ schemaVersion: 2, manifests: [referrer(99)] })));
    };
    await store.add(registry, "app", SUBJECT, referrer(1));
    assert.deepEqual(registry.listed(), [referrer(99).digest, referrer(1).digest]);
    assert.equal(registry.puts, 2);
  });

  it("adds the same referrer twice as one entry, and removes it", async () => {
    const registry = new MemoryRegistry();
    const store = new ReferrersStore(new LocalLock());
    await store.add(registry, "app", SUBJECT, referrer(1));
    await store.add(registry, "app", SUBJECT, referrer(1));
    assert.deepEqual(registry.listed(), [referrer(1).digest]);
    await store.remove(registry, "app", SUBJECT, referrer(1).digest);
    assert.deepEqual(registry.listed(), []);
  });

  it("writes nothing to remove a referrer that is not listed", async () => {
    const registry = new MemoryRegistry();
    await new ReferrersStore(new LocalLock()).remove(registry, "app", SUBJECT, referrer(1).digest);
    assert.equal(registry.puts, 0);
    assert.equal(registry.stored.size, 0);
  });

  it("reads an empty index for a subject nobody referred to", async () => {
    assert.deepEqual((await new ReferrersStore(new LocalLock()).read(new MemoryRegistry(), "app", SUBJECT)).manifests, []);
  });

  it("rejects when the registry refuses the index", async () => {
    const registry = new MemoryRegistry();
    registry.putStatus = 400;
    await assert.rejects(new ReferrersStore(new LocalLock()).add(registry, "app", SUBJECT, referrer(1)), /answered 400/);
  });
});
