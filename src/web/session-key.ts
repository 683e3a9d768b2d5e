// Where the key that signs browser sessions comes from. A source, not a key: every process serving a site
// must sign and verify with the same key (cluster workers on one machine share the data directory; a fleet
// shares a store of its own), so the default keeps one file that the first process to need it creates.
import { randomBytes } from "node:crypto";
import { link, mkdir, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { writeFileAtomically } from "../util/atomic-write.js";

/** 256 bits for HS256: as long as the hash, as RFC 7518 asks. */
export const SESSION_KEY_BYTES = 32;

export interface SessionKeySource {
  /** The signing key, the same for every process sharing the source. Rejects when it cannot be had. */
  key(): Promise<Uint8Array>;
}

/** `<dataDir>/web/session.key`: 32 random bytes, mode 0600, created once, never replaced. */
export class FileSessionKeySource implements SessionKeySource {
  readonly file: string;
  #key: Promise<Uint8Array> | null = null;

  constructor(dataDir: string) {
    this.file = join(dataDir, "web", "session.key");
  }

  key(): Promise<Uint8Array> {
    this.#key ??= this.#loadOrCreate();
    // A failed load is tried again by the next request rather than remembered.
    this.#key.catch(() => (this.#key = null));
    return this.#key;
  }

  async #loadOrCreate(): Promise<Uint8Array> {
    const existing = await this.#read();
    if (existing) return existing;
    await mkdir(join(this.file, ".."), { recursive: true, mode: 0o700 });
    // Written whole under a private name, then linked into place: link() fails when the name exists, so of
    // workers racing to create it exactly one wins, and the others read the winner's key (never a partial one).
    const candidate = `${this.file}.${process.pid}.${randomBytes(6).toString("hex")}.new`;
    await writeFileAtomically(candidate, randomBytes(SESSION_KEY_BYTES).toString("base64"), 0o600);
    try {
      await link(candidate, this.file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    } finally {
      await rm(candidate, { force: true });
    }
    const key = await this.#read();
    if (!key) throw new Error(`${this.file}: the session key could not be created`);
    return key;
  }

  async #read(): Promise<Uint8Array | null> {
    let text: string;
    try {
      text = await readFile(this.file, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw err;
    }
    const key = Buffer.from(text.trim(), "base64");
    if (key.length < SESSION_KEY_BYTES) throw new Error(`${this.file}: expected ${SESSION_KEY_BYTES} random bytes in base64`);
    return key;
  }
}
