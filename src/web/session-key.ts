// Where the key that signs browser sessions comes from. A source, not a key: every process serving a site
// must sign and verify with the same key — a cluster's workers and, with the redis TLS store, every gateway
// of a fleet — so it is one of the TLS store's shared secrets: sealed in Redis for a fleet, a 0600 file
// under `<dataDir>/secrets/` otherwise, created once by whichever process needs it first.
import { randomBytes } from "node:crypto";
import type { GatewayConfig } from "../config/schema.js";
import { loadOrCreateSharedSecret } from "../tls/tls-stores.js";

/** 256 bits for HS256: as long as the hash, as RFC 7518 asks. */
export const SESSION_KEY_BYTES = 32;

/** The shared secret's name in the TLS store. */
export const SESSION_KEY_NAME = "web-sessions";

export interface SessionKeySource {
  /** The signing key, the same for every process sharing the source. Rejects when it cannot be had. */
  key(): Promise<Uint8Array>;
}

export class StoredSessionKeySource implements SessionKeySource {
  #key: Promise<Uint8Array> | null = null;

  constructor(private readonly config: Pick<GatewayConfig, "tls" | "redis" | "dataDir">) {}

  key(): Promise<Uint8Array> {
    this.#key ??= this.#load();
    // A failed load (Redis away) is tried again by the next request rather than remembered.
    this.#key.catch(() => (this.#key = null));
    return this.#key;
  }

  async #load(): Promise<Uint8Array> {
    const text = await loadOrCreateSharedSecret(this.config, SESSION_KEY_NAME, () => randomBytes(SESSION_KEY_BYTES).toString("base64"));
    const key = Buffer.from(text.trim(), "base64");
    if (key.length < SESSION_KEY_BYTES) throw new Error(`the shared secret "${SESSION_KEY_NAME}" is not ${SESSION_KEY_BYTES} random bytes in base64`);
    return key;
  }
}
