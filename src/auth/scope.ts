// Token scopes, both ways: parsing what a client asks `/token` for, and writing the scope a challenge names.
// Grammar (Docker token spec): `type[(class)]:name:actions`, several separated by spaces in one value. The
// name may itself contain `:` (a `host:port` prefix), so the type ends at the first colon and the actions
// start after the last one.
import type { Access } from "../registry/routes.js";

export interface ResourceScope {
  type: string;
  class?: string;
  name: string;
  actions: string[];
}

const TYPE = /^([a-z0-9]+)(?:\(([a-z0-9]+)\))?$/;
const ACTION = /^(?:[a-z]+|\*)$/;

/** Every well-formed scope in the given `scope` values; malformed ones are skipped (you get less, not an error). */
export function parseScopes(values: readonly string[]): ResourceScope[] {
  const scopes: ResourceScope[] = [];
  for (const value of values) {
    for (const item of value.split(/\s+/)) {
      const scope = parseScope(item);
      if (scope) scopes.push(scope);
    }
  }
  return scopes;
}

export function parseScope(text: string): ResourceScope | null {
  const first = text.indexOf(":");
  const last = text.lastIndexOf(":");
  if (first <= 0 || last === first) return null;
  const type = TYPE.exec(text.slice(0, first));
  const name = text.slice(first + 1, last);
  const actions = [...new Set(text.slice(last + 1).split(",").filter((action) => ACTION.test(action)))];
  if (!type || name === "" || actions.length === 0) return null;
  return type[2] ? { type: type[1]!, class: type[2], name, actions } : { type: type[1]!, name, actions };
}

/** `repository:a/b:pull,push repository:c:pull`: one entry per resource, actions in the order first seen. */
export function formatScope(accesses: readonly Access[]): string {
  const byResource = new Map<string, string[]>();
  for (const access of accesses) {
    const resource = `${access.type}:${access.name}`;
    const actions = byResource.get(resource);
    if (!actions) byResource.set(resource, [access.action]);
    else if (!actions.includes(access.action)) actions.push(access.action);
  }
  return [...byResource].map(([resource, actions]) => `${resource}:${actions.join(",")}`).join(" ");
}
