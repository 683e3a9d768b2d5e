// For a backend that checks tokens itself (a stock distribution with `auth: token` whose rootcertbundle is
// our signing certificate): each forwarded request carries a short-lived token granting exactly the
// route's accesses, for the backend's service, as the user the gateway authenticated.
//
// A push sends hundreds of requests with the same accesses, so tokens are reused while they have more than
// a minute left: signing is paid once per user, repository and action set every few minutes.
import { LRUCache } from "lru-cache";
import type { Access } from "../registry/routes.js";
import type { AccessClaim } from "./access.js";
import { formatScope } from "./scope.js";
import type { IssuedToken, TokenIssuer } from "./tokens.js";
import type { BackendAuth, Principal } from "./types.js";

const LIFETIME_MS = 5 * 60_000;
/** A token must outlive the request it rides on by this much: the backend checks `exp` on arrival only. */
const REUSE_MARGIN_MS = 60_000;
const CACHE_SIZE = 1024;

export class BackendTokenMinter implements BackendAuth {
  /** The most recently used tokens; a reused one stays, one past its reuse margin is replaced. */
  private readonly cache = new LRUCache<string, IssuedToken>({ max: CACHE_SIZE });

  constructor(
    private readonly issuer: TokenIssuer,
    private readonly service: string,
  ) {}

  async authorizationFor(accesses: readonly Access[], principal: Principal | null): Promise<string> {
    const subject = principal?.name ?? "";
    const key = `${subject}\n${formatScope(accesses)}`;
    const cached = this.cache.get(key);
    if (cached && cached.expiresAt - Date.now() > REUSE_MARGIN_MS) return `Bearer ${cached.token}`;
    const issued = await this.issuer.issue(subject, this.service, accessClaims(accesses), LIFETIME_MS);
    this.cache.set(key, issued);
    return `Bearer ${issued.token}`;
  }
}

/** Route accesses grouped per resource, as the `access` claim lists them. */
export function accessClaims(accesses: readonly Access[]): AccessClaim[] {
  const claims = new Map<string, AccessClaim>();
  for (const { type, name, action } of accesses) {
    const key = `${type}:${name}`;
    const claim = claims.get(key);
    if (!claim) claims.set(key, { type, name, actions: [action] });
    else if (!claim.actions.includes(action)) claim.actions.push(action);
  }
  return [...claims.values()];
}
