// Which failed requests a fault explains. A client operation is explained by a fault window when the two
// overlap in time: an operation that started before a gateway was killed and failed afterwards, or one
// that failed while the killed process was still settling, both count. Anything else is unexplained.
import type { FaultWindow, OutcomeCount } from "./result.js";

/** One client operation, as the traffic generators record it. Times are seconds since the start. */
export interface OperationRecord {
  /** e.g. "skopeo push", "loadgen small GET". */
  operation: string;
  start: number;
  end: number;
  ok: boolean;
  /** Why it failed (status, error message, client output), for the report of an unexplained one. */
  error?: string;
}

export function explainingWindow(record: OperationRecord, windows: readonly FaultWindow[]): FaultWindow | undefined {
  return windows.find((window) => record.start <= window.end && record.end >= window.start);
}

export function unexplainedFailures(records: readonly OperationRecord[], windows: readonly FaultWindow[]): OperationRecord[] {
  return records.filter((record) => !record.ok && explainingWindow(record, windows) === undefined);
}

/** Counts per operation, in the order operations first appear. */
export function countOutcomes(records: readonly OperationRecord[], windows: readonly FaultWindow[]): OutcomeCount[] {
  const counts = new Map<string, OutcomeCount>();
  for (const record of records) {
    let count = counts.get(record.operation);
    if (!count) {
      count = { operation: record.operation, ok: 0, failedInFaultWindow: 0, unexplained: 0 };
      counts.set(record.operation, count);
    }
    if (record.ok) count.ok++;
    else if (explainingWindow(record, windows)) count.failedInFaultWindow++;
    else count.unexplained++;
  }
  return [...counts.values()];
}
