// What the gateway answers for an upload session from its record, without asking the backend: a chunk that
// does not start where the upload stands (416, before anything is sent, and before a client waiting on
// Expect: 100-continue is invited to send it), and the session's status (GET → 204). Dispatch decides when
// (backends/dispatch.ts owns upload sessions); this module says what.
import type { IncomingMessage, ServerResponse } from "node:http";
import { rewriteLocation, type EdgeContext } from "../proxy/headers.js";
import { API_VERSION, API_VERSION_HEADER, type GatewayErrorKind } from "../registry/errors.js";
import { checkChunk, rangeHeader, type UploadProgress } from "./offsets.js";

export interface SessionRefusal {
  kind: GatewayErrorKind;
  message: string;
  headers: Record<string, string>;
}

/** The session as the client knows it: the backend's latest Location (pointed at the gateway), Range, UUID. */
export function sessionHeaders(progress: UploadProgress | undefined, member: string, uuid: string, edge: EdgeContext, req: IncomingMessage): Record<string, string> {
  const location = progress ? rewriteLocation(progress.location, new URL(member), edge) : `${edge.externalOrigin}${req.url ?? ""}`;
  const headers: Record<string, string> = { Location: location, "Docker-Upload-UUID": uuid };
  if (progress?.offset != null) headers.Range = rangeHeader(progress.offset);
  return headers;
}

/** A PATCH the backend must not get (malformed, or not starting at the upload's offset); null: send it on. */
export function refuseChunk(req: IncomingMessage, progress: UploadProgress | undefined, member: string, uuid: string, edge: EdgeContext): SessionRefusal | null {
  const verdict = checkChunk(progress?.offset ?? null, req.headers["content-range"], req.headers["content-length"]);
  if (verdict.ok) return null;
  return { kind: verdict.kind, message: verdict.message, headers: sessionHeaders(progress, member, uuid, edge, req) };
}

/** GET on the session: 204 with where the upload stands, as distribution answers one it holds. */
export function answerStatus(res: ServerResponse, headers: Record<string, string>): void {
  res.writeHead(204, { ...headers, "Content-Length": "0", [API_VERSION_HEADER]: API_VERSION });
  res.end();
}
