// What a request means to a registry: method + canonical path → route kind, repository, reference, and the
// accesses distribution would demand for it (registry/handlers/app.go appendAccessRecords). What does not
// classify as a known registry operation is refused: a route we cannot name is a route we
// cannot authorize.
//
// Repository names contain "/" and may contain the words "manifests" or "blobs", so routes are matched on
// the whole path with the name first, exactly as distribution's gorilla/mux routes are (same shapes, same
// order of preference), never by splitting on the first keyword. The name grammar is distribution's
// without the optional `domain[:port]/` prefix its router also accepts: a subset, so every name the gateway
// accepts is read the same way by the backend.
import type { GatewayErrorKind } from "./errors.js";

/** "browser": the registry browser's pages (web/paths.ts), never produced by classify: they are no registry route. */
export type RouteKind = "base" | "catalog" | "tags" | "manifest" | "blob" | "upload" | "referrers" | "token" | "search" | "ping" | "browser" | "other";

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
  /** Source repositories of a cross-repository blob mount (`from`, in the query or a form body). */
  mountFrom?: string[];
  /** What the gateway requires of the client. */
  accesses: Access[];
  /**
   * What a token-checking backend requires, when it differs: distribution demands `delete` to cancel an
   * upload, the gateway lets the holder of push cancel its own.
   */
  backendAccesses?: Access[];
}

export type Classification =
  | { ok: true; route: RegistryRoute }
  | { ok: false; kind: Extract<GatewayErrorKind, "notFound" | "methodNotAllowed" | "nameInvalid">; message: string; allow?: string };

export const MAX_NAME_LENGTH = 255;
const COMPONENT = "[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*";
const NAME = `${COMPONENT}(?:/${COMPONENT})*`;
const NAME_PATTERN = new RegExp(`^${NAME}$`);
/** distribution's reference.TagRegexp. */
const TAG = "[\\w][\\w.-]{0,127}";
/** distribution's digest route pattern, narrowed to what a digest is: `algorithm:hex`, ≥ 32 hex digits. */
const DIGEST = "[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-fA-F0-9]{32,}";
/** distribution's upload id pattern. */
const UPLOAD_ID = "[a-zA-Z0-9\\-_.=]+";

type Shape = "tags" | "manifest" | "blob" | "uploadStart" | "upload" | "referrers";

/** In distribution's order; each captures the name, then the reference. */
const SHAPES: readonly { shape: Shape; pattern: RegExp; methods: readonly string[] }[] = [
  { shape: "manifest", pattern: new RegExp(`^/v2/(${NAME})/manifests/(${TAG}|${DIGEST})$`), methods: ["GET", "HEAD", "PUT", "DELETE"] },
  { shape: "tags", pattern: new RegExp(`^/v2/(${NAME})/tags/list$`), methods: ["GET"] },
  { shape: "blob", pattern: new RegExp(`^/v2/(${NAME})/blobs/(${DIGEST})$`), methods: ["GET", "HEAD", "DELETE"] },
  { shape: "uploadStart", pattern: new RegExp(`^/v2/(${NAME})/blobs/uploads/$`), methods: ["POST"] },
  { shape: "upload", pattern: new RegExp(`^/v2/(${NAME})/blobs/uploads/(${UPLOAD_ID})$`), methods: ["GET", "HEAD", "PATCH", "PUT", "DELETE"] },
  { shape: "referrers", pattern: new RegExp(`^/v2/(${NAME})/referrers/(${DIGEST})$`), methods: ["GET"] },
];

/** The same shapes with any name: tells "bad repository name" from "no such operation". */
const ANY_NAME_SHAPE = /^\/v2\/(.+)\/(?:manifests\/[^/]+|tags\/list|blobs\/[^/]+|blobs\/uploads\/[^/]*|referrers\/[^/]+)$/;

export function isValidRepositoryName(name: string): boolean {
  return name.length <= MAX_NAME_LENGTH && NAME_PATTERN.test(name);
}

/**
 * `path` must have passed checkTarget (target.ts). `mountFrom`: every `from` value of the request, from the
 * query and from an urlencoded body, only read for upload starts (where distribution mounts from it).
 */
export function classify(method: string, path: string, mountFrom: readonly string[] = []): Classification {
  if (path === "/v2/") return withMethods(method, ["GET", "HEAD"], { kind: "base", accesses: [] });
  if (path === "/v2/_catalog") {
    return withMethods(method, ["GET"], { kind: "catalog", accesses: [{ type: "registry", name: "catalog", action: "*" }] });
  }
  if (path === "/token") return withMethods(method, ["GET", "POST"], { kind: "token", accesses: [] });
  // docker search: the v1 ping it sends first, and the search itself (answered by the gateway, search.ts).
  if (path === "/v1/_ping") return withMethods(method, ["GET", "HEAD"], { kind: "ping", accesses: [] });
  if (path === "/v1/search") return withMethods(method, ["GET"], { kind: "search", accesses: [] });

  for (const { shape, pattern, methods } of SHAPES) {
    const match = pattern.exec(path);
    if (!match) continue;
    const repository = match[1]!;
    if (repository.length > MAX_NAME_LENGTH) return nameInvalid(`the repository name is longer than ${MAX_NAME_LENGTH} characters`);
    if (!methods.includes(method)) return notAllowed(methods);
    const badSource = shape === "uploadStart" ? mountFrom.find((from) => from !== "" && !isValidRepositoryName(from)) : undefined;
    if (badSource !== undefined) return nameInvalid("the mount source (from) is not a valid repository name");
    return { ok: true, route: routeFor(shape, method, repository, match[2], mountFrom) };
  }
  const loose = ANY_NAME_SHAPE.exec(path);
  if (loose && !isValidRepositoryName(loose[1]!)) {
    return nameInvalid("the repository name is not valid: lower-case components of [a-z0-9] joined by . _ __ - and /");
  }
  return { ok: false, kind: "notFound", message: loose ? "the tag, digest or upload id in the path is not valid" : "no registry operation has this path" };
}

function routeFor(shape: Shape, method: string, repository: string, reference: string | undefined, mountFrom: readonly string[]): RegistryRoute {
  const accesses = repositoryAccesses(method, repository);
  switch (shape) {
    case "tags":
    case "manifest":
    case "blob":
    case "referrers":
      return { kind: shape, repository, reference, accesses };
    case "uploadStart": {
      const route: RegistryRoute = { kind: "upload", repository, uploadPhase: "start", accesses };
      const sources = [...new Set(mountFrom.filter((from) => from !== ""))];
      if (sources.length > 0) {
        route.mountFrom = sources;
        for (const from of sources) route.accesses.push({ type: "repository", name: from, action: "pull" });
      }
      return route;
    }
    case "upload": {
      const uploadPhase = uploadPhaseOf(method);
      if (uploadPhase !== "cancel") return { kind: "upload", repository, reference, uploadPhase, accesses };
      return {
        kind: "upload",
        repository,
        reference,
        uploadPhase,
        accesses: [{ type: "repository", name: repository, action: "push" }],
        backendAccesses: accesses,
      };
    }
  }
}

function uploadPhaseOf(method: string): UploadPhase {
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

function withMethods(method: string, methods: readonly string[], route: RegistryRoute): Classification {
  return methods.includes(method) ? { ok: true, route } : notAllowed(methods);
}

function notAllowed(methods: readonly string[]): Classification {
  return { ok: false, kind: "methodNotAllowed", message: `this registry operation takes ${methods.join(", ")}`, allow: methods.join(", ") };
}

function nameInvalid(message: string): Classification {
  return { ok: false, kind: "nameInvalid", message };
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
