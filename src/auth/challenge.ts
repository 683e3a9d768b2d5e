// WWW-Authenticate values. Clients learn from the 401 of their first request (`GET /v2/`) how to
// authenticate, and from later 401s which scope to ask the token endpoint for.
import type { Access } from "../registry/routes.js";
import { formatScope } from "./scope.js";

export function basicChallenge(realm: string): string {
  return `Basic realm="${realm}", charset="UTF-8"`;
}

export interface BearerChallenge {
  /** `https://host[:port]` the client addressed; the realm is its `/token`. */
  externalOrigin: string;
  service: string;
  /** The route's accesses; none for `/v2/`, which needs a token but no scope. */
  accesses: readonly Access[];
  /** RFC 6750 §3.1 error code, for a token that was sent but is not good enough. */
  error?: "invalid_token" | "insufficient_scope";
  /**
   * RFC 6750 error_description: docker prints a refused push's reason only from here (the JSON body's
   * message is not shown), so it names the repository and the right that is missing.
   */
  description?: string;
}

export function bearerChallenge({ externalOrigin, service, accesses, error, description }: BearerChallenge): string {
  let value = `Bearer realm="${externalOrigin}/token",service="${service}"`;
  const scope = formatScope(accesses);
  if (scope) value += `,scope="${scope}"`;
  if (error) value += `,error="${error}"`;
  if (error && description) value += `,error_description="${quotedStringText(description)}"`;
  return value;
}

/** Inside a quoted-string: no quotes, backslashes or control characters (RFC 6750 §3 allows %x20-21 / %x23-5B / %x5D-7E). */
function quotedStringText(text: string): string {
  return text.replace(/[^\x20\x21\x23-\x5b\x5d-\x7e]/g, "");
}
