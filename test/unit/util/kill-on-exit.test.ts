// Children killed should the process exit: util/kill-on-exit.ts.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { describe, it } from "node:test";
import { KillOnExit } from "../../../src/util/kill-on-exit.js";

describe("kill on exit", () => {
  it("hooks the process exit only while a child is alive, and kills the child then", { timeout: 5000 }, async (t) => {
    const before = process.listenerCount("exit");
    const children = new KillOnExit();
    assert.equal(process.listenerCount("exit"), before, "creating it registers nothing");
    const child = spawn(process.execPath, ["-e", "setTimeout(() => {}, 60_000)"], { stdio: "ignore" });
    t.after(() => child.kill());
    children.add(child);
    assert.equal(process.listenerCount("exit"), before + 1);
    const closed = once(child, "close");
    process.emit("exit", 0);
    const [, signal] = await closed;
    assert.equal(signal, "SIGKILL");
    assert.equal(process.listenerCount("exit"), before, "the hook is gone with the last child");
  });
});
