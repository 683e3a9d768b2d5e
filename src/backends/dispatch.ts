// Stage 6 for a site's upstream: which backend a request goes to, and what happens when that
// backend is down or does not have the image.
//
//   group   only members serving the repository name are asked (namespaces.ts). Pushes (uploads, manifest
//           PUT, DELETE) → pushTo (the authorize stage refused those it cannot take: push-rules.ts); a blob HEAD (a
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
import type { ClientSide, ForwardOutcome } from "../proxy/exchange.js";
import type { Forwarder } from "../proxy/forward.js";
import type { EdgeContext } from "../proxy/headers.js";
import type { ResponseHead, RoundTripRequest, RoundTripResult } from "../proxy/round-trip.js";
import type { GatewayErrorKind } from "../registry/errors.js";
import type { RegistryRoute } from "../registry/routes.js";
import { AffinityUnavailableError, type UploadAffinity, type UploadKey } from "./affinity.js";
import type { BackendPool, PoolMember } from "./pool.js";
import { addressOwner } from "./address-owner.js";
import { membersFor } from "./namespaces.js";
import { isPush } from "./push-rules.js";
import { isReplicated, type GroupMember, type GroupUpstream, type Upstream } from "./upstream.js";

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
  /**
   * Sees the head of the answer the client gets, before it is relayed: what the gateway does once a backend
   * accepted a write (the referrers index of a manifest PUT) is done before the client hears of it.
   */
  beforeAnswer?: (head: ResponseHead) => Promise<void>;
}

/** The counters dispatch keeps (observe/metrics.ts). */
export interface DispatchMetrics {
  groupPassedOver(site: string, member: string, reason: "not_found" | "error"): void;
}

export interface DispatchDeps {
  forwarder: Pick<Forwarder, "roundTrip" | "relay" | "answer">;
  affinity: UploadAffinity;
  metrics: DispatchMetrics;
}

export type Dispatched = { ok: true; outcome: ForwardOutcome } | { ok: false; kind: GatewayErrorKind; message: string };


/** One request's dispatch: what it is, where it goes out as, and whom the client's answer goes to. */
interface Context {
  request: DispatchRequest;
  deps: DispatchDeps;
  outgoing: RoundTripRequest;
  client: ClientSide;
}

/** A pool's reply: the answer's head or a failure, from `member`, whose place in the pool it holds until released. */
interface Reply {
  result: RoundTripResult;
  member: PoolMember;
  release: () => void;
}

/**
 * Requests a group answers from the first member that has the content (or, for /v2/, that answers at
 * all: every client asks it first, and one member down must not stop pulls from the others).
 */
const MEMBER_BY_MEMBER = new Set(["base", "manifest", "blob", "referrers"]);

const UPLOAD_LOCATION = /\/blobs\/uploads\/([a-zA-Z0-9\-_.=]+)(?:\?|$)/;

export async function dispatch(upstream: Upstream, request: DispatchRequest, deps: DispatchDeps): Promise<Dispatched> {
  const { req, res, edge, route, method } = request;
  const outgoing: RoundTripRequest = {
    req,
    res,
    edge,
    clientHeaders: req.headers,
    body: request.body,
    pull: (route.kind === "blob" || route.kind === "manifest") && method === "GET" && !request.hasBody,
  };
  const ctx: Context = { request, deps, outgoing, client: { req, res, edge } };
  return upstream.kind === "pool" ? toPool(upstream.pool, ctx) : toGroup(upstream, ctx);
}

