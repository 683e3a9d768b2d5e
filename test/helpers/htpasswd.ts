// htpasswd lines made by Apache's own htpasswd (apache2-utils), as users make them.
import assert from "node:assert/strict";
import { run } from "./process.js";

/** `user:$2y$…` with bcrypt at `cost` (4 keeps tests fast; 10 is what htpasswd -B writes by default). */
export async function htpasswdLine(user: string, password: string, cost = 4): Promise<string> {
  const result = await run("htpasswd", ["-nbB", "-C", String(cost), user, password]);
  assert.equal(result.code, 0, result.stderr);
  return result.stdout.trim();
}
