// The one object a request carries through the stages of pipeline.ts: what the client sent (read once,
// at the start) and what each stage found out. Stages read earlier stages' findings here; nothing is
// passed by rewriting the client's headers.
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Principal } from "./auth/types.js";
import type { ForwardOutcome } from "./proxy/forward.js";
import type { GatewayErrorKind } from "./registry/errors.js";
import type { RegistryRoute } from "./registry/routes.js";
import type { Site } from "./sites.js";

export interface RequestContext {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  /** The client's X-Request-Id if sane, else generated; sent to the backend and back to the client. */
  readonly requestId: string;
  readonly method: string;
  /** Path and query as received. */
  readonly url: string;
  /** Socket peer, or X-Forwarded-For from a trusted proxy. */
  readonly clientIp: string;
  readonly startedAt: number;
  /** Stage 1: the site the Host names. */
  site?: Site;
  /** Stage 2: what the request does, in registry terms. */
  route?: RegistryRoute;
  /** Stage 3: who is asking; null until then, and when anonymous or the site has no auth. */
  principal: Principal | null;
  /** Authenticated user name (or the name a failed login tried), for limits and logs. */
  user?: string;
  /** Why the gateway itself refused or failed the request, when it did. */
  refusal?: GatewayErrorKind;
  /** Stage 6: how the exchange with the backend went. */
  outcome?: ForwardOutcome;
  /** Stage 7: the status sent (0 when none was), and how long the request took. */
  status: number;
  durationMs: number;
}

/** A request's context as the observe stage sees it: finished. */
export type FinishedRequest = Readonly<RequestContext>;
