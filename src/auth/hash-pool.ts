// bcrypt checks off the event loop. bcryptjs is plain JavaScript: one check at cost 10 is
// ~75–100 ms of CPU, which on the main thread would stall every other request for that long. Checks run
// in a small pool of worker threads instead, with a bounded queue in front: a flood of logins waits for a
// thread up to `maxQueued` deep, and beyond that is refused at once (the caller answers 503) rather than
// piling up memory and latency.
//
// The worker is a few lines of CommonJS evaluated from a string, requiring bcryptjs by its resolved path:
// no separate worker file, so the same code runs under tsx (tests) and from dist/ (production). Threads
// start on first use, and are unref'd while idle so they never keep the process alive.
import { createRequire } from "node:module";
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";

/** Answers `{id, ok}` for each `{id, password, hash}`; a hash bcryptjs cannot read simply does not match. */
const WORKER_SOURCE = `
"use strict";
const { parentPort, workerData } = require("node:worker_threads");
const bcrypt = require(workerData.bcryptPath);
parentPort.on("message", ({ id, password, hash }) => {
  let ok = false;
  try {
    ok = bcrypt.compareSync(password, hash) === true;
  } catch {
    ok = false;
  }
  parentPort.postMessage({ id, ok });
});
`;

const BCRYPT_PATH = createRequire(import.meta.url).resolve("bcryptjs");

/** Every thread is busy and `maxQueued` checks already wait: try again shortly (503 + Retry-After). */
export class HashPoolFullError extends Error {
  override readonly name = "HashPoolFullError";
}

export interface HashPoolOptions {
  /** Threads at most (the config's `logins.hashWorkers`, resolved by hashThreads()). */
  threads: number;
  /** Checks allowed to wait for a thread; more are refused. */
  maxQueued: number;
}

/** `logins.hashWorkers`: "auto" is one less than the cores (the event loop keeps one), at least one. */
export function hashThreads(setting: "auto" | number): number {
  return setting === "auto" ? Math.max(1, availableParallelism() - 1) : setting;
}

interface Task {
  id: number;
  password: string;
  hash: string;
  resolve(ok: boolean): void;
  reject(err: Error): void;
}

interface Thread {
  worker: Worker;
  task: Task | null;
}

export class HashPool {
  private readonly threads = new Set<Thread>();
  private readonly idle: Thread[] = [];
  /** Checks waiting for a thread, oldest first; at most options.maxQueued. */
  private queue: Task[] = [];
  private nextId = 0;
  private closed = false;

  constructor(private readonly options: HashPoolOptions) {
    if (!Number.isInteger(options.threads) || options.threads < 1) throw new RangeError("HashPool needs at least one thread");
    if (!Number.isInteger(options.maxQueued) || options.maxQueued < 0) throw new RangeError("HashPool maxQueued must be ≥ 0");
  }

  /** Checks running on a thread right now. */
  get running(): number {
    let running = 0;
    for (const thread of this.threads) if (thread.task) running++;
    return running;
  }

  /** Checks waiting for a thread. */
  get queued(): number {
    return this.queue.length;
  }

  /** Threads started (at most options.threads). */
  get size(): number {
    return this.threads.size;
  }

  /**
   * bcrypt.compareSync(password, hash) on a worker thread. Rejects with HashPoolFullError when every thread
   * is busy and the queue is full, and with an Error if the pool is closed or a thread dies meanwhile.
   */
  async compare(password: string, hash: string): Promise<boolean> {
    const [ok] = await this.compareAll([{ password, hash }]);
    return ok!;
  }

  /**
   * Several checks, taken whole or not at all: when there is no room for every one of them, none is
   * started (a half-accepted batch would burn a thread for an answer nobody waits for).
   */
  compareAll(checks: readonly { password: string; hash: string }[]): Promise<boolean[]> {
    if (this.closed) return Promise.reject(new Error("the password hashing pool is closed"));
    const room = this.idle.length + (this.options.threads - this.threads.size) + (this.options.maxQueued - this.queue.length);
    if (checks.length > room) return Promise.reject(new HashPoolFullError("too many password checks are waiting"));
    return Promise.all(
      checks.map(
        ({ password, hash }) =>
          new Promise<boolean>((resolve, reject) => {
            const task: Task = { id: this.nextId++, password, hash, resolve, reject };
            const thread = this.idle.pop() ?? (this.threads.size < this.options.threads ? this.spawn() : null);
            if (thread) this.run(thread, task);
            else this.queue.push(task);
          }),
      ),
    );
  }

  /** Refuses what waits, stops every thread (a check in progress is rejected). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const waiting = this.queue;
    this.queue = [];
    for (const task of waiting) task.reject(new Error("the password hashing pool is closed"));
    this.idle.length = 0;
    await Promise.all([...this.threads].map((thread) => thread.worker.terminate()));
  }

  private spawn(): Thread {
    // No execArgv: the worker is plain CommonJS and needs no loader; an inherited --input-type=module would
    // even make it ESM, without require().
    const worker = new Worker(WORKER_SOURCE, { eval: true, execArgv: [], workerData: { bcryptPath: BCRYPT_PATH } });
    const thread: Thread = { worker, task: null };
    let failure = "";
    this.threads.add(thread);
    worker.on("message", (message: { id: number; ok: boolean }) => {
      const task = thread.task;
      if (!task || task.id !== message.id) return;
      thread.task = null;
      task.resolve(message.ok);
      this.next(thread);
    });
    // An uncaught error ends the worker; "exit" follows and does the cleanup.
    worker.on("error", (err) => (failure = `: ${err.message}`));
    worker.once("exit", () => {
      this.threads.delete(thread);
      const at = this.idle.indexOf(thread);
      if (at >= 0) this.idle.splice(at, 1);
      const task = thread.task;
      thread.task = null;
      task?.reject(new Error(`a password hashing thread stopped${failure}`));
      // Whatever waits gets a fresh thread.
      const waiting = this.closed ? undefined : this.queue.shift();
      if (waiting) this.run(this.spawn(), waiting);
    });
    return thread;
  }

  private run(thread: Thread, task: Task): void {
    thread.task = task;
    // Busy: keep the process alive until the answer is in.
    thread.worker.ref();
    thread.worker.postMessage({ id: task.id, password: task.password, hash: task.hash });
  }

  private next(thread: Thread): void {
    if (this.closed) return;
    const task = this.queue.shift();
    if (task) {
      this.run(thread, task);
      return;
    }
    thread.worker.unref();
    this.idle.push(thread);
  }
}
