// Stage 6 for a site's upstream: which backend a request goes to, and what happens when that
// backend is down or does not have the image.
//
//   group   only members serving the repository name are asked (namespaces.ts). Pushes (uploads, manifest
//           PUT, DELETE) → pushTo, or 405 without one, 403 for a name pushTo does not serve; a blob HEAD (a
//           pusher asking whether to upload) → pushTo; /v2/ and manifest/blob/referrers GET/HEAD → each
//           member in order, a 404 or 5xx (or no connection) passing on to the next, except for a name
//           pushTo owns: pushTo alone, its 404 relayed, its 5xx or silence 503; anything else → pushTo,
//           else the first member.
//   pool    least outstanding healthy replica; a request that can be sent again (no body, or one read
//           already) is retried once on another replica when the connection is refused. An upload session
//           (PATCH/PUT/GET/DELETE of uploads/<uuid>) goes to the replica that started it, found in the
//           upload affinity store, or is answered BLOB_UPLOAD_UNKNOWN: never restarted elsewhere, where
//           distribution has no state for it. A session is its starter's alone (uploadOwner): anyone else's
//           request for it, or one under another repository, is answered BLOB_UPLOAD_UNKNOWN here, never
//           forwarded, and leaves the session as it was. An upload start the store has no room for (affinity.ts
//           admits) is refused with 503 before it reaches a replica.
import type { IncomingMessage, ServerResponse } from "node:http";
import { metrics } from "../observe/metrics.js";
import type { ForwardOptions, ForwardOutcome, Forwarder } from "../proxy/forward.js";
import type { EdgeContext } from "../proxy/headers.js";
import type { GatewayErrorKind } from "../registry/errors.js";
import type { RegistryRoute } from "../registry/routes.js";
import { AffinityUnavailableError, type UploadAffinity, type UploadKey } from "./affinity.js";
import type { BackendPool, PoolMember } from "./pool.js";
import { addressOwner } from "./address-owner.js";
import { membersFor } from "./namespaces.js";
import { isReplicated, type GroupMember, type Upstream } from "./upstream.js";

export interface DispatchRequest {
  req: IncomingMessage;
  res: ServerResponse;
  method: string;
  route: RegistryRoute;
  edge: EdgeContext;
  /** The request body, when the pipeline read it (a mount form). */
  body?: Buffer;
  /** The client announced a body (it is streamed through, so it can be sent once only). */
  hasBody: boolean;
  site: string;
  /** The authenticated principal's name; none: anonymous (the client address stands for it). */
  user?: string;
  /**
   * Tells a client waiting on `Expect: 100-continue` to send its body. Called only just before the request
   * goes to a backend: every refusal here (a session not the client's, a push pushTo does not take, the
   * store unreachable) comes first and is answered without inviting a body the client then streams for nothing.
   */
  invite?: () => void;
}

export interface DispatchDeps {
  forwarder: Forwarder;
  affinity: UploadAffinity;
}

export type Dispatched = { ok: true; outcome: ForwardOutcome } | { ok: false; kind: GatewayErrorKind; message: string };

/**
 * Requests a group answers from the first member that has the content (or, for /v2/, that answers at
 * all: every client asks it first, and one member down must not stop pulls from the others).
 */
const MEMBER_BY_MEMBER = new Set(["base", "manifest", "blob", "referrers"]);

const UPLOAD_LOCATION = /\/blobs\/uploads\/([a-zA-Z0-9\-_.=]+)(?:\?|$)/;

