// Repository-name globs, matched in time linear in the name: `*` within one path component, `**` across
// components (`a/**/b` also matches `a/b`), `?` one character other than `/`, everything else literal.
//
// A backtracking regex is the obvious compiler and the wrong one: `**/**/**/**/**/z` against a 255-character
// name of many segments that does not end in `z` tries every way of splitting the name, holding the event
// loop for most of a second (more stars, far longer) — and rules are evaluated for anonymous requests and
// for every scope a `/token` request names.
// Here a glob is a small NFA (one state per element, plus one for the inside of each `**/`), simulated over
// the name with a set of live states: each character costs at most one step per state, never a retry.
//
// Semantics are those of the regexes the globs used to compile to, element by element:
//   `**/` → (?:.*/)?    `**` → .*    `*` → [^/]*    `?` → [^/]    other → itself
// scanned left to right, so `***` is `**` then `*`, and `***/` is `**`, `*`, `/`.

/** True when the repository name matches. */
export type RepositoryMatcher = (name: string) => boolean;

const SLASH = 0x2f;

// How a state consumes one character.
/** Only its `char`, then on to the next state. */
const LITERAL = 0;
/** Any character but `/`, then on to the next state (`?`). */
const ONE_IN_SEGMENT = 1;
/** Any character but `/`, staying (`*`). */
const STAY_IN_SEGMENT = 2;
/** Any character, staying (`**`). */
const STAY_ANYWHERE = 3;
/** `**` + `/` before its first character: `/` may end it, any character (`/` too) enters its inside state. */
const DIRECTORIES_START = 4;
/** Inside `**` + `/`: any character stays, `/` may also end it. */
const DIRECTORIES_INSIDE = 5;
/** After the last element: consumes nothing. */
const ACCEPT = 6;

/** The states of one glob, in parallel arrays (the matcher's inner loop reads nothing else). */
interface Automaton {
  step: Uint8Array;
  /** The character a LITERAL consumes. */
  char: Int32Array;
  /** Where a consumed character (or, for the staying kinds, the `/` that ends them) leads on to. */
  next: Int32Array;
  /** For DIRECTORIES_START: its inside state. */
  inside: Int32Array;
  /** 1 for states with an empty way to the next state: `*`, `**`, and `**` + `/` (they may match nothing). */
  skippable: Uint8Array;
  /** 1 for a `**` followed by nothing but what matches empty: once it is live, the rest of any name matches. */
  takesRest: Uint8Array;
  accept: number;
  /** The live states and the next step's: matching is synchronous, so one pair serves every call. */
  sets: [Uint8Array, Uint8Array];
}

/** Compiles one glob. Group namespaces run these per name and member of a merged catalog: the common shapes are plain tests. */
export function compileRepositoryPattern(pattern: string): RepositoryMatcher {
  // A glob without wildcards is the name itself.
  if (!/[*?]/.test(pattern)) return (name) => name === pattern;
  // `team/**` (and `**`): a prefix. `team/*`: a prefix with no `/` after it.
  const prefix = /^([^*?]*)\*\*$/.exec(pattern)?.[1];
  if (prefix !== undefined) return (name) => name.startsWith(prefix);
  const component = /^([^*?]*)\*$/.exec(pattern)?.[1];
  if (component !== undefined) return (name) => name.startsWith(component) && !name.includes("/", component.length);
  const automaton = compile(pattern);
  return (name) => run(automaton, name);
}

/** A matcher for a list of globs: a name matches when any of them does. */
export function compileRepositoryPatterns(patterns: readonly string[]): RepositoryMatcher {
  const matchers = patterns.map(compileRepositoryPattern);
  return matchers.length === 1 ? matchers[0]! : (name) => matchers.some((matches) => matches(name));
}

/**
 * Main states are numbered in element order, then the accepting state; the inside state of each `**` + `/`
 * is appended after those, so every empty transition (always to the next main state) goes forward.
 */
