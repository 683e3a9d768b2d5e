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
//   ranges  (every site, unless its uploadRanges is pass) the session's record also holds where the upload
//           stands, from the backend's own Range answers (uploads/offsets.ts). A PATCH whose Content-Range does
//           not start there is answered 416 and a GET of the session 204, from the record (uploads/session.ts).
//           Here and not in a pipeline stage: the record is the session's, found where its replica is found,
//           and the answer comes before ask() invites the body. Off a replicated pool the record is a help,
//           not a gate: a session without one (never seen, or forgotten) is forwarded as ever.
import type { IncomingMessage, ServerResponse } from "node:http";
import type { ClientSide, ForwardOutcome } from "../proxy/exchange.js";
import type { Forwarder } from "../proxy/forward.js";
import type { EdgeContext } from "../proxy/headers.js";
import type { ResponseHead, RoundTripRequest, RoundTripResult } from "../proxy/round-trip.js";
import type { GatewayErrorKind } from "../registry/errors.js";
import type { RegistryRoute } from "../registry/routes.js";
import { offsetFromRange, type UploadProgress } from "../uploads/offsets.js";
import { answerStatus, refuseChunk, sessionHeaders } from "../uploads/session.js";
import { AffinityUnavailableError, type UploadAffinity, type UploadKey, type UploadRecord } from "./affinity.js";
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
  /** The site keeps upload offsets and checks chunks against them (its uploadRanges: check). */
  checkRanges?: boolean;
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

/** No outcome: dispatch answered from the session's record, no backend asked. Headers go with a refusal. */
export type Dispatched =
  | { ok: true; outcome?: ForwardOutcome }
  | { ok: false; kind: GatewayErrorKind; message: string; headers?: Record<string, string> };


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
  const session = route.kind === "upload" && route.uploadPhase !== "start";
  if (session && replicated) return toUploadHolder(pool, ctx);
  if (session && request.checkRanges) return toUploadSession(pool, ctx);
  const start = route.kind === "upload" && route.uploadPhase === "start";
  const remember = start && (replicated || request.checkRanges) ? uploadKeyOf(pool, request) : null;
  // Refused here, not with a 202 whose session the gateway could not keep (its first PATCH would then fail).
  if (remember && replicated && !(await deps.affinity.admits(remember).catch(() => false))) {
    return { ok: false, kind: "unavailable", message: "the gateway holds as many upload sessions as it may; try again later" };
  }
  const reply = await ask(pool, ctx);
  const hold = remember ? (head: ResponseHead) => rememberUpload(remember, reply.member, head, ctx) : undefined;
  return { ok: true, outcome: await respond(reply, ctx, hold) };
}

/** An upload session's requests go to the replica that holds its state, or nowhere. */
async function toUploadHolder(pool: BackendPool, ctx: Context): Promise<Dispatched> {
  const { request, deps } = ctx;
  const key = uploadKeyOf(pool, request, request.route.reference!);
  let record: UploadRecord | null;
  try {
    record = await deps.affinity.record(key);
  } catch (err) {
    if (!(err instanceof AffinityUnavailableError)) throw err;
    return { ok: false, kind: "unavailable", message: "where this upload is kept cannot be looked up right now; try again shortly" };
  }
  const member = record === null ? undefined : pool.member(record.member);
  if (!member) return { ok: false, kind: "uploadUnknown", message: "this upload is not known to the gateway: start it again" };
  const gone = { ok: false, kind: "uploadUnknown", message: "the registry replica holding this upload is down: start the upload again" } as const;
  if (!member.healthy) return gone;
  const answered = request.checkRanges ? answerFromRecord(record!, key, ctx) : null;
  if (answered) return answered;
  const reply = await ask(pool, ctx, member);
  if (!reply.result.ok && reply.result.kind === "unconnected") {
    passOver(reply);
    return gone;
  }
  const outcome = await respond(reply, ctx, (head) => afterSession(key, record, head, ctx, true));
  await unsureAfter(outcome, key, record, ctx);
  return { ok: true, outcome };
}

/**
 * An upload session on a single backend, whose site checks ranges: answered from its record when it has
 * one that says so, else sent on as ever (the backend has the session's state; the record only helps).
 */
