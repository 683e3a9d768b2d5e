// Where an upload stands, and whether a chunk may be sent. An older backend (distribution 2.8) ignores a
// PATCH's Content-Range and appends whatever it is sent: an out-of-order or repeated chunk silently corrupts
// the upload. The OCI distribution spec v1.1 says such a chunk is answered 416 with the upload's current
// Range, so the gateway keeps the offset with the upload's session record and refuses the chunk itself.
//
// The offset is only ever taken from the backend's own answer (its `Range: 0-<last byte>` on a 202), never
// from what a client claims. distribution answers `0-0` both for an empty upload and for one holding one
// byte; the gateway then knows the offset only after an upload start (nothing sent yet), and otherwise
// keeps it unknown: a chunk is then passed on unchecked, as without the gateway.

/** What the gateway knows of an upload session, kept with its record (backends/affinity.ts). */
export interface UploadProgress {
  /** Bytes the backend holds; null when its answer did not say unambiguously. */
  offset: number | null;
  /** The session URL the backend gave last (its `_state` changes with every chunk), as the backend sent it. */
  location: string;
}

/** A chunk's byte range as the client sent it: first and last byte, inclusive. */
export interface ChunkRange {
  start: number;
  end: number;
}

export type ContentRange = { ok: true; range: ChunkRange | null } | { ok: false; message: string };

/** The spec's form, `<start>-<end>` (no unit): what docker, containerd and the OCI conformance tests send. */
const CHUNK_RANGE = /^\s*(\d{1,15})-(\d{1,15})\s*$/;
/** The backend's Range on an upload's 202 or 204. */
const UPLOAD_RANGE = /^\s*0-(\d{1,15})\s*$/;

/** The chunk's Content-Range: null when there is none (a streamed PATCH, allowed as ever). */
export function parseContentRange(header: string | string[] | undefined): ContentRange {
  if (header === undefined) return { ok: true, range: null };
  if (Array.isArray(header)) return { ok: false, message: "more than one Content-Range header" };
  const match = CHUNK_RANGE.exec(header);
  if (!match) return { ok: false, message: "Content-Range must be <start>-<end>, the chunk's first and last byte" };
  return { ok: true, range: { start: Number(match[1]), end: Number(match[2]) } };
}

export type ChunkVerdict =
  | { ok: true }
  | { ok: false; kind: "uploadInvalid" | "sizeInvalid" | "rangeNotSatisfiable"; message: string };

/**
 * Whether a PATCH may go to the backend, given where the upload stands. Only a chunk that says where it
 * starts is checked; an upload whose offset is unknown passes as it would without the gateway.
 */
export function checkChunk(offset: number | null, contentRange: string | string[] | undefined, contentLength: string | undefined): ChunkVerdict {
  const parsed = parseContentRange(contentRange);
  if (!parsed.ok) return { ok: false, kind: "uploadInvalid", message: parsed.message };
  const range = parsed.range;
  if (range === null) return { ok: true };
  if (range.end < range.start) return { ok: false, kind: "rangeNotSatisfiable", message: `Content-Range ${range.start}-${range.end} ends before it starts` };
  const length = range.end - range.start + 1;
  if (contentLength !== undefined && Number(contentLength) !== length) {
    return { ok: false, kind: "sizeInvalid", message: `Content-Range ${range.start}-${range.end} is ${length} bytes, Content-Length says ${contentLength}` };
  }
  if (offset !== null && range.start !== offset) {
    return { ok: false, kind: "rangeNotSatisfiable", message: `the chunk starts at ${range.start}, the upload holds ${offset} bytes: send the chunk starting at ${offset}` };
  }
  return { ok: true };
}

/**
 * The offset the backend's Range says, after a request of `phase`: `0-N` holds N+1 bytes, except `0-0`,
 * which is 0 bytes after an upload start and ambiguous (0 or 1) after anything else.
 */
export function offsetFromRange(range: string | undefined, phase: "start" | "chunk" | "status"): number | null {
  const match = range === undefined ? null : UPLOAD_RANGE.exec(range);
  if (!match) return null;
  const last = Number(match[1]);
  if (last > 0) return last + 1;
  return phase === "start" ? 0 : null;
}

/** The Range header for an upload holding `offset` bytes: `0-<last byte>`, and `0-0` when empty, as distribution answers. */
export function rangeHeader(offset: number): string {
  return `0-${Math.max(offset - 1, 0)}`;
}
