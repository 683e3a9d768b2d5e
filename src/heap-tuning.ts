// V8 settings for a process that moves blobs (a single-process gateway, a cluster worker).
import v8 from "node:v8";

const GROWING_FLAG = /^--heap[-_]growing[-_]percent/;

/**
 * V8 counts the ArrayBuffers that a body stream allocates (a 64 KiB read buffer and a 64 KiB parser copy
 * per chunk, all short-lived) against the old generation's allocation limit. With the dynamic heap growing
 * factor, a GC-heavy moment (a burst of small requests, CPU contention) sets that limit so close to the live
 * heap that blob transfers from then on run back-to-back major GCs (≈15 per 256 MiB): twice the CPU per GB
 * (docs/profile.md §2). A fixed factor of 4 (limit = 4 × live heap, ~80 MB for a ~20 MB heap) keeps the
 * limit above that churn. V8 reads the factor at each limit computation, so setting it at start works; a
 * value given on the command line or in NODE_OPTIONS wins.
 */
export function tuneHeapForTransfers(): void {
  if (!heapGrowingGiven(process.execArgv, process.env.NODE_OPTIONS)) v8.setFlagsFromString("--heap-growing-percent=300");
}

/** True when the operator chose the growing factor (node's arguments or NODE_OPTIONS). */
export function heapGrowingGiven(execArgv: readonly string[], nodeOptions: string | undefined): boolean {
  return [...execArgv, ...(nodeOptions ?? "").split(/\s+/)].some((arg) => GROWING_FLAG.test(arg));
}
