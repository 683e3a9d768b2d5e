// bcrypt checks off the event loop. bcryptjs is plain JavaScript: one check at cost 10 is
// ~75–100 ms of CPU, which on the main thread would stall every other request for that long. Checks run
// in a small pool of worker threads instead, with a bounded queue in front: a flood of logins waits for a
// thread up to `maxQueued` deep, and beyond that is refused at once (the caller answers 503) rather than
// piling up memory and latency. The queue is fair between clients (fair-queue.ts): one address flooding
// it fills its own share, and a login from anywhere else still goes through promptly.
//
// The worker is a few lines of CommonJS evaluated from a string, requiring bcryptjs by its resolved path:
// no separate worker file, so the same code runs under tsx (tests) and from dist/ (production). Threads
// start on first use, and are unref'd while idle so they never keep the process alive.
import { createRequire } from "node:module";
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import { FairQueue } from "./fair-queue.js";

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

/** No room for the check: every thread busy and the queue (or this client's share of it) full; 503 + Retry-After. */
export class HashPoolFullError extends Error {
  override readonly name = "HashPoolFullError";
}

export interface HashPoolOptions {
  /** Threads at most (the config's `logins.hashWorkers`, resolved by hashThreads()). */
  threads: number;
  /** Checks allowed to wait for a thread, all clients together; more are refused. */
  maxQueued: number;
  /** Checks one client may have waiting (default: maxQueued, i.e. no share of its own). */
  maxQueuedPerClient?: number;
  /** Called once per bcrypt check a thread finished: the CPU spent on passwords, for the metrics. */
  onHashed?: () => void;
}

/** `logins.hashWorkers`: "auto" is one less than the cores (the event loop keeps one), at least one. */
export function hashThreads(setting: "auto" | number): number {
  return setting === "auto" ? Math.max(1, availableParallelism() - 1) : setting;
}

/** Whose check it is: its share of the queue (fair-queue.ts), and whether it may take the last free thread. */
export interface HashClient {
  /** An IPv4 address or IPv6 /64 (client-network.ts); "" for checks of no one in particular. */
  key: string;
  /** Most of its failure budget used: its checks wait while others', and never take the last free thread. */
  suspect?: boolean;
}

interface Task {
  id: number;
  client: string;
  password: string;
  hash: string;
  /** Shared by the checks of one compareAll(): once one is refused, the others are not worth running. */
  batch: { refused: boolean };
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
  /** Checks waiting for a thread and those running, per client. */
  private readonly queue: FairQueue<Task>;
  private nextId = 0;
  private closed = false;

  constructor(private readonly options: HashPoolOptions) {
    if (!Number.isInteger(options.threads) || options.threads < 1) throw new RangeError("HashPool needs at least one thread");
    if (!Number.isInteger(options.maxQueued) || options.maxQueued < 0) throw new RangeError("HashPool maxQueued must be ≥ 0");
    const perClient = options.maxQueuedPerClient ?? options.maxQueued;
    if (!Number.isInteger(perClient) || perClient < 0) throw new RangeError("HashPool maxQueuedPerClient must be ≥ 0");
    this.queue = new FairQueue({ slots: options.threads, maxQueued: options.maxQueued, maxQueuedPerClient: perClient });
  }

  /** Checks running on a thread right now. */
  get running(): number {
    return this.queue.running;
  }

  /** Checks waiting for a thread. */
  get queued(): number {
    return this.queue.waiting;
  }

  /** Checks `client` has waiting for a thread. */
  queuedFor(client: string): number {
    return this.queue.waitingFor(client);
  }

  /** Threads started (at most options.threads). */
  get size(): number {
    return this.threads.size;
  }

  /**
   * bcrypt.compareSync(password, hash) on a worker thread. Rejects with HashPoolFullError when there is no
   * room for it (see compareAll), and with an Error if the pool is closed or a thread dies meanwhile.
   */
  async compare(password: string, hash: string, client?: HashClient): Promise<boolean> {
    const [ok] = await this.compareAll([{ password, hash }], client);
    return ok!;
  }

  /**
   * Several checks for one client (fair-queue.ts: an IPv4 address or IPv6 /64), taken whole or not at all:
   * when there is no room for every one of them, none is started (a half-accepted batch would burn a thread
   * for an answer nobody waits for). Rejects with HashPoolFullError when this client's share of the queue
   * is full, or the whole queue is and this client already has its fair part of it; a check already
   * waiting can lose its place the same way to a client with fewer waiting (it rejects then).
   */
  compareAll(checks: readonly { password: string; hash: string }[], { key: client, suspect = false }: HashClient = { key: "" }): Promise<boolean[]> {
    if (this.closed) return Promise.reject(new Error("the password hashing pool is closed"));
    const batch = { refused: false };
    const settled: Promise<boolean>[] = [];
    const tasks = checks.map(({ password, hash }) => {
      let task!: Task;
      settled.push(new Promise<boolean>((resolve, reject) => (task = { id: this.nextId++, client, password, hash, batch, resolve, reject })));
      return task;
    });
    const admission = this.queue.push(client, tasks, suspect);
    if (!admission.admitted) {
      // Nobody awaits these promises: settle them quietly, the caller gets the one rejection below.
      for (const promise of settled) promise.catch(() => {});
      for (const task of tasks) task.reject(new HashPoolFullError("too many password checks are waiting"));
      return Promise.reject(new HashPoolFullError(admission.reason === "client" ? "too many password checks from this client are waiting" : "too many password checks are waiting"));
    }
    for (const { item } of admission.pushedOut) this.refuse(item, new HashPoolFullError("a password check lost its place to a client with fewer waiting"));
    this.pump();
    return Promise.all(settled);
  }

  /** Refuses what waits, stops every thread (a check in progress is rejected). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const task of this.queue.drain()) task.reject(new Error("the password hashing pool is closed"));
    this.idle.length = 0;
    await Promise.all([...this.threads].map((thread) => thread.worker.terminate()));
  }

  private refuse(task: Task, err: Error): void {
    task.batch.refused = true;
    task.reject(err);
  }

  /** Starts what waits on free threads, in the fair queue's order. */
  private pump(): void {
    if (this.closed) return;
    for (let next = this.queue.next(); next; next = this.queue.next()) {
      const task = next.item;
      if (task.batch.refused) {
        // A sibling lost its place: the caller has its answer already.
        this.queue.done(task.client);
        task.reject(new HashPoolFullError("another check of the same login was refused"));
        continue;
      }
      this.run(this.idle.pop() ?? this.spawn(), task);
    }
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
      this.queue.done(task.client);
      this.options.onHashed?.();
      task.resolve(message.ok);
      if (this.closed) return;
      thread.worker.unref();
      this.idle.push(thread);
      this.pump();
    });
    // An uncaught error ends the worker; "exit" follows and does the cleanup.
    worker.on("error", (err) => (failure = `: ${err.message}`));
    worker.once("exit", () => {
      this.threads.delete(thread);
      const at = this.idle.indexOf(thread);
      if (at >= 0) this.idle.splice(at, 1);
      const task = thread.task;
      thread.task = null;
      if (task) {
        this.queue.done(task.client);
        task.reject(new Error(`a password hashing thread stopped${failure}`));
      }
      // Whatever waits gets a fresh thread.
      this.pump();
    });
    return thread;
  }

  private run(thread: Thread, task: Task): void {
    thread.task = task;
    // Busy: keep the process alive until the answer is in.
    thread.worker.ref();
    thread.worker.postMessage({ id: task.id, password: task.password, hash: task.hash });
  }
}
