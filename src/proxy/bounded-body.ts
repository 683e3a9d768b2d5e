// The small bodies the gateway reads itself before it knows who is asking (a mount form naming what an
// upload start touches, the token endpoint's login form), each capped. One behaviour for both: the
// declared size is checked before the client is invited to send (Expect: 100-continue), and a body that
// turns out larger (chunked) is drained for a while and dropped: leaving at once would destroy the request,
// and with it the socket the refusal must go out on (the client would see a reset instead of a registry
// error). The drain is bounded too: past DRAIN_BYTES more the gateway stops reading, and the refusal
// (which closes the connection while the body is unread) is all the client gets, so nobody can keep an
// unauthenticated connection busy decrypting a body that is never used.
import type { IncomingMessage } from "node:http";
import { inviteBody } from "./continue.js";

/** How much of an oversized body is read past the cap, so that an honest client still sees the 400. */
const DRAIN_BYTES = 1024 * 1024;

/** The body, or null when it is larger than `maxBytes` (declared or sent), or the client went away. */
export async function readBoundedBody(req: IncomingMessage, maxBytes: number): Promise<Buffer | null> {
  if (Number(req.headers["content-length"] ?? 0) > maxBytes) return null;
  inviteBody(req);
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const settle = (body: Buffer | null) => {
      req.off("data", onData);
      req.off("end", onEnd);
      req.off("close", onClose);
      resolve(body);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size <= maxBytes) chunks.push(chunk);
      else if (size > maxBytes + DRAIN_BYTES) {
        req.pause();
        settle(null);
      }
    };
    const onEnd = () => settle(size > maxBytes ? null : Buffer.concat(chunks));
    const onClose = () => settle(null);
    req.on("data", onData);
    req.once("end", onEnd);
    req.once("close", onClose);
  });
}
