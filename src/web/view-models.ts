// What the registry browser's pages show, as plain data: the request side (routes, sessions, reading the
// registry) fills these in, the views turn them into HTML. Keeping them apart lets the views be tested as
// pure functions and the request side without parsing HTML.

/** Everything every page needs around its content. */
export interface PageChrome {
  /** `host[:port]` as users type it in `docker pull` (the request's authority). */
  registryHost: string;
  /** The signed-in user, or null for anonymous. */
  user: string | null;
  /** The session's CSRF token for forms that change something (logout, delete); null when anonymous. */
  csrfToken: string | null;
  /** Hashed asset URLs (long-cached), e.g. `/assets/app.3f9a1c2e.css`. */
  assets: { css: string; js: string };
  /** A one-line notice shown above the content (e.g. "Tag v1 deleted"), or null. */
  notice: string | null;
  /**
   * This page's path and query, where "Sign in" comes back to. Optional: without it each view links back
   * to the page its model describes (and an error page to `/`).
   */
  currentPath?: string;
}

export interface RepositorySummary {
  name: string;
  /** Link to the repository's tag list. */
  url: string;
}

export interface RepositoryListModel {
  chrome: PageChrome;
  /** The search text as typed (`?q=`), "" for none. */
  query: string;
  repositories: RepositorySummary[];
  /** Link to the next page of results, or null on the last page. */
  nextPageUrl: string | null;
  /** Link to the first page when not on it, or null. */
  firstPageUrl: string | null;
}

export interface Platform {
  os: string;
  architecture: string;
  variant: string | null;
  digest: string;
}

/** What a tag list shows of an image, read from its manifest (and config, or an index's children). */
export interface ImageSummary {
  digest: string;
  mediaType: string;
  size: number;
  created: string | null;
  platforms: Platform[];
}

export interface TagSummary {
  name: string;
  digest: string;
  /** Bytes: the manifest plus its config and layers (an index: the largest platform's). */
  size: number;
  /** ISO 8601 from the image config, or null when unknown. */
  created: string | null;
  /** Platforms of an index; empty for a single-platform manifest. */
  platforms: Platform[];
  url: string;
}

export interface TagListModel {
  chrome: PageChrome;
  repository: string;
  /** Sorted like versions, newest first. */
  tags: TagSummary[];
  /** The user may delete tags of this repository (the delete form is shown). */
  canDelete: boolean;
  /** Link to the next page of tags, or null (or absent) on the last page. */
  nextPageUrl?: string | null;
}

export interface Layer {
  digest: string;
  mediaType: string;
  size: number;
}

export interface HistoryEntry {
  created: string | null;
  createdBy: string;
  emptyLayer: boolean;
}

export interface Referrer {
  artifactType: string;
  digest: string;
  size: number;
  annotations: Record<string, string>;
}

export interface TagDetailsModel {
  chrome: PageChrome;
  repository: string;
  tag: string;
  digest: string;
  mediaType: string;
  size: number;
  created: string | null;
  /** `docker pull HOST:PORT/repo:tag` and `docker pull HOST:PORT/repo@sha256:…`. */
  pullByTag: string;
  pullByDigest: string;
  platforms: Platform[];
  /** The manifest's layers (an index: the first platform's, named in `layersOf`). */
  layers: Layer[];
  layersOf: Platform | null;
  labels: Record<string, string>;
  history: HistoryEntry[];
  /** Signatures, SBOMs, attestations pointing at this digest. */
  referrers: Referrer[];
  canDelete: boolean;
}

export interface LoginModel {
  chrome: PageChrome;
  /** Why the last attempt failed ("Wrong user name or password", "Too many attempts…"), or null. */
  error: string | null;
  /** Where to go after signing in (a path on this site). */
  next: string;
  username: string;
}

export interface ErrorPageModel {
  chrome: PageChrome;
  status: number;
  title: string;
  message: string;
}

/** The confirmation before a tag is deleted; on a registry that deletes by digest, other tags go too. */
export interface DeleteConfirmModel {
  chrome: PageChrome;
  repository: string;
  tag: string;
  digest: string;
  /** Other tags of the repository on the same digest, removed with it. */
  alsoRemoved: string[];
  /** False when not every other tag could be checked (too many, too slow, or a read failed): there may be more. */
  alsoRemovedComplete: boolean;
  /** Where "cancel" goes back to. */
  backUrl: string;
}
