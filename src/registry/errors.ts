// Registry-format errors: the one table of codes the gateway uses and the one function that writes them.
// Clients (docker, podman, skopeo) parse this JSON; an HTML or plain-text error makes `docker push` fail
// with "invalid character '<'", so nothing else may ever be sent.
import type { ServerResponse } from "node:http";

export const API_VERSION_HEADER = "Docker-Distribution-Api-Version";
export const API_VERSION = "registry/2.0";

/** Why the gateway refused or failed a request, mapped to a status and a distribution error code. */
export const GATEWAY_ERRORS = {
  unauthorized: { status: 401, code: "UNAUTHORIZED" },
  denied: { status: 403, code: "DENIED" },
  nameInvalid: { status: 400, code: "NAME_INVALID" },
  badRequest: { status: 400, code: "UNSUPPORTED" },
  methodNotAllowed: { status: 405, code: "UNSUPPORTED" },
  unknownHost: { status: 421, code: "UNSUPPORTED" },
  misdirected: { status: 421, code: "DENIED" },
  clientTimeout: { status: 408, code: "UNSUPPORTED" },
  notFound: { status: 404, code: "NAME_UNKNOWN" },
  uploadUnknown: { status: 404, code: "BLOB_UPLOAD_UNKNOWN" },
  uploadInvalid: { status: 400, code: "BLOB_UPLOAD_INVALID" },
  sizeInvalid: { status: 400, code: "SIZE_INVALID" },
  rangeNotSatisfiable: { status: 416, code: "BLOB_UPLOAD_INVALID" },
  paginationInvalid: { status: 400, code: "PAGINATION_NUMBER_INVALID" },
  manifestInvalid: { status: 400, code: "MANIFEST_INVALID" },
  manifestTooLarge: { status: 413, code: "MANIFEST_INVALID" },
  digestInvalid: { status: 400, code: "DIGEST_INVALID" },
  tooManyRequests: { status: 429, code: "TOOMANYREQUESTS" },
  headersTooLarge: { status: 431, code: "UNSUPPORTED" },
  backendUnavailable: { status: 502, code: "UNAVAILABLE" },
  backendTimeout: { status: 504, code: "UNAVAILABLE" },
  unavailable: { status: 503, code: "UNAVAILABLE" },
  internal: { status: 500, code: "UNKNOWN" },
  /** A backend's list is longer than the gateway reads to page it: not transient, not the client's mistake. */
  listTooLarge: { status: 500, code: "UNKNOWN" },
} as const satisfies Record<string, { status: number; code: string }>;

export type GatewayErrorKind = keyof typeof GATEWAY_ERRORS;

export function errorBody(kind: GatewayErrorKind, message: string, detail?: unknown): string {
  const { code } = GATEWAY_ERRORS[kind];
  return JSON.stringify({ errors: [detail === undefined ? { code, message } : { code, message, detail }] });
}

/**
 * Answers with a registry error unless the response has already started; then the only honest signal
 * left is to cut the connection, which the caller does by destroying the socket.
 */
export function sendError(
  res: ServerResponse,
  kind: GatewayErrorKind,
  message: string,
  extraHeaders: Record<string, string> = {},
): boolean {
  if (res.headersSent) return false;
  const body = errorBody(kind, message);
  res.writeHead(GATEWAY_ERRORS[kind].status, {
    ...extraHeaders,
    "Content-Type": "application/json; charset=utf-8",
    "Content-Length": Buffer.byteLength(body),
    [API_VERSION_HEADER]: API_VERSION,
  });
  res.end(res.req?.method === "HEAD" ? undefined : body);
  return true;
}

/** A JSON answer the gateway makes itself (docker search, the v1 ping, admin health), with the API version header. */
export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    ...headers,
    "Content-Type": "application/json; charset=utf-8",
    "Content-Length": Buffer.byteLength(text),
    [API_VERSION_HEADER]: API_VERSION,
  });
  res.end(res.req?.method === "HEAD" ? undefined : text);
}

/**
 * A whole HTTP/1.1 error response as bytes, for the places where Node has no ServerResponse yet
 * (malformed requests reported through the server's `clientError` event).
 */
export function rawErrorResponse(kind: GatewayErrorKind, message: string): string {
  const { status } = GATEWAY_ERRORS[kind];
  const body = errorBody(kind, message);
  return (
    `HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? "Error"}\r\n` +
    "Content-Type: application/json; charset=utf-8\r\n" +
    `Content-Length: ${Buffer.byteLength(body)}\r\n` +
    `${API_VERSION_HEADER}: ${API_VERSION}\r\n` +
    "Connection: close\r\n\r\n" +
    body
  );
}

const STATUS_TEXT: Record<number, string> = {
  400: "Bad Request",
  429: "Too Many Requests",
  503: "Service Unavailable",
  408: "Request Timeout",
  421: "Misdirected Request",
  431: "Request Header Fields Too Large",
};