function compile(pattern: string): Automaton {
  const steps: number[] = [];
  const chars: number[] = [];
  for (let i = 0; i < pattern.length; i++) {
    if (pattern[i] === "*" && pattern[i + 1] === "*") {
      i++;
      if (pattern[i + 1] === "/") {
        i++;
        steps.push(DIRECTORIES_START);
      } else steps.push(STAY_ANYWHERE);
    } else if (pattern[i] === "*") steps.push(STAY_IN_SEGMENT);
    else if (pattern[i] === "?") steps.push(ONE_IN_SEGMENT);
    else steps.push(LITERAL);
    chars.push(steps.at(-1) === LITERAL ? pattern.charCodeAt(i) : -1);
  }
  const accept = steps.length;
  const insides = steps.flatMap((step, index) => (step === DIRECTORIES_START ? [index] : []));
  const size = accept + 1 + insides.length;
  const automaton: Automaton = {
    step: new Uint8Array(size),
    char: new Int32Array(size).fill(-1),
    next: new Int32Array(size).fill(-1),
    inside: new Int32Array(size).fill(-1),
    skippable: new Uint8Array(size),
    takesRest: new Uint8Array(size),
    accept,
    sets: [new Uint8Array(size), new Uint8Array(size)],
  };
  steps.forEach((step, index) => {
    automaton.step[index] = step;
    automaton.char[index] = chars[index]!;
    automaton.next[index] = index + 1;
    automaton.skippable[index] = step === STAY_IN_SEGMENT || step === STAY_ANYWHERE || step === DIRECTORIES_START ? 1 : 0;
  });
  automaton.step[accept] = ACCEPT;
  insides.forEach((owner, k) => {
    const inside = accept + 1 + k;
    automaton.inside[owner] = inside;
    automaton.step[inside] = DIRECTORIES_INSIDE;
    automaton.next[inside] = owner + 1;
  });
  // Scanning back from the end: a `**` takes the rest when everything after it may match nothing.
  for (let index = accept - 1, restEmpty = true; index >= 0 && restEmpty; index--) {
    if (steps[index] === STAY_ANYWHERE) automaton.takesRest[index] = 1;
    restEmpty = automaton.skippable[index] === 1;
  }
  return automaton;
}

/** Simulates the automaton over the name: at most (states × name length) steps, whatever the glob and name. */
function run(automaton: Automaton, name: string): boolean {
  const { step, char: chars, next, inside, takesRest, accept } = automaton;
  const size = step.length;
  let [live, following] = automaton.sets;
  // A previous call may have returned early, leaving states set.
  live.fill(0);
  following.fill(0);
  live[0] = 1;
  closeOver(automaton, live);
  for (let at = 0; at < name.length; at++) {
    const char = name.charCodeAt(at);
    let alive = 0;
    for (let state = 0; state < size; state++) {
      if (live[state] === 0) continue;
      live[state] = 0;
      switch (step[state]) {
        case LITERAL:
          if (char === chars[state]) alive = following[next[state]!] = 1;
          break;
        case ONE_IN_SEGMENT:
          if (char !== SLASH) alive = following[next[state]!] = 1;
          break;
        case STAY_IN_SEGMENT:
          if (char !== SLASH) alive = following[state] = 1;
          break;
        case STAY_ANYWHERE:
          if (takesRest[state] === 1) return true;
          alive = following[state] = 1;
          break;
        case DIRECTORIES_START:
        case DIRECTORIES_INSIDE:
          // `**` + `/` matching characters is `.*` then `/`: the `/` may be the one that ends it.
          if (char === SLASH) following[next[state]!] = 1;
          alive = following[step[state] === DIRECTORIES_START ? inside[state]! : state] = 1;
          break;
      }
    }
    if (alive === 0) return false;
    closeOver(automaton, following);
    // `live` was cleared while it was read: it is the next step's empty set.
    [live, following] = [following, live];
  }
  return live[accept] === 1;
}

/** Adds the states reachable without consuming: a live skippable state makes the next one live too. */
function closeOver(automaton: Automaton, live: Uint8Array): void {
  for (let state = 0; state < automaton.accept; state++) {
    if (live[state] === 1 && automaton.skippable[state] === 1) live[state + 1] = 1;
  }
}
