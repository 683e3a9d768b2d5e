import { spawn, type ChildProcess } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface StartOptions {
  /** Extra variables, merged over process.env. */
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Label used in failure messages; defaults to the command. */
  name?: string;
  /** How many output lines to keep for diagnostics. */
  keepLines?: number;
}

export interface ManagedProcess {
  readonly name: string;
  readonly pid: number;
  /** Set once the child has exited (or failed to spawn). */
  readonly exitStatus: ExitStatus | undefined;
  /** Last lines of interleaved stdout/stderr, for assertion messages. */
  output(): string;
  /** Resolves when the child exits, whoever caused it. */
  exited(): Promise<ExitStatus>;
  /** SIGTERM, then SIGKILL after graceMs; resolves once the child is gone. */
  stop(graceMs?: number): Promise<ExitStatus>;
}

/** Keeps only the last N lines so a chatty server cannot exhaust memory. */
class LineRing {
  private readonly lines: string[] = [];
  private readonly partial = new Map<string, string>();

  constructor(private readonly capacity: number) {}

  push(stream: string, chunk: string): void {
    const text = (this.partial.get(stream) ?? "") + chunk;
    const parts = text.split("\n");
    this.partial.set(stream, parts.pop() ?? "");
    for (const line of parts) this.add(`[${stream}] ${line}`);
  }

  text(): string {
    const tails = [...this.partial].filter(([, rest]) => rest !== "").map(([stream, rest]) => `[${stream}] ${rest}`);
    return [...this.lines, ...tails].join("\n");
  }

  private add(line: string): void {
    this.lines.push(line);
    if (this.lines.length > this.capacity) this.lines.splice(0, this.lines.length - this.capacity);
  }
}

// Children left running by a crashed test would hold ports and temp dirs; kill them on exit.
const running = new Set<ChildProcess>();
process.once("exit", () => {
  for (const child of running) killGroup(child, "SIGKILL");
});

/** Kills the child's whole process group: wrappers such as `unshare` may have forked helpers. */
function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    try {
      child.kill(signal);
    } catch {
      // already gone
    }
  }
}

export function startProcess(cmd: string, args: readonly string[], options: StartOptions = {}): ManagedProcess {
  const name = options.name ?? cmd;
  const ring = new LineRing(options.keepLines ?? 200);
  const child = spawn(cmd, args, {
    cwd: options.cwd,
    env: { ...process.env, ...options.env },
    stdio: ["ignore", "pipe", "pipe"],
    // Own process group, so stop() can signal the child and anything it forked.
    detached: true,
  });
  running.add(child);
  child.stdout?.setEncoding("utf8").on("data", (chunk: string) => ring.push("stdout", chunk));
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => ring.push("stderr", chunk));

  let exitStatus: ExitStatus | undefined;
  const exitPromise = new Promise<ExitStatus>((resolve) => {
    const finish = (status: ExitStatus) => {
      if (exitStatus) return;
      exitStatus = status;
      running.delete(child);
      resolve(status);
    };
    child.once("exit", (code, signal) => finish({ code, signal }));
    child.once("error", (err) => {
      ring.push("spawn", `${err.message}\n`);
      finish({ code: null, signal: null });
    });
  });

  const stop = async (graceMs = 5000): Promise<ExitStatus> => {
    if (exitStatus) return exitStatus;
    killGroup(child, "SIGTERM");
    const timer = setTimeout(() => killGroup(child, "SIGKILL"), graceMs);
    try {
      return await exitPromise;
    } finally {
      clearTimeout(timer);
    }
  };

  return {
    name,
    pid: child.pid ?? -1,
    get exitStatus() {
      return exitStatus;
    },
    output: () => ring.text(),
    exited: () => exitPromise,
    stop,
  };
}

export interface WaitForOptions {
  timeoutMs?: number;
  intervalMs?: number;
  /** Describes the awaited condition in the timeout message. */
  what?: string;
  /** Returns a reason to stop waiting early (e.g. the server process died). */
  giveUpIf?: () => string | undefined;
}

/**
 * Polls until predicate returns a truthy value and returns it. A throwing
 * predicate counts as "not yet"; its last error is reported on timeout.
 */
export async function waitFor<T>(
  predicate: () => T | Promise<T>,
  { timeoutMs = 10_000, intervalMs = 100, what = "condition", giveUpIf }: WaitForOptions = {},
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await predicate();
      if (value) return value as NonNullable<T>;
    } catch (err) {
      lastError = err;
    }
    const reason = giveUpIf?.();
    if (reason) throw new Error(`gave up waiting for ${what}: ${reason}${describe(lastError)}`);
    if (Date.now() >= deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${describe(lastError)}`);
    await sleep(intervalMs);
  }
}

function describe(err: unknown): string {
  if (err === undefined) return "";
  return ` (last error: ${err instanceof Error ? err.message : String(err)})`;
}

export interface RunOptions {
  /** Written to stdin, which is then closed. */
  input?: string | Buffer;
  /** Extra variables, merged over process.env. */
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  timeoutMs?: number;
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/**
 * Runs a one-shot command to completion. Never rejects on a non-zero exit:
 * tests usually want to assert on the failure output instead.
 */
export function run(cmd: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  const { input, env, cwd, timeoutMs = 60_000 } = options;
  return new Promise((resolve) => {
    const child = spawn(cmd, args, {
      cwd,
      env: { ...process.env, ...env },
      stdio: [input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
      detached: true,
    });
    running.add(child);
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    let timedOut = false;
    let spawnError: Error | undefined;
    child.stdout?.on("data", (chunk: Buffer) => stdout.push(chunk));
    child.stderr?.on("data", (chunk: Buffer) => stderr.push(chunk));
    child.stdin?.on("error", () => {}); // child may exit without reading its input
    child.stdin?.end(input);
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child, "SIGKILL");
    }, timeoutMs);
    child.once("error", (err) => (spawnError = err));
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      running.delete(child);
      const errText = Buffer.concat(stderr).toString("utf8");
      resolve({
        code,
        signal,
        stdout: Buffer.concat(stdout).toString("utf8"),
        stderr: spawnError ? `${errText}${spawnError.message}\n` : errText,
        timedOut,
      });
    });
  });
}

/** Formats a RunResult for an assertion message. */
export function formatRun(cmd: string, args: readonly string[], result: RunResult): string {
  const status = result.timedOut ? "timed out" : `exit ${result.code ?? result.signal}`;
  return `${cmd} ${args.join(" ")} → ${status}\n--- stdout ---\n${result.stdout}\n--- stderr ---\n${result.stderr}`;
}
