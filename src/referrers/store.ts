// A subject's referrers index, kept in the subject's repository under the spec's fallback tag: read as the
// API's answer, changed under the subject's lock (lock.ts) when a referrer is pushed or deleted. After each
// write the index is read back: an entry missing from what the registry now holds means another writer's
// whole-index write won the race (a lease that expired mid-write), and the change is made again.
import { OCI_INDEX } from "../registry/manifest.js";
import type { IndexBackend } from "./index-backend.js";
import type { IndexLock } from "./lock.js";
import {
  emptyIndex,
  fallbackTag,
  lists,
  parseIndex,
  serializeIndex,
  withReferrer,
  withoutReferrer,
  type ReferrerDescriptor,
  type ReferrersIndex,
} from "./index-document.js";

/** Writes of one change at most, when each one's read-back shows a lost race. */
const ATTEMPTS = 4;

export class ReferrersStore {
  constructor(private readonly lock: IndexLock) {}

  /** The subject's index; an empty one when none was written (the API never answers 404 for it). */
  async read(backend: IndexBackend, repository: string, subject: string): Promise<ReferrersIndex> {
    const answer = await backend.get(indexPath(repository, subject), OCI_INDEX);
    if (answer.status === 404) return emptyIndex();
    if (answer.status !== 200) throw new Error(`the registry answered ${answer.status} for the referrers index of ${subject}`);
    return parseIndex(answer.body) ?? emptyIndex();
  }

  add(backend: IndexBackend, repository: string, subject: string, referrer: ReferrerDescriptor): Promise<void> {
    return this.#change(backend, repository, subject, referrer.digest, true, (index) => withReferrer(index, referrer));
  }

  remove(backend: IndexBackend, repository: string, subject: string, digest: string): Promise<void> {
    return this.#change(backend, repository, subject, digest, false, (index) => withoutReferrer(index, digest));
  }

  #change(backend: IndexBackend, repository: string, subject: string, digest: string, listed: boolean, change: (index: ReferrersIndex) => ReferrersIndex) {
    return this.lock.run(`${backend.id}\n${repository}\n${subject}`, async () => {
      for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
        const current = await this.read(backend, repository, subject);
        // Nothing to remove: no write (and no index created for a subject that had none).
        if (!listed && !lists(current, digest)) return;
        const written = await backend.put(indexPath(repository, subject), serializeIndex(change(current)), OCI_INDEX);
        if (written.status !== 201) throw new Error(`the registry answered ${written.status} to the referrers index of ${subject}: ${written.body.toString().slice(0, 200)}`);
        if (lists(await this.read(backend, repository, subject), digest) === listed) return;
      }
      throw new Error(`the referrers index of ${subject} kept changing under its writes`);
    });
  }
}

function indexPath(repository: string, subject: string): string {
  return `/v2/${repository}/manifests/${fallbackTag(subject)}`;
}
