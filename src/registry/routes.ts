// What a request means to a registry: method + path → route kind, repository, reference, and the
// accesses distribution would demand for it (registry/handlers/app.go appendAccessRecords).
//
// Repository names contain "/" and may contain the words "manifests" or "blobs", so routes are
// matched on the path suffix after the name, never by splitting on the first keyword.

export type RouteKind =
  | "base"
  | "catalog"
  | "tags"
  | "manifest"
  | "blob"
  | "upload"
  | "referrers"
  | "token"
  | "other";

export type UploadPhase = "start" | "chunk" | "finish" | "status" | "cancel";

export type Action = "pull" | "push" | "delete" | "*";

export interface Access {
  type: "repository" | "registry";
  name: string;
  action: Action;
}

export interface RegistryRoute {
  kind: RouteKind;
  repository?: string;
  /** Tag or digest (manifest), digest (blob, referrers), upload UUID (upload). */
  reference?: string;
  uploadPhase?: UploadPhase;
  /** Source repository of a cross-repository blob mount (`POST …/blobs/uploads/?mount=D&from=R`). */
  mountFrom?: string;
  accesses: Access[];
}

export const MAX_NAME_LENGTH = 255;
const COMPONENT = "[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*";
const NAME = `${COMPONENT}(?:/${COMPONENT})*`;
const NAME_PATTERN = new RegExp(`^${NAME}$`);
const TAG = "[A-Za-z0-9_][A-Za-z0-9._-]{0,127}";
const DIGEST = "[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9A-Fa-f]{32,}";

// Ordered: the first match wins. Each pattern captures the name, then the rest.
const ROUTE_PATTERNS: { kind: RouteKind; pattern: RegExp; phase?: "uploads" }[] = [
  { kind: "tags", pattern: new RegExp(`^/v2/(${NAME})/tags/list$`) },
  { kind: "manifest", pattern: new RegExp(`^/v2/(${NAME})/manifests/(${TAG}|${DIGEST})$`) },
  { kind: "upload", pattern: new RegExp(`^/v2/(${NAME})/blobs/uploads/([^/]*)$`), phase: "uploads" },
  { kind: "blob", pattern: new RegExp(`^/v2/(${NAME})/blobs/(${DIGEST})$`) },
  { kind: "referrers", pattern: new RegExp(`^/v2/(${NAME})/referrers/(${DIGEST})$`) },
];

export function isValidRepositoryName(name: string): boolean {
  return name.length <= MAX_NAME_LENGTH && NAME_PATTERN.test(name);
}

/**
 * True when a path tries to climb out of where it claims to be: a `.` or `..` segment, written
 * plainly or percent-encoded. Such paths are refused rather than normalised, as nginx and the
 * backend could each normalise them differently.
 */
export function hasDotSegments(path: string): boolean {
  return path.split("/").some((segment) => {
    const decoded = segment.replace(/%2e/gi, ".");
    return decoded === "." || decoded === "..";
  });
}

export function classify(method: string, path: string, query: URLSearchParams): RegistryRoute {
  if (path === "/v2" || path === "/v2/") return { kind: "base", accesses: [] };
  if (path === "/v2/_catalog") {
    return { kind: "catalog", accesses: [{ type: "registry", name: "catalog", action: "*" }] };
  }
  if (path === "/token") return { kind: "token", accesses: [] };

  for (const { kind, pattern, phase } of ROUTE_PATTERNS) {
    const match = pattern.exec(path);
    if (!match) continue;
    const repository = match[1]!;
    if (repository.length > MAX_NAME_LENGTH) break;
    const reference = match[2] || undefined;
    if (phase === "uploads") return uploadRoute(method, repository, reference, query);
    return { kind, repository, reference, accesses: repositoryAccesses(method, repository) };
  }
  return { kind: "other", accesses: [] };
}

function uploadRoute(
  method: string,
  repository: string,
  uuid: string | undefined,
  query: URLSearchParams,
): RegistryRoute {
  const uploadPhase = uploadPhaseOf(method, uuid);
  const route: RegistryRoute = {
    kind: "upload",
    repository,
    reference: uuid,
    uploadPhase,
    accesses: repositoryAccesses(method, repository),
  };
  const mountFrom = query.get("from");
  if (uploadPhase === "start" && query.has("mount") && mountFrom && isValidRepositoryName(mountFrom)) {
    route.mountFrom = mountFrom;
    route.accesses.push({ type: "repository", name: mountFrom, action: "pull" });
  }
  return route;
}

function uploadPhaseOf(method: string, uuid: string | undefined): UploadPhase {
  if (!uuid) return "start";
  switch (method) {
    case "PATCH":
      return "chunk";
    case "PUT":
      return "finish";
    case "DELETE":
      return "cancel";
    default:
      return "status";
  }
}

/** distribution's rule: read → pull; write → pull+push; DELETE → delete. */
export function repositoryAccesses(method: string, repository: string): Access[] {
  const access = (action: Action): Access => ({ type: "repository", name: repository, action });
  switch (method) {
    case "GET":
    case "HEAD":
      return [access("pull")];
    case "POST":
    case "PUT":
    case "PATCH":
      return [access("pull"), access("push")];
    case "DELETE":
      return [access("delete")];
    default:
      return [];
  }
}
