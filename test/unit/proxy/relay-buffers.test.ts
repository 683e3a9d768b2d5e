import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { RelayBuffers, type ReadWindow } from "../../../src/proxy/relay-buffers.js";

const BIG = 1024;
const SMALL = 64;

/** One read and its write, as get-relay.ts drives a window: buffer for the read, write started, buffer for the next read, write done. */
function readAndWrite(window: ReadWindow, ms: number): { read: Buffer; next: Buffer } {
  const read = window.forRead();
  window.writeStarted();
  const next = window.forRead();
  window.written(read.length, ms);
  return { read, next };
}

/** Prompt writes until the window reads big; how many it took. */
function promote(window: ReadWindow): number {
  for (let writes = 1; writes < 1_000_000; writes++) if (readAndWrite(window, 0).next.length === BIG) return writes;
  throw new Error("never promoted");
}

describe("relay read buffers (a bounded pool)", () => {
  it("starts small, reads big only after 8 MiB written promptly, and small again after a write that waited", () => {
    const pool = new RelayBuffers({ bigBytes: BIG, maxBig: 2, smallBytes: SMALL });
    const window = pool.window();
    assert.equal(window.forRead().length, SMALL);
    // 8 MiB in 64-byte writes (a stalled client's kernel buffers cannot pass for a fast client), and one more:
    // the buffer for the read after a write is chosen while that write is still going.
    assert.equal(promote(window), (8 * 1024 * 1024) / SMALL + 1);
    assert.equal(pool.bigInUse, 1);
    // A write that waited: the next read but one is small (the next read's buffer was already handed out).
    const { next } = readAndWrite(window, 500);
    assert.equal(next.length, BIG);
    assert.equal(readAndWrite(window, 0).next.length, SMALL);
    assert.equal(pool.bigInUse, 0);
  });

  it("never lends more big buffers than maxBig; the others keep reading small", () => {
    const pool = new RelayBuffers({ bigBytes: BIG, maxBig: 2, smallBytes: SMALL });
    const windows = [pool.window(), pool.window(), pool.window()];
    promote(windows[0]!);
    promote(windows[1]!);
    for (let i = 0; i < 200_000; i++) assert.equal(readAndWrite(windows[2]!, 0).next.length, SMALL);
    assert.equal(pool.bigInUse, 2);
    // One is given back: the third gets it at its next prompt write.
    windows[0]!.release(true);
    assert.equal(readAndWrite(windows[2]!, 0).next.length, BIG);
    assert.equal(pool.bigInUse, 2);
  });

  it("gives a buffer replaced mid-write back only once that write completes, and never lends it meanwhile", () => {
    const pool = new RelayBuffers({ bigBytes: BIG, maxBig: 1, smallBytes: SMALL });
    const window = pool.window();
    promote(window);
    // A big read whose write waits: the socket asks for the next buffer at once, and reads into it once the write is done.
    const read = window.forRead();
    assert.equal(read.length, BIG);
    window.writeStarted();
    const reading = window.forRead();
    window.written(read.length, 500); // slow: reads after the next one go small
    // The next read's bytes (in `reading`, big) are being written when the socket asks for a buffer again.
    window.writeStarted();
    const next = window.forRead();
    assert.equal(reading.length, BIG);
    assert.equal(next.length, SMALL);
    // `reading` (big) is still in a write: nobody else gets it yet.
    const other = pool.window();
    for (let i = 0; i <= (8 * 1024 * 1024) / SMALL + 1; i++) assert.equal(readAndWrite(other, 0).next.length, SMALL);
    window.written(reading.length, 0);
    // Now it is free.
    assert.equal(readAndWrite(other, 0).next, reading);
  });

  it("counts a released window's buffers back, reusing them only when no write still refers to them", () => {
    const pool = new RelayBuffers({ bigBytes: BIG, maxBig: 1, smallBytes: SMALL });
    const cut = pool.window();
    promote(cut);
    const inFlight = cut.forRead();
    cut.writeStarted();
    cut.release(false); // the client went away mid-write
    assert.equal(pool.bigInUse, 0);
    const next = pool.window();
    promote(next);
    assert.notEqual(next.forRead(), inFlight, "a buffer still referred to by a write was lent again");
    // A late write callback changes nothing.
    cut.written(inFlight.length, 0);
    assert.equal(pool.bigInUse, 1);
  });
});
