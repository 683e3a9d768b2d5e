// Children killed should the process exit: util/kill-on-exit.ts, in a process of its own that exits.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, it } from "node:test";
import { promisify } from "node:util";

const moduleUrl = new URL("../../../src/util/kill-on-exit.ts", import.meta.url).href;

/**
 * Makes a KillOnExit, runs a child that ends by itself under it, then starts a sleeping one; prints the exit
 * listeners at each step and the sleeping child's pid, and exits.
 */
const script = `
import { spawn } from "node:child_process";
const { KillOnExit } = await import(${JSON.stringify(moduleUrl)});
const before = process.listenerCount("exit");
const children = new KillOnExit();
const created = process.listenerCount("exit");
const quick = spawn(process.execPath, ["-e", ""], { stdio: "ignore" });
children.add(quick);
await new Promise((resolve) => quick.once("close", resolve));
const closed = process.listenerCount("exit");
const child = spawn(process.execPath, ["-e", "setTimeout(() => {}, 30_000)"], { stdio: "ignore", detached: true });
children.add(child);
console.log(JSON.stringify({ before, created, closed, alive: process.listenerCount("exit"), pid: child.pid }));
process.exit(0);
`;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe("kill on exit", () => {
  it("hooks the process exit only while a child is alive, and kills the child when the process exits", { timeout: 10_000 }, async () => {
    const { stdout } = await promisify(execFile)(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script]);
    const result = JSON.parse(stdout) as { before: number; created: number; closed: number; alive: number; pid: number };
    const { before, created, closed, alive: hooked, pid } = result;
    assert.equal(created, before, "creating it registers nothing");
    assert.equal(closed, before, "the hook is gone once its last child has closed");
    assert.equal(hooked, before + 1, "a live child hooks the exit");
    for (let waited = 0; alive(pid) && waited < 2000; waited += 50) await sleep(50);
    const survived = alive(pid);
    if (survived) process.kill(pid, "SIGKILL");
    assert.equal(survived, false, "the child outlived the process");
  });
});
