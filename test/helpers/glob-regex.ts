// The regex compiler access-rule globs used before src/auth/glob.ts: kept as the oracle that the linear-time
// matcher must agree with (`**/` → (?:.*\/)?, `**` → .*, `*` → [^/]*, `?` → [^/], anything else literal).

/** One anchored regex for a list of globs, as a rule's `repositories` compiled to. */
export function globRegex(globs: readonly string[]): RegExp {
  return new RegExp(`^(?:${globs.map(globSource).join("|")})$`);
}

function globSource(glob: string): string {
  let source = "";
  for (let i = 0; i < glob.length; i++) {
    const char = glob[i]!;
    if (char === "*" && glob[i + 1] === "*") {
      i++;
      if (glob[i + 1] === "/") {
        i++;
        source += "(?:.*/)?";
      } else source += ".*";
    } else if (char === "*") source += "[^/]*";
    else if (char === "?") source += "[^/]";
    else source += char.replace(/[.\\+^$|(){}[\]-]/g, "\\$&");
  }
  return source;
}
