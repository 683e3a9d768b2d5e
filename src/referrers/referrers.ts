// The referrers API for a registry that lacks it: which registries need it (the site's `referrers` setting,
// or in `auto` a probe of each registry once), and the index store they share. Built per configuration;
// the lock behind the store is the process's (Redis when configured, so gateways sharing it take turns).
import type { ReferrersMode } from "../config/schema.js";
import type { IndexBackend } from "./index-backend.js";
import type { IndexLock } from "./lock.js";
import { ReferrersStore } from "./store.js";

/** A digest no registry holds: what the probe asks the referrers of. */
const PROBE_DIGEST = `sha256:${"0".repeat(64)}`;

export class Referrers {
  readonly store: ReferrersStore;
  /** Per registry, whether the gateway answers its referrers API; asked once (a failed probe is asked again). */
  readonly #emulated = new Map<string, Promise<boolean>>();

  constructor(lock: IndexLock) {
    this.store = new ReferrersStore(lock);
  }

  /** Whether the gateway keeps the referrers of `backend` (serving `repository`) under `mode`. */
  emulates(mode: ReferrersMode, backend: IndexBackend, repository: string): Promise<boolean> {
    if (mode !== "auto") return Promise.resolve(mode === "emulate");
    let known = this.#emulated.get(backend.id);
    if (!known) {
      known = lacksReferrers(backend, repository);
      this.#emulated.set(backend.id, known);
      known.catch(() => this.#emulated.delete(backend.id));
    }
    // A registry that could not be asked is left to answer for itself, as before the gateway knew of referrers.
    return known.catch(() => false);
  }
}

/**
 * A registry without the API answers its router's plain 404 ("404 page not found"); one with it answers
 * 200, or a registry JSON error (NAME_UNKNOWN, UNAUTHORIZED…) that is its own to give.
 */
async function lacksReferrers(backend: IndexBackend, repository: string): Promise<boolean> {
  const answer = await backend.get(`/v2/${repository}/referrers/${PROBE_DIGEST}`, "application/vnd.oci.image.index.v1+json");
  return answer.status === 404 && !isRegistryError(answer.body);
}

function isRegistryError(body: Buffer): boolean {
  try {
    const parsed = JSON.parse(body.toString("utf8")) as { errors?: unknown };
    return Array.isArray(parsed.errors);
  } catch {
    return false;
  }
}
