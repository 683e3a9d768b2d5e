// The gateway as users run it: `node dist/main.js …` in a child process (built by `npm test`'s pretest).
import { fileURLToPath } from "node:url";
import { run, startProcess, waitFor, type ManagedProcess, type RunOptions, type RunResult } from "./process.js";

export const REPO_ROOT = fileURLToPath(new URL("../..", import.meta.url));
export const MAIN = fileURLToPath(new URL("../../dist/main.js", import.meta.url));

export function cli(args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  return run(process.execPath, [MAIN, ...args], { cwd: REPO_ROOT, timeoutMs: 30_000, ...options });
}

export interface GatewayProcess {
  process: ManagedProcess;
  httpsPort: number;
  adminPort: number;
  caFile: string | null;
  /** Parsed JSON log lines written on stdout so far. */
  logs(): Record<string, any>[];
}

export interface GatewayProcessOptions {
  /** How long the "gateway ready" line may take. Default: 60 s. */
  timeoutMs?: number;
  /** Output lines kept (every worker's access log goes to the same stdout). */
  keepLines?: number;
}

export async function startGatewayProcess(configPath: string, env: NodeJS.ProcessEnv = {}, { timeoutMs = 60_000, keepLines }: GatewayProcessOptions = {}): Promise<GatewayProcess> {
  const child = startProcess(process.execPath, [MAIN, "serve", "--config", configPath], { cwd: REPO_ROOT, env, name: "registry-gateway", keepLines });
  const logs = () =>
    child
      .output()
      .split("\n")
      .filter((line) => line.startsWith("[stdout] {"))
      .map((line) => JSON.parse(line.slice("[stdout] ".length)) as Record<string, any>);
  const ready = await waitFor(() => logs().find((l) => l.msg === "gateway ready"), {
    // With workers: auto every core starts a worker: a loaded 2-core machine needs more than a few seconds.
    timeoutMs,
    what: "the gateway ready log line",
    giveUpIf: () => (child.exitStatus ? `exited ${JSON.stringify(child.exitStatus)}:\n${child.output()}` : undefined),
  });
  const port = (address: string) => Number(address.slice(address.lastIndexOf(":") + 1));
  return { process: child, httpsPort: port(ready.https), adminPort: port(ready.admin), caFile: ready.caFile, logs };
}
