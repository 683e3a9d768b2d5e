// The id that ties a client's request to the gateway's access log line and the backend's logs. A client's
// own X-Request-Id is kept when it is a plain token, so ids can be followed across several hops; anything
// else (too long, spaces, quotes, control characters, several values) is replaced, because the id ends up
// in log lines and headers we send on.
import { randomUUID } from "node:crypto";

export const REQUEST_ID_HEADER = "X-Request-Id";

const SANE_REQUEST_ID = /^[A-Za-z0-9._-]{1,128}$/;

export function isSaneRequestId(value: string): boolean {
  return SANE_REQUEST_ID.test(value);
}

export function requestIdFrom(header: string | string[] | undefined): string {
  return typeof header === "string" && SANE_REQUEST_ID.test(header) ? header : randomUUID();
}
