// How long a supervisor waits before restarting a process that died: a process that keeps dying at once
// is restarted ever more slowly (a crash loop must not burn the CPU or flood the log), one that had run
// stably before it died is restarted quickly again.

export interface RestartBackoffOptions {
  /** The first delay, and the delay after a stable run. */
  initialMs: number;
  /** The delay doubles after each exit that came soon after a start, up to this. */
  maxMs: number;
  /** A process that ran this long before it exited was healthy: the delay starts again from initialMs. */
  stableRunMs: number;
}

export class RestartBackoff {
  #nextMs: number;

  constructor(private readonly options: RestartBackoffOptions) {
    this.#nextMs = options.initialMs;
  }

  /** The delay before restarting a process that exited after running `ranMs` (0: it never got going). */
  delayAfter(ranMs: number): number {
    if (ranMs >= this.options.stableRunMs) this.#nextMs = this.options.initialMs;
    const delayMs = this.#nextMs;
    this.#nextMs = Math.min(delayMs * 2, this.options.maxMs);
    return delayMs;
  }
}
