// The registry browser's paths. None of them can be a registry API path (those live under /v2/, /v1/ and
// /token), so the classifier hands them to the browser without changing how any registry request is read.
const PAGES: ReadonlySet<string> = new Set(["/", "/login", "/logout", "/delete"]);
const PREFIXES = ["/repo/", "/tag/", "/assets/"] as const;

export function isBrowserPath(path: string): boolean {
  return PAGES.has(path) || PREFIXES.some((prefix) => path.startsWith(prefix));
}
