// Child processes that must not outlive this one. A supervisor stops its children in an orderly way; this
// is for when the process exits anyway (an uncaught error, process.exit): they are killed then. The exit
// hook is registered only while a child is alive, so creating or importing this has no side effect.
import type { ChildProcess } from "node:child_process";

export class KillOnExit {
  readonly #children = new Set<ChildProcess>();
  readonly #killAll = (): void => {
    for (const child of this.#children) child.kill("SIGKILL");
  };

  /** Kills `child` should this process exit before it has closed. */
  add(child: ChildProcess): void {
    if (this.#children.size === 0) process.once("exit", this.#killAll);
    this.#children.add(child);
    child.once("close", () => this.#forget(child));
  }

  #forget(child: ChildProcess): void {
    if (!this.#children.delete(child)) return;
    if (this.#children.size === 0) process.off("exit", this.#killAll);
  }
}
