// Sample view models for the registry browser's pages: realistic enough to look at, and a `hostile`
// variant of each where every string a pusher or visitor controls tries to break out of its context.
import type {
  DeleteConfirmModel, ErrorPageModel, LoginModel, PageChrome, RepositoryListModel, TagDetailsModel, TagListModel,
} from "../../src/web/view-models.js";

export const HOST = "registry.example.test:5443";
export const DIGEST = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
const OTHER_DIGEST = "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae";

/** Breaks out of element content, of either attribute quote, and of a URL. */
export const HOSTILE = `<script>alert(1)</script>"><img src=x onerror=alert(2)>'&amp;`;

export function chrome(overrides: Partial<PageChrome> = {}): PageChrome {
  return {
    registryHost: HOST,
    user: "alice",
    csrfToken: "csrf-token-123",
    assets: { css: "/assets/app.0123abcd.css", js: "/assets/app.4567ef01.js" },
    notice: null,
    ...overrides,
  };
}

export const anonymous = (overrides: Partial<PageChrome> = {}) => chrome({ user: null, csrfToken: null, ...overrides });

export function repositoryList(overrides: Partial<RepositoryListModel> = {}): RepositoryListModel {
  const names = ["library/alpine", "library/nginx", "team/backend/api", "team/frontend", "tools/skopeo", "ubuntu"];
  return {
    chrome: chrome(),
    query: "",
    repositories: names.map((name) => ({ name, url: `/repo/${name}` })),
    nextPageUrl: "/?last=ubuntu",
    firstPageUrl: null,
    ...overrides,
  };
}

const amd64 = { os: "linux", architecture: "amd64", variant: null, digest: OTHER_DIGEST };
const arm64 = { os: "linux", architecture: "arm64", variant: "v8", digest: DIGEST };

export function tagList(overrides: Partial<TagListModel> = {}): TagListModel {
  const tag = (name: string, size: number, created: string | null, multi: boolean) => ({
    name, digest: multi ? DIGEST : OTHER_DIGEST, size, created, platforms: multi ? [amd64, arm64] : [],
    url: `/tag/team/backend/api:${name}`,
  });
  return {
    chrome: chrome(),
    repository: "team/backend/api",
    tags: [
      tag("latest", 31_457_280, "2026-11-30T14:05:00Z", true),
      tag("v1.10.0", 31_457_280, "2026-11-30T14:05:00Z", true),
      tag("v1.9.2", 29_884_416, "2026-10-02T08:41:12Z", false),
      tag("v1.9.2-rc1", 29_880_000, null, false),
      tag("main", 1_536, "2026-12-01T09:00:00Z", false),
    ],
    canDelete: true,
    ...overrides,
  };
}

export function tagDetails(overrides: Partial<TagDetailsModel> = {}): TagDetailsModel {
  return {
    chrome: chrome(),
    repository: "team/backend/api",
    tag: "v1.10.0",
    digest: DIGEST,
    mediaType: "application/vnd.oci.image.index.v1+json",
    size: 31_457_280,
    created: "2026-11-30T14:05:00Z",
    pullByTag: `docker pull ${HOST}/team/backend/api:v1.10.0`,
    pullByDigest: `docker pull ${HOST}/team/backend/api@${DIGEST}`,
    platforms: [amd64, arm64],
    layers: [
      { digest: OTHER_DIGEST, mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", size: 3_623_807 },
      { digest: DIGEST, mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", size: 27_833_473 },
    ],
    layersOf: amd64,
    labels: { "org.opencontainers.image.source": "https://git.example.test/team/api", "org.opencontainers.image.version": "1.10.0" },
    history: [
      { created: "2026-11-01T10:00:00Z", createdBy: "/bin/sh -c #(nop) ADD file:4c5b2a in / ", emptyLayer: false },
      { created: "2026-11-01T10:00:01Z", createdBy: '/bin/sh -c #(nop)  CMD ["/bin/sh"]', emptyLayer: true },
      { created: "2026-11-30T14:05:00Z", createdBy: "RUN /bin/sh -c apk add --no-cache ca-certificates && adduser -D app # buildkit", emptyLayer: false },
    ],
    referrers: [{
      artifactType: "application/vnd.dev.sigstore.bundle.v0.3+json", digest: OTHER_DIGEST, size: 3_412,
      annotations: { "dev.sigstore.bundle.predicateType": "https://sigstore.dev/cosign/sign/v1" },
    }],
    canDelete: true,
    ...overrides,
  };
}

export function login(overrides: Partial<LoginModel> = {}): LoginModel {
  return { chrome: anonymous(), error: null, next: "/repo/team/backend/api", username: "", ...overrides };
}

export function errorPage(overrides: Partial<ErrorPageModel> = {}): ErrorPageModel {
  return { chrome: chrome(), status: 404, title: "Repository not found", message: "There is no repository named team/missing.", ...overrides };
}

export function deleteConfirm(overrides: Partial<DeleteConfirmModel> = {}): DeleteConfirmModel {
  return {
    chrome: chrome(), repository: "team/backend/api", tag: "v1.10.0", digest: DIGEST, alsoRemoved: ["latest"], alsoRemovedComplete: true,
    backUrl: "/tag/team/backend/api:v1.10.0", ...overrides,
  };
}

/** Every string the pusher or the visitor controls, set to HOSTILE (URLs stay paths the request side made). */
export function hostileChrome(): PageChrome {
  return chrome({ user: HOSTILE, csrfToken: HOSTILE, notice: HOSTILE, registryHost: HOSTILE, currentPath: `/${HOSTILE}` });
}