async function toGroup(upstream: GroupUpstream, ctx: Context): Promise<Dispatched> {
  const { route, method } = ctx.request;
  const { pushTo } = upstream;
  // The pipeline's authorize stage (push-rules.ts) refused a push the group cannot take; one that arrives
  // here anyway is refused, never sent to a member that would store it where pulls do not look.
  if (isPush(route, method)) {
    if (!pushTo) return { ok: false, kind: "internal", message: "a push reached a group without pushTo" };
    return toPool(pushTo.pool, ctx);
  }
  // Only members serving the name are asked; /v2/ (no name) asks them all.
  const choice = route.repository === undefined ? { members: upstream.members, owned: false } : membersFor(upstream, route.repository);
  const pushToServes = pushTo !== null && choice.members.includes(pushTo);
  if (choice.members.length === 0) return { ok: false, kind: "notFound", message: "repository name not known to registry" };
  // A blob HEAD is how docker, podman and skopeo ask "may I skip uploading this layer?" before a push: only
  // pushTo's answer is true for the manifest PUT that follows (pulls GET blobs without asking first).
  if (pushToServes && route.kind === "blob" && method === "HEAD" && !choice.owned) return toPool(pushTo.pool, ctx);
  const memberByMember = MEMBER_BY_MEMBER.has(route.kind) && (method === "GET" || method === "HEAD");
  if (memberByMember && choice.owned) return toOwner(pushTo!, ctx);
  if (memberByMember) return memberByMemberTo(choice.members, ctx);
  return toPool((pushToServes ? pushTo! : choice.members[0]!).pool, ctx);
}

/** Each member in order; a 404 or 5xx (or no connection) passes on to the next, the last one's answer is the client's. */
async function memberByMemberTo(members: readonly GroupMember[], ctx: Context): Promise<Dispatched> {
  const last = members.length - 1;
  for (const [index, member] of members.entries()) {
    if (index === last) break;
    const reply = await ask(member.pool, ctx);
    const result = reply.result;
    const passed = result.ok ? (result.status === 404 || result.status >= 500 ? result.status : null) : unanswered(result, ctx) ? 0 : null;
    if (passed === null) return { ok: true, outcome: await respond(reply, ctx) };
    passOver(reply);
    ctx.deps.metrics.groupPassedOver(ctx.request.site, member.name, passed === 404 ? "not_found" : "error");
  }
  return toPool(members[last]!.pool, ctx);
}

/**
 * A pull of a name pushTo owns: its 404 is the answer, and when it fails or is down no other member may
 * stand in (their content under that name is not ours), so the client hears the registry is unavailable.
 */
async function toOwner(pushTo: GroupMember, ctx: Context): Promise<Dispatched> {
  const reply = await ask(pushTo.pool, ctx);
  const result = reply.result;
  const failed = result.ok ? result.status >= 500 : unanswered(result, ctx);
  if (!failed) return { ok: true, outcome: await respond(reply, ctx) };
  passOver(reply);
  return { ok: false, kind: "unavailable", message: "the registry holding this repository is unavailable; no other registry of this group may serve it" };
}

async function toPool(pool: BackendPool, ctx: Context): Promise<Dispatched> {
  const { request, deps } = ctx;
  const { route } = request;
  const replicated = isReplicated(pool);
  if (replicated && route.kind === "upload" && route.uploadPhase !== "start") return toUploadHolder(pool, ctx);
  const remember = replicated && route.kind === "upload" && route.uploadPhase === "start" ? uploadKeyOf(pool, request) : null;
  // Refused here, not with a 202 whose session the gateway could not keep (its first PATCH would then fail).
  if (remember && !(await deps.affinity.admits(remember).catch(() => false))) {
    return { ok: false, kind: "unavailable", message: "the gateway holds as many upload sessions as it may; try again later" };
  }
  const reply = await ask(pool, ctx);
  const hold = remember ? (head: ResponseHead) => rememberUpload(remember, reply.member, head, deps) : undefined;
  return { ok: true, outcome: await respond(reply, ctx, hold) };
}

