// What a request counts as, and which of a site's limits count it. Docker Hub's model, which users know:
// a pull is a manifest GET (HEAD is how clients check for updates, and is free); blobs are a class of
// their own, so pulling a 3-layer image costs one pull, not four; a push is admitted at its start, its
// finish and its manifest, and the PATCH carrying a layer is never counted, so a push already under way
// is never cut in the middle of a layer.
import type { RateLimitConfig } from "../config/schema.js";
import type { RegistryRoute } from "../registry/routes.js";
import type { LimitRule } from "./limiter.js";

/** A request's class; `null` = never counted, not even by `any`. */
export type RequestClass = "pull" | "blob" | "push" | "other";

export function requestClass(method: string, route: RegistryRoute): RequestClass | null {
  switch (route.kind) {
    case "manifest":
      if (method === "GET") return "pull";
      if (method === "PUT") return "push";
      return "other";
    case "blob":
      return method === "GET" ? "blob" : "other";
    case "upload":
      if (route.uploadPhase === "chunk") return null;
      if ((route.uploadPhase === "start" && method === "POST") || (route.uploadPhase === "finish" && method === "PUT")) return "push";
      return "other";
    default:
      return "other";
  }
}

export interface CompiledLimit {
  name: string;
  keyBy: "user" | "ip";
  rule: LimitRule;
  /** Per user name; looked up only when the key is a user. */
  overrides: ReadonlyMap<string, LimitRule>;
  /** `site:limit:`, the constant part of every counter key of this limit. */
  keyStem: string;
}

/** A site's limits, grouped by request class once at load time: a request costs one map hit. */
export type SiteLimits = ReadonlyMap<RequestClass, readonly CompiledLimit[]>;

const CLASSES: readonly RequestClass[] = ["pull", "blob", "push", "other"];

export function compileSiteLimits(siteName: string, limits: readonly RateLimitConfig[]): SiteLimits | null {
  if (limits.length === 0) return null;
  const byClass = new Map<RequestClass, CompiledLimit[]>();
  for (const limit of limits) {
    const compiled = compileLimit(siteName, limit);
    const counted = limit.operations.includes("any") ? CLASSES : CLASSES.filter((c) => (limit.operations as readonly string[]).includes(c));
    for (const requestClass of counted) {
      const list = byClass.get(requestClass) ?? [];
      list.push(compiled);
      byClass.set(requestClass, list);
    }
  }
  return byClass;
}

function compileLimit(siteName: string, limit: RateLimitConfig): CompiledLimit {
  const rule: LimitRule = { rate: limit.rate, periodMs: limit.per, burst: limit.burst ?? limit.rate };
  const overrides = new Map<string, LimitRule>();
  for (const [user, override] of Object.entries(limit.overrides)) {
    overrides.set(user, { rate: override.rate, periodMs: limit.per, burst: override.burst ?? override.rate });
  }
  return { name: limit.name, keyBy: limit.key, rule, overrides, keyStem: `${siteName}:${limit.name}:` };
}

/** Who a request is, for counting: the principal's name when there is one, else the client IP. */
export interface Requester {
  user?: string;
  ip: string;
}

/**
 * The counter key: `site:limit:u:NAME` or `site:limit:ip:ADDRESS`. The `u:`/`ip:` marker keeps a user
 * called "10.0.0.1" from sharing a counter with that address.
 */
export function limitKey(limit: CompiledLimit, who: Requester): string {
  return limit.keyBy === "user" && who.user ? `${limit.keyStem}u:${who.user}` : `${limit.keyStem}ip:${who.ip}`;
}

export function ruleFor(limit: CompiledLimit, who: Requester): LimitRule {
  return (limit.keyBy === "user" && who.user && limit.overrides.get(who.user)) || limit.rule;
}
