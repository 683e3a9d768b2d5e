// Repository-name globs as the access rules write them (`*` within one path component, `**` across
// components, also none: `team/**` matches `team/a` and `team/a/b`; `?` one character other than `/`;
// everything else literal), matched without backtracking. A group consults these on every pull, so the
// cost must not depend on how a pattern happens to interact with a name: the glob is run as a small NFA,
// all positions at once, O(name length × pattern length) whatever the input.
//
// This is the one place group namespaces match names; a shared linear-time matcher for the access rules
// can take its place behind compileRepositoryGlobs without touching the callers.

/** True when a repository name matches one of the compiled patterns. */
export type RepositoryMatcher = (repository: string) => boolean;

type Token =
  | { kind: "char"; char: string }
  /** `?`: one character other than `/`. */
  | { kind: "one" }
  /** `*`: any run of characters other than `/`. */
  | { kind: "star" }
  /** `**` not followed by `/`: any run of characters. */
  | { kind: "any" }
  /** `**` followed by `/`: nothing, or any run of characters ending with `/` (so `a/**` + `/b` also matches `a/b`). */
  | { kind: "anyDir" };

/** Longest first at each position: `**` + `/`, then `**`, then `*`, as the access rules read a glob. */
const TOKEN = /\*\*\/|\*\*|\*|\?|[^*?]/g;

function tokenize(glob: string): Token[] {
  return (glob.match(TOKEN) ?? []).map((text): Token => {
    if (text === "**/") return { kind: "anyDir" };
    if (text === "**") return { kind: "any" };
    if (text === "*") return { kind: "star" };
    if (text === "?") return { kind: "one" };
    return { kind: "char", char: text };
  });
}

/**
 * One glob. The common shapes need no automaton: a plain name is compared, `prefix**` (`team/**`, `**`) is
 * a prefix test, `prefix*` (`team/*`) a prefix test with no `/` after it. Anything else runs as an NFA over all positions at once, where state i < m means "the
 * tokens before i matched", m accepts, and m + 1 + i is "inside the run of `**` + `/` token i, its closing
 * `/` not read yet".
 */
function compileGlob(glob: string): RepositoryMatcher {
  if (!/[*?]/.test(glob)) return (repository) => repository === glob;
  const prefix = /^([^*?]*)\*\*$/.exec(glob)?.[1];
  if (prefix !== undefined) return (repository) => repository.startsWith(prefix);
  const component = /^([^*?]*)\*$/.exec(glob)?.[1];
  if (component !== undefined) return (repository) => repository.startsWith(component) && !repository.includes("/", component.length);

  const tokens = tokenize(glob);
  const m = tokens.length;
  const inner = (i: number) => m + 1 + i;
  const skippable = tokens.map((token) => token.kind === "star" || token.kind === "any" || token.kind === "anyDir");
  // Matching is synchronous, so one pair of state sets per glob serves every call.
  let current = new Uint8Array(2 * m + 1);
  let next = new Uint8Array(2 * m + 1);

  /** Empty matches of `*`, `**` and `**` + `/`: every such edge points forward, so one ascending pass closes the set. */
  const close = (states: Uint8Array) => {
    for (let i = 0; i < m; i++) if (states[i] && skippable[i]) states[i + 1] = 1;
  };

  return (repository) => {
    current.fill(0);
    current[0] = 1;
    close(current);
    for (let at = 0; at < repository.length; at++) {
      const char = repository[at]!;
      next.fill(0);
      let alive = false;
      const slash = char === "/";
      for (let i = 0; i < m; i++) {
        if (current[inner(i)]) {
          next[inner(i)] = 1;
          if (slash) next[i + 1] = 1;
          alive = true;
        }
        if (!current[i]) continue;
        const token = tokens[i]!;
        alive = true;
        if (token.kind === "char") {
          if (token.char === char) next[i + 1] = 1;
        } else if (token.kind === "one") {
          if (!slash) next[i + 1] = 1;
        } else if (token.kind === "star") {
          if (!slash) next[i] = 1;
        } else if (token.kind === "any") next[i] = 1;
        else {
          next[inner(i)] = 1;
          if (slash) next[i + 1] = 1;
        }
      }
      if (!alive) return false;
      close(next);
      [current, next] = [next, current];
    }
    return current[m] === 1;
  };
}

/** A matcher for a list of globs: a name matches when any one of them matches it. */
export function compileRepositoryGlobs(globs: readonly string[]): RepositoryMatcher {
  const matchers = globs.map(compileGlob);
  return (repository) => matchers.some((matches) => matches(repository));
}
