// What the traffic did, as it happened: every client operation with its outcome, the small GETs' latencies,
// and every push that got a success answer (to be pulled back and checked at the end).
import type { OperationRecord } from "./attribution.js";
import type { Latency } from "./percentile.js";

export interface PushRecord {
  client: string;
  site: "hub" | "team";
  /** host:port/repository:tag as the client pushed it, for messages. */
  reference: string;
  repository: string;
  tag: string;
  /** The manifest digest the client was told. */
  manifestDigest: string;
  /** Bytes of layers pushed (0 when the client does not say). */
  bytes: number;
}

export function wallClockMs(): number {
  return performance.timeOrigin + performance.now();
}

export class Recorder {
  readonly records: OperationRecord[] = [];
  readonly latencies: Latency[] = [];
  readonly pushes: PushRecord[] = [];
  /** Milliseconds since the epoch, in a form every thread agrees on (performance.now() is per thread). */
  readonly startedAt = wallClockMs();

  /** Seconds since the run started. */
  now(): number {
    return (wallClockMs() - this.startedAt) / 1000;
  }

  /** Runs `operation`, recording its outcome; a throw is a failure whose message is kept. Never throws. */
  async track<T>(name: string, operation: () => Promise<T>): Promise<T | undefined> {
    const start = this.now();
    try {
      const value = await operation();
      this.records.push({ operation: name, start, end: this.now(), ok: true });
      return value;
    } catch (err) {
      const message = (err as Error).message ?? String(err);
      this.records.push({ operation: name, start, end: this.now(), ok: false, error: message.replace(/\s+/g, " ").slice(0, 300) });
      return undefined;
    }
  }

  /** Operations that ended in (from, to]. */
  completedBetween(from: number, to: number): OperationRecord[] {
    return this.records.filter((r) => r.end > from && r.end <= to);
  }
}

/** Calls `body` again and again (a pause between) until stop() is called; stop() waits for the last call. */
export function repeat(body: () => Promise<void>, pauseMs: number): { stop(): Promise<void> } {
  let running = true;
  const loop = (async () => {
    while (running) {
      await body();
      if (running) await new Promise((resolve) => setTimeout(resolve, pauseMs));
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
    },
  };
}
