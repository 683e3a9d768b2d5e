// The small bodies the gateway reads itself before it knows who is asking (a mount form naming what an
// upload start touches, the token endpoint's login form), each capped. One behaviour for both: the
// declared size is checked before the client is invited to send (Expect: 100-continue), and a body that
// turns out larger (chunked) is read to its end and dropped. Leaving the `for await` early would destroy
// the request, and with it the socket the refusal must go out on: the client would see a reset instead
// of a registry error. The idle timeout bounds a client that keeps streaming slowly.
import type { IncomingMessage } from "node:http";
import { inviteBody } from "./continue.js";

/** The body, or null when it is larger than `maxBytes` (declared or sent). */
export async function readBoundedBody(req: IncomingMessage, maxBytes: number): Promise<Buffer | null> {
  if (Number(req.headers["content-length"] ?? 0) > maxBytes) return null;
  inviteBody(req);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size <= maxBytes) chunks.push(chunk);
  }
  return size > maxBytes ? null : Buffer.concat(chunks);
}