async function toUploadSession(pool: BackendPool, ctx: Context): Promise<Dispatched> {
  const key = uploadKeyOf(pool, ctx.request, ctx.request.route.reference!);
  const record = await ctx.deps.affinity.record(key).catch(() => null);
  const answered = answerFromRecord(record ?? { member: pool.members[0]!.origin }, key, ctx);
  if (answered) return answered;
  const reply = await ask(pool, ctx);
  const outcome = await respond(reply, ctx, (head) => afterSession(key, record, head, ctx, false));
  await unsureAfter(outcome, key, record, ctx);
  return { ok: true, outcome };
}

/** A chunk refused (416, or 400 when malformed) or the session's status answered (204) from its record; null: ask the backend. */
function answerFromRecord(record: UploadRecord, key: UploadKey, ctx: Context): Dispatched | null {
  const { req, res, edge, method } = ctx.request;
  if (method === "PATCH") {
    const refusal = refuseChunk(req, record.progress, record.member, key.uuid, edge);
    return refusal && { ok: false, ...refusal };
  }
  if (method !== "GET" || record.progress?.offset == null) return null;
  answerStatus(res, sessionHeaders(record.progress, record.member, key.uuid, edge, req));
  return { ok: true };
}

/**
 * What the backend's answer to a session's request does to its record, before the client hears it (so the
 * client's next chunk is checked against it): a finished (PUT 201) or cancelled (DELETE 204) upload is
 * forgotten; a chunk taken (PATCH 202) moves the offset to the backend's Range. A 404 forgets nothing: the
 * backend may have lost the session, and the client then starts over; the record goes with its idle time.
 */
function afterSession(key: UploadKey, record: UploadRecord | null, head: ResponseHead, ctx: Context, replicated: boolean): Promise<void> | undefined {
  const { method, checkRanges } = ctx.request;
  const { affinity } = ctx.deps;
  if ((method === "PUT" && head.status === 201) || (method === "DELETE" && head.status === 204)) return affinity.forget(key).catch(() => {});
  if (method !== "PATCH" || head.status !== 202) return undefined;
  // A PATCH may stream for longer than the idle time: its end counts as a use too.
  if (replicated) void affinity.lookup(key).catch(() => {});
  if (!checkRanges || record === null) return undefined;
  return affinity.advance(key, progressOf(head, "chunk", record.progress?.location)).catch(() => {});
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

/**
 * A chunk the backend did not take with a 202 (it failed, was cut, or the client went away) may still have
 * left bytes with it: where the upload stands is unknown until the backend says again, so the next chunk
 * goes on unchecked and a status request is the backend's to answer, never a stale offset of the gateway's.
 */
async function unsureAfter(outcome: ForwardOutcome, key: UploadKey, record: UploadRecord | null, ctx: Context): Promise<void> {
  const progress = record?.progress;
  if (ctx.request.method !== "PATCH" || !ctx.request.checkRanges || progress?.offset == null || outcome.status === 202) return;
  await ctx.deps.affinity.advance(key, { offset: null, location: progress.location }).catch(() => {});
}

/**
 * A backend accepted an upload: its session must come back to its replica (and its chunks be checked
 * against where it stands), so that is stored before the client hears of it.
 */
async function rememberUpload(key: UploadKey, member: PoolMember, head: ResponseHead, ctx: Context): Promise<void> {
  if (head.status !== 202) return;
  const location = headerOf(head, "location");
  const uuid = location === undefined ? undefined : UPLOAD_LOCATION.exec(location)?.[1];
  if (!uuid) return;
  const progress = ctx.request.checkRanges ? progressOf(head, "start") : undefined;
  await ctx.deps.affinity.remember({ ...key, uuid }, member.origin, progress);
}

/** Where the upload stands by the backend's answer; its Location, or the one known before when it sent none. */
function progressOf(head: ResponseHead, phase: "start" | "chunk", previousLocation = ""): UploadProgress {
  return { offset: offsetFromRange(headerOf(head, "range"), phase), location: headerOf(head, "location") ?? previousLocation };
}

function headerOf(head: ResponseHead, name: string): string | undefined {
  const rawHeaders = head.rawHeaders;
  for (let i = 0; i < rawHeaders.length; i += 2) if (rawHeaders[i]!.toLowerCase() === name) return rawHeaders[i + 1];
  return undefined;
}
