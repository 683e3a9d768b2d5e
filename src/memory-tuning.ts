// Memory settings for every gateway process. main.ts imports this module first, so the young-generation
// setting applies before the rest of the gateway is loaded (ES modules are evaluated in import order): in
// the single process, a cluster's primary and each of its workers (which run main.js too), however node
// was started (`node dist/main.js`, `npm start`, the Dockerfile's ENTRYPOINT).
import v8 from "node:v8";
import { runInNewContext } from "node:vm";

// The young generation. V8 starts it at two 1 MB semi-spaces and doubles them, up to 16 MB each (Node 20;
// 32 MB on Node 26), whenever much survives a scavenge, as during module loading and under load. Never
// grown, it stays at 2 MB instead of up to 32 MB (Node 20) or 64 MB (Node 26) resident per process. V8 reads the growth factor at every growth, so setting it now takes
// effect; the maximum (--max-semi-space-size) can only be given on the command line or in NODE_OPTIONS, and
// when it or the growth factor is given there, it is left alone.
const SEMI_SPACE_FLAGS = /^--(max|min)[-_]semi[-_]space[-_]size|^--semi[-_]space[-_]growth[-_]factor/;

/**
 * Every V8 flag the gateway sets on itself. v8.setFlagsFromString ignores a flag V8 does not know, without a
 * word, so test/unit/v8-flags.test.ts checks each one, and its effect, on every Node major the tests run on.
 */
export const V8_FLAGS = {
  youngGenerationFixed: "--semi-space-growth-factor=1",
  heapGrowingFactor2: "--heap-growing-percent=100",
  exposeGc: "--expose-gc",
  hideGc: "--no-expose-gc",
} as const;

/** True when the operator gave node a flag matching `flag` (on the command line or in NODE_OPTIONS). */
function flagGiven(flag: RegExp, execArgv: readonly string[], nodeOptions: string | undefined): boolean {
  return [...execArgv, ...(nodeOptions ?? "").split(/\s+/)].some((arg) => flag.test(arg));
}

export const youngGenerationGiven = (execArgv: readonly string[], nodeOptions: string | undefined): boolean =>
  flagGiven(SEMI_SPACE_FLAGS, execArgv, nodeOptions);

if (!youngGenerationGiven(process.execArgv, process.env.NODE_OPTIONS)) v8.setFlagsFromString(V8_FLAGS.youngGenerationFixed);

const GROWING_FLAG = /^--heap[-_]growing[-_]percent/;

export const heapGrowingGiven = (execArgv: readonly string[], nodeOptions: string | undefined): boolean =>
  flagGiven(GROWING_FLAG, execArgv, nodeOptions);

/**
 * The settings of a process that moves blobs (the single process, a cluster worker), made before any request.
 *
 * V8 counts the ArrayBuffers that a body stream allocates (a 64 KiB read buffer and a 64 KiB parser copy per
 * chunk, all short-lived) against the old generation's allocation limit. With V8's dynamic heap growing
 * factor, a GC-heavy moment (a burst of small requests, CPU contention) sets that limit so close to the live
 * heap that blob transfers from then on run back-to-back major GCs (≈15 per 256 MiB): twice the CPU per GB
 * (docs/profile.md §2). paceReadBuffers has those buffers freed by scavenges before they count; a fixed factor
 * still spares bursts of small requests most major GCs. It is 2 (limit = 2 × live heap): with 4, the garbage
 * a mix of pulls, pushes and small requests leaves in the old generation kept each worker ~20 MB larger.
 * V8 reads the factor at each limit computation, so setting it now works; a value given on the command line
 * or in NODE_OPTIONS wins.
 */
export function tuneForTransfers(): void {
  if (!heapGrowingGiven(process.execArgv, process.env.NODE_OPTIONS)) v8.setFlagsFromString(V8_FLAGS.heapGrowingFactor2);
  paceReadBuffers();
}

/** Read buffers waiting for a scavenge beyond this (above what stays allocated) get one at once. */
const WAITING_LIMIT = 4 * 1024 * 1024;
/** How often the buffers are looked at while they come and go, and when nothing moves. */
const BUSY_CHECK_MS = 20;
const QUIET_CHECK_MS = 250;
/** What stays allocated is the lowest level seen over a window this long (or the one before). */
const FLOOR_WINDOW_MS = 5000;

/**
 * Scavenges as soon as read buffers pile up, in a process that moves blobs (single process, cluster worker).
 * Every socket read is a new buffer outside the V8 heap, 64 KB from a backend: dead as soon as it is written
 * on, but freed only by the next scavenge, and scavenges come after 1 MB of JS allocation, which a blob
 * pull does only every ~30 MB of buffers (and the malloc heap keeps that high-water mark afterwards). V8
 * counts these buffers towards starting a scavenge only for buffers JS allocates itself. A scavenge of a
 * young generation this small takes ~0.3 ms.
 */
export function paceReadBuffers(): void {
  // The one way to ask V8 for a scavenge: the gc() of --expose-gc, taken from a context created while the
  // flag is on; the flag goes off again at once (no other context gets a gc global).
  v8.setFlagsFromString(V8_FLAGS.exposeGc);
  const gc = runInNewContext("gc") as (options: { type: "minor" }) => void;
  v8.setFlagsFromString(V8_FLAGS.hideGc);
  let floor = Infinity;
  let windowFloor = Infinity;
  let windowStart = performance.now();
  let previous = 0;
  let busyUntil = 0;
  const check = () => {
    const now = performance.now();
    const external = v8.getHeapStatistics().external_memory;
    if (external > previous) busyUntil = now + 1000;
    previous = external;
    floor = Math.min(floor, external);
    windowFloor = Math.min(windowFloor, external);
    if (now - windowStart > FLOOR_WINDOW_MS) {
      // Buffers that stay (caches, connections) raise the floor within two windows: no scavenge for them.
      floor = windowFloor;
      windowFloor = external;
      windowStart = now;
    }
    if (external - floor > WAITING_LIMIT) gc({ type: "minor" });
    setTimeout(check, now < busyUntil ? BUSY_CHECK_MS : QUIET_CHECK_MS).unref();
  };
  setTimeout(check, QUIET_CHECK_MS).unref();
}