/** An upload session's requests go to the replica that holds its state, or nowhere. */
async function toUploadHolder(pool: BackendPool, ctx: Context): Promise<Dispatched> {
  const { request, deps } = ctx;
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
  const reply = await ask(pool, ctx, member);
  if (!reply.result.ok && reply.result.kind === "unconnected") {
    passOver(reply);
    return gone;
  }
  // Only the starter's own request gets here, so its success ends the session. A 404 does not: the replica
  // may have lost it, and the client then starts over; the entry goes with its idle time.
  const ends = (status: number) => (request.method === "PUT" && status === 201) || (request.method === "DELETE" && status === 204);
  // A PATCH may stream for longer than the idle time: its end counts as a use too.
  const used = (status: number) => request.method === "PATCH" && status === 202;
  const outcome = await respond(reply, ctx, ({ status }) => {
    if (ends(status)) return deps.affinity.forget(key).catch(() => {});
    if (used(status)) void deps.affinity.lookup(key).catch(() => {});
    return undefined;
  });
  return { ok: true, outcome };
}

/**
 * Sends the request to a member of `pool` (`only`, or the least busy healthy one). One that can be sent
 * again (no body, or one read already) is sent once more to another replica when the first never answered.
 */
async function ask(pool: BackendPool, ctx: Context, only?: PoolMember): Promise<Reply> {
  const { request, deps } = ctx;
  const replicated = isReplicated(pool);
  // A streamed body is gone once sent: only a request without one (or with one in memory) is sent again.
  const resendable = !request.hasBody || request.body !== undefined;
  const tried = new Set<string>();
  for (;;) {
    const member = only ?? pool.pick(tried)!;
    tried.add(member.origin);
    const release = pool.acquire(member);
    let result: RoundTripResult;
    try {
      request.invite?.();
      result = await deps.forwarder.roundTrip(ctx.outgoing, member.url);
    } catch (err) {
      release();
      throw err;
    }
    if (!result.ok && result.kind === "unconnected" && replicated) pool.reportConnectionFailure(member, "connection refused");
    const mayRetry = only === undefined && resendable && replicated && tried.size < 2 && tried.size < pool.members.length;
    if (!(mayRetry && unanswered(result, ctx))) return { result, member, release };
    passOver({ result, member, release });
  }
}

/**
 * The backend never saw the request, or (for a GET or HEAD, safe to send twice) lost it before answering:
 * nothing was answered, and another backend may be asked.
 */
function unanswered(result: RoundTripResult, ctx: Context): boolean {
  if (result.ok) return false;
  const method = ctx.request.method;
  return result.kind === "unconnected" || (result.kind === "reset" && (method === "GET" || method === "HEAD"));
}

/** The client hears nothing of this reply: its answer is drained (so its connection is reused), its failure dropped. */
function passOver(reply: Reply): void {
  if (reply.result.ok) reply.result.body.discard();
  reply.release();
}

/**
 * The client's answer: the backend's relayed, once `hold` (which sees the head first) is done, or its
 * failure answered. The member counts as busy until the exchange is over.
 */
async function respond(reply: Reply, ctx: Context, hold?: (head: ResponseHead) => Promise<void> | undefined): Promise<ForwardOutcome> {
  const { result } = reply;
  try {
    if (!result.ok) return ctx.deps.forwarder.answer(result, ctx.client);
    // Nothing is read from the backend meanwhile: its answer waits in the socket (backpressure).
    await hold?.(result)?.catch(() => {});
    await ctx.request.beforeAnswer?.(result).catch(() => {});
    return await ctx.deps.forwarder.relay(result, ctx.client);
  } finally {
    reply.release();
  }
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

/** A replica accepted an upload: its session must come back to it, so that is stored before the client hears of it. */
async function rememberUpload(key: UploadKey, member: PoolMember, head: ResponseHead, deps: DispatchDeps): Promise<void> {
  if (head.status !== 202) return;
  const rawHeaders = head.rawHeaders;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    if (rawHeaders[i]!.toLowerCase() !== "location") continue;
    const uuid = UPLOAD_LOCATION.exec(rawHeaders[i + 1]!)?.[1];
    if (uuid) await deps.affinity.remember({ ...key, uuid }, member.origin);
    return;
  }
}