export async function dispatch(upstream: Upstream, request: DispatchRequest, deps: DispatchDeps): Promise<Dispatched> {
  if (upstream.kind === "pool") return toPool(upstream.pool, request, deps, {});
  const { route, method } = request;
  const { pushTo } = upstream;
  // Only members serving the name are asked; /v2/ (no name) asks them all.
  const choice = route.repository === undefined ? { members: upstream.members, owned: false } : membersFor(upstream, route.repository);
  const pushToServes = pushTo !== null && choice.members.includes(pushTo);
  if (isPush(route, method)) {
    if (!pushTo) return { ok: false, kind: "methodNotAllowed", message: "this registry is a group without pushTo: it serves pulls only" };
    if (!pushToServes) return { ok: false, kind: "denied", message: `${route.repository} is not among the repositories this registry accepts pushes for` };
    // pushTo's registry mounts from ITS repository of that name: only one the group serves from pushTo.
    const stray = route.mountFrom?.find((from) => !membersFor(upstream, from).members.includes(pushTo));
    if (stray !== undefined) return { ok: false, kind: "denied", message: `cannot mount from ${stray}: it is not served by the registry pushes go to; upload the blob instead` };
    return toPool(pushTo.pool, request, deps, {});
  }
  if (choice.members.length === 0) return { ok: false, kind: "notFound", message: "repository name not known to registry" };
  // A blob HEAD is how docker, podman and skopeo ask "may I skip uploading this layer?" before a push: only
  // pushTo's answer is true for the manifest PUT that follows (pulls GET blobs without asking first).
  if (pushToServes && route.kind === "blob" && method === "HEAD" && !choice.owned) return toPool(pushTo.pool, request, deps, {});
  const memberByMember = MEMBER_BY_MEMBER.has(route.kind) && (method === "GET" || method === "HEAD");
  if (memberByMember && choice.owned) return toOwner(pushTo!, request, deps);
  if (memberByMember) {
    const last = choice.members.length - 1;
    for (const [index, member] of choice.members.entries()) {
      if (index === last) return toPool(member.pool, request, deps, {});
      const passOver = (status: number) => status === 404 || status >= 500;
      const result = await toPool(member.pool, request, deps, { passOver, lastResort: false });
      if (!result.ok) return result;
      const { outcome } = result;
      if (outcome.passedOver === undefined && !outcome.notConnected) return result;
      if (outcome.clientAborted) return result;
      metrics.groupPassedOver(request.site, member.name, outcome.passedOver === 404 ? "not_found" : "error");
    }
  }
  return toPool((pushToServes ? pushTo! : choice.members[0]!).pool, request, deps, {});
}

/**
 * A pull of a name pushTo owns: its 404 is the answer, and when it fails or is down no other member may
 * stand in (their content under that name is not ours), so the client hears the registry is unavailable.
 */
async function toOwner(pushTo: GroupMember, request: DispatchRequest, deps: DispatchDeps): Promise<Dispatched> {
  const result = await toPool(pushTo.pool, request, deps, { passOver: (status) => status >= 500, lastResort: false });
  if (!result.ok || result.outcome.clientAborted) return result;
  if (result.outcome.passedOver === undefined && !result.outcome.notConnected) return result;
  return { ok: false, kind: "unavailable", message: "the registry holding this repository is unavailable; no other registry of this group may serve it" };
}

function isPush(route: RegistryRoute, method: string): boolean {
  if (route.kind === "upload") return true;
  if (route.kind === "manifest") return method === "PUT" || method === "DELETE";
  return route.kind === "blob" && method === "DELETE";
}

interface PoolOptions {
  passOver?: ForwardOptions["passOver"];
  /** false: a refused connection is returned (outcome.notConnected) for the caller to go on elsewhere. */
  lastResort?: boolean;
}

async function toPool(pool: BackendPool, request: DispatchRequest, deps: DispatchDeps, options: PoolOptions): Promise<Dispatched> {
  const { route } = request;
  const replicated = isReplicated(pool);
  if (replicated && route.kind === "upload" && route.uploadPhase !== "start") return toUploadHolder(pool, request, deps);
  // A streamed body is gone once sent: only a request without one (or with one in memory) is sent again.
  const resendable = !request.hasBody || request.body !== undefined;
  const remember = replicated && route.kind === "upload" && route.uploadPhase === "start" ? uploadKeyOf(pool, request) : null;
  // Refused here, not with a 202 whose session the gateway could not keep (its first PATCH would then fail).
  if (remember && !(await deps.affinity.admits(remember).catch(() => false))) {
    return { ok: false, kind: "unavailable", message: "the gateway holds as many upload sessions as it may; try again later" };
  }
  const tried = new Set<string>();
  for (;;) {
    const member = pool.pick(tried)!;
    tried.add(member.origin);
    const mayRetry = resendable && replicated && tried.size < 2 && tried.size < pool.members.length;
    const outcome = await forwardTo(pool, member, request, deps, {
      body: request.body,
      passOver: options.passOver,
      returnUnconnected: mayRetry || options.lastResort === false,
      resetIsUnconnected: request.method === "GET" || request.method === "HEAD",
      relayGet: (route.kind === "blob" || route.kind === "manifest") && request.method === "GET" && !request.hasBody,
      beforeRelay: remember ? (status, headers) => rememberUpload(remember, member, status, headers, deps) : undefined,
    });
    if (outcome.notConnected && mayRetry) continue;
    return { ok: true, outcome };
  }
}

