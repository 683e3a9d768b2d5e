// `Expect: 100-continue`: a client that sends it waits for `100 Continue` before its body. Node would send
// that 100 as soon as the headers are parsed — before authentication — inviting anyone to send a multi-GB
// layer that is then refused. The listener takes the request from Node's `checkContinue` event instead
// (listeners.ts), and the 100 goes out only where the gateway is about to read the body: a request that
// passed authentication, authorization and rate limiting on its way to the backend, or one of the small
// forms the gateway reads itself. A request refused before that gets its error and no 100; Node then
// closes the connection, so the body the client never sent cannot be read as a next request.
// The backend never sees the Expect header (proxy/headers.ts): the 100 is the gateway's answer.
import type { IncomingMessage, ServerResponse } from "node:http";

/** Requests whose client waits for 100 Continue, until they get it. */
const waiting = new WeakMap<IncomingMessage, ServerResponse>();

/** The request came through `checkContinue`: its client waits for 100 Continue before sending the body. */
export function holdBody(req: IncomingMessage, res: ServerResponse): void {
  waiting.set(req, res);
}

/** Sends the 100 Continue the client is waiting for (once); nothing when it asked for none. */
export function inviteBody(req: IncomingMessage): void {
  const res = waiting.get(req);
  if (!res) return;
  waiting.delete(req);
  if (!res.headersSent && !res.writableEnded) res.writeContinue();
}
