// Group namespaces match repository names with the access rules' globs, and with the same linear-time
// matcher (auth/glob.ts): one grammar, one implementation, no backtracking on either path.
export { compileRepositoryPatterns as compileRepositoryGlobs, type RepositoryMatcher } from "../auth/glob.js";