/** An upload session's requests go to the replica that holds its state, or nowhere. */
async function toUploadHolder(pool: BackendPool, request: DispatchRequest, deps: DispatchDeps): Promise<Dispatched> {
  const key = uploadKeyOf(pool, request, request.route.reference!);
  let holder: string | null;
  try {
    holder = await deps.affinity.lookup(key);
  } catch (err) {
    if (!(err instanceof AffinityUnavailableError)) throw err;
    return { ok: false, kind: "unavailable", message: "where this upload is kept cannot be looked up right now; try again shortly" };
  }
  const member = holder === null ? undefined : pool.member(holder);
  if (!member) return { ok: false, kind: "uploadUnknown", message: "this upload is not known to the gateway: start it again" };
  const gone = { ok: false, kind: "uploadUnknown", message: "the registry replica holding this upload is down: start the upload again" } as const;
  if (!member.healthy) return gone;
  // Only the starter's own request gets here, so its success ends the session. A 404 does not: the replica
  // may have lost it, and the client then starts over; the entry goes with its idle time.
  const ends = (status: number) => (request.method === "PUT" && status === 201) || (request.method === "DELETE" && status === 204);
  // A PATCH may stream for longer than the idle time: its end counts as a use too.
  const used = (status: number) => request.method === "PATCH" && status === 202;
  const outcome = await forwardTo(pool, member, request, deps, {
    returnUnconnected: true,
    beforeRelay: (status) => {
      if (ends(status)) return deps.affinity.forget(key).catch(() => {});
      if (used(status)) void deps.affinity.lookup(key).catch(() => {});
      return undefined;
    },
  });
  return outcome.notConnected ? gone : { ok: true, outcome };
}

/**
 * Who may use an upload session: the principal that started it, or for anonymous clients their address
 * (an IPv6 address's /64: one client is given all of it), within the site (a name means someone else on
 * another site's user list).
 */
export function uploadOwner(site: string, user: string | undefined, clientIp: string): string {
  return JSON.stringify(user === undefined ? [site, "address", addressOwner(clientIp)] : [site, "user", user]);
}

function uploadKeyOf(pool: BackendPool, request: DispatchRequest, uuid = ""): UploadKey {
  const owner = uploadOwner(request.site, request.user, request.edge.clientIp);
  return { pool: pool.name, repository: request.route.repository!, uuid, owner, ...(request.user === undefined ? { anonymous: true } : {}) };
}

async function forwardTo(pool: BackendPool, member: PoolMember, request: DispatchRequest, deps: DispatchDeps, options: ForwardOptions): Promise<ForwardOutcome> {
  const release = pool.acquire(member);
  try {
    request.invite?.();
    const outcome = await deps.forwarder.forward(request.req, request.res, member.url, request.edge, options);
    if (outcome.upstreamFailure === "refused" && isReplicated(pool)) pool.reportConnectionFailure(member, "connection refused");
    return outcome;
  } finally {
    release();
  }
}

/** A replica accepted an upload: its session must come back to it, so that is stored before the client hears of it. */
async function rememberUpload(key: UploadKey, member: PoolMember, status: number, rawHeaders: readonly string[], deps: DispatchDeps): Promise<void> {
  if (status !== 202) return;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (rawHeaders[i]!.toLowerCase() !== "location") continue;
    const uuid = UPLOAD_LOCATION.exec(rawHeaders[i + 1]!)?.[1];
    if (uuid) await deps.affinity.remember({ ...key, uuid }, member.origin);
    return;
  }
}
