// Bounds on the browser's registry reads across every page a generation serves: how many run at once and
// how many bytes they may hold between them. A page's own bounds multiply by its visitors; these do not.

interface Waiting {
  bytes: number;
  start: () => void;
}

export class ReadGate {
  #running = 0;
  #bytes = 0;
  readonly #waiting: Waiting[] = [];

  constructor(
    readonly maxReads: number,
    /** Bytes reserved by the reads running: each reserves the most it may read. */
    readonly maxBytes: number,
  ) {}

  /** Runs `read` once it fits, reserving `bytes`; a signal aborted while it waits rejects without running it. */
  async run<T>(bytes: number, signal: AbortSignal | undefined, read: () => Promise<T>): Promise<T> {
    await this.#enter(bytes, signal);
    try {
      return await read();
    } finally {
      this.#running--;
      this.#bytes -= bytes;
      this.#wake();
    }
  }

  #fits(bytes: number): boolean {
    // A read bigger than the whole allowance still runs, alone.
    return this.#running < this.maxReads && (this.#bytes + bytes <= this.maxBytes || this.#running === 0);
  }

  #take(bytes: number): void {
    this.#running++;
    this.#bytes += bytes;
  }

  #enter(bytes: number, signal: AbortSignal | undefined): Promise<void> {
    signal?.throwIfAborted();
    if (this.#waiting.length === 0 && this.#fits(bytes)) {
      this.#take(bytes);
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        this.#waiting.splice(this.#waiting.indexOf(entry), 1);
        reject(signal!.reason);
      };
      const entry: Waiting = {
        bytes,
        start: () => {
          signal?.removeEventListener("abort", onAbort);
          this.#take(bytes);
          resolve();
        },
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#waiting.push(entry);
    });
  }

  #wake(): void {
    // First come, first served: a big read waiting is not overtaken by small ones forever.
    while (this.#waiting.length > 0 && this.#fits(this.#waiting[0]!.bytes)) this.#waiting.shift()!.start();
  }
}
