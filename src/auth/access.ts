// Access rules: who may do what on which repositories. Compiled once at load (globs become linear-time
// matchers, glob.ts); a request only walks a short list of precompiled rules.
//
// Semantics (as docker_auth's ACLs): for a user and a repository, the FIRST rule whose `who` and
// `repositories` both match decides the allowed actions, and no match means nothing. An earlier rule with
// `actions: []` therefore denies what a later, broader rule would allow. The catalog is not a repository,
// so no repository glob can match it: it is allowed when any rule matching the user lists `catalog`.
import type { AccessRuleConfig } from "../config/schema.js";
import type { Access } from "../registry/routes.js";
import { compileRepositoryPatterns, type RepositoryMatcher } from "./glob.js";
import type { ResourceScope } from "./scope.js";

export type RepositoryAction = "pull" | "push" | "delete";
export const REPOSITORY_ACTIONS: readonly RepositoryAction[] = ["pull", "push", "delete"];

/** One entry of a token's `access` claim. */
export interface AccessClaim {
  type: string;
  name: string;
  actions: string[];
}

interface CompiledRule {
  /** null: everyone, anonymous included. */
  users: ReadonlySet<string> | null;
  repositories: RepositoryMatcher;
  actions: ReadonlySet<RepositoryAction>;
  catalog: boolean;
}

const NOTHING: ReadonlySet<RepositoryAction> = new Set();

export class AccessPolicy {
  private readonly rules: readonly CompiledRule[];

  constructor(rules: readonly AccessRuleConfig[]) {
    this.rules = rules.map((rule) => ({
      users: rule.who === "*" ? null : new Set(rule.who),
      repositories: compileRepositoryPatterns(rule.repositories),
      actions: new Set(rule.actions.filter((action): action is RepositoryAction => action !== "catalog")),
      catalog: rule.actions.includes("catalog"),
    }));
  }

  /** What `user` (null: anonymous) may do on `repository`. */
  repositoryActions(user: string | null, repository: string): ReadonlySet<RepositoryAction> {
    for (const rule of this.rules) {
      if (matchesUser(rule, user) && rule.repositories(repository)) return rule.actions;
    }
    return NOTHING;
  }

  mayListCatalog(user: string | null): boolean {
    return this.rules.some((rule) => rule.catalog && matchesUser(rule, user));
  }

  /** True when every access of a route is allowed. A route with no accesses (`/v2/`) needs none. */
  permits(user: string | null, accesses: readonly Access[]): boolean {
    return accesses.every((access) => this.allows(user, access));
  }

  /** The first access of a route that is not allowed, for the refusal message. */
  firstRefused(user: string | null, accesses: readonly Access[]): Access | undefined {
    return accesses.find((access) => !this.allows(user, access));
  }

  private allows(user: string | null, access: Access): boolean {
    if (access.type === "registry") return access.name === "catalog" && this.mayListCatalog(user);
    return access.action !== "*" && this.repositoryActions(user, access.name).has(access.action);
  }

  /**
   * What a token may carry: for each resource asked for, the asked actions that are allowed (`*` asks for
   * everything allowed). Resources with nothing allowed are left out; asking for more is never an error.
   */
  grant(user: string | null, requested: readonly ResourceScope[], isRepositoryName: (name: string) => boolean): AccessClaim[] {
    const granted = new Map<string, AccessClaim>();
    for (const scope of requested) {
      const actions = this.grantedActions(user, scope, isRepositoryName);
      if (actions.length === 0) continue;
      const key = `${scope.type}:${scope.name}`;
      const existing = granted.get(key);
      if (existing) existing.actions = [...new Set([...existing.actions, ...actions])];
      else granted.set(key, { type: scope.type, name: scope.name, actions });
    }
    return [...granted.values()];
  }

  private grantedActions(user: string | null, scope: ResourceScope, isRepositoryName: (name: string) => boolean): string[] {
    if (scope.type === "registry") {
      return scope.name === "catalog" && scope.actions.includes("*") && this.mayListCatalog(user) ? ["*"] : [];
    }
    if (scope.type !== "repository" || !isRepositoryName(scope.name)) return [];
    const allowed = this.repositoryActions(user, scope.name);
    const asked = scope.actions.includes("*") ? REPOSITORY_ACTIONS : scope.actions;
    return REPOSITORY_ACTIONS.filter((action) => asked.includes(action) && allowed.has(action));
  }
}

function matchesUser(rule: CompiledRule, user: string | null): boolean {
  return rule.users === null || (user !== null && rule.users.has(user));
}
