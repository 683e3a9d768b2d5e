// Plain HTTP sent to the TLS port (a client configured with http://, or `docker` treating the registry
// as insecure) would otherwise meet a closed connection, and users read "EOF". OpenSSL recognises an HTTP
// request line where a TLS record should be (ERR_SSL_HTTP_REQUEST); the TCP socket under the failed TLS
// socket is still open and speaks plain text, so it gets one HTTP 400 in registry JSON saying to use
// https://, and is closed.
import type { Socket } from "node:net";
import { rawErrorResponse } from "../registry/errors.js";

/** From the server's `tlsClientError`, given the TCP socket under the failed TLS one; true when it was plain HTTP and has been answered. */
export function answerPlainHttp(err: NodeJS.ErrnoException, tcp: Socket | undefined): boolean {
  if (err.code !== "ERR_SSL_HTTP_REQUEST") return false;
  if (!tcp?.writable) return false;
  tcp.write(rawErrorResponse("badRequest", "this port speaks HTTPS: use https:// in the registry address"));
  tcp.destroySoon();
  return true;
}
