// Body read buffers for relayed pulls (get-relay.ts), from one bounded pool per process. A relay reads the
// backend into a buffer and writes each read to the client; the buffer is held until that write completes,
// and the write's encrypted copy sits in TLS until the client reads it. A client that stops reading so holds
// both for as long as it is allowed to stall. 1 MiB reads make fast pulls faster (one read and one TLS write
// per MiB), so they are kept, but only a few at a time per process and only for pulls whose client keeps up:
// every other pull reads 64 KiB at a time. What stalled pulls hold is then bounded by
// `maxBig` × 2 MiB + (stalled pulls) × 2 × 64 KiB, instead of 2 MiB per stalled pull.

export interface RelayBufferOptions {
  /** Bytes per read for a pull whose client keeps up (and a big buffer is free). */
  bigBytes: number;
  /** Big buffers lent at once, per process. */
  maxBig: number;
  /** Bytes per read for every other pull. */
  smallBytes: number;
}

/**
 * A write that completes within this is one the client kept up with: its next read may be big. Slower, and the
 * pull gives its big buffer back: a client that has started to lag is the one most likely to stall next.
 */
const PROMPT_WRITE_MS = 50;
/** Spare buffers kept for the next pulls (beyond them, buffers given back are left to the garbage collector). */
const MAX_SPARE_BIG = 2;
const MAX_SPARE_SMALL = 16;

export class RelayBuffers {
  private lentBig = 0;
  private readonly spareBig: Buffer[] = [];
  private readonly spareSmall: Buffer[] = [];

  constructor(readonly options: RelayBufferOptions) {
    // A buffer's size tells which kind it is.
    if (options.bigBytes <= options.smallBytes) throw new Error("relay buffers: bigBytes must exceed smallBytes");
  }

  /** Big buffers lent right now. */
  get bigInUse(): number {
    return this.lentBig;
  }

  /** A read window for one relayed body. */
  window(): ReadWindow {
    return new ReadWindow(this);
  }

  takeBig(): Buffer | null {
    if (this.lentBig >= this.options.maxBig) return null;
    this.lentBig++;
    return this.spareBig.pop() ?? Buffer.allocUnsafe(this.options.bigBytes);
  }

  takeSmall(): Buffer {
    return this.spareSmall.pop() ?? Buffer.allocUnsafe(this.options.smallBytes);
  }

  /**
   * `buffer` is no longer this pull's. `reuse`: nothing refers to its bytes any more (the write that carried
   * them completed), so another pull may read into it; otherwise it is only counted as returned.
   */
  giveBack(buffer: Buffer, reuse: boolean): void {
    const big = buffer.length === this.options.bigBytes;
    if (big) this.lentBig--;
    if (!reuse) return;
    const spare = big ? this.spareBig : this.spareSmall;
    if (spare.length < (big ? MAX_SPARE_BIG : MAX_SPARE_SMALL)) spare.push(buffer);
  }
}

/** One relayed body's read buffer: big while its client keeps up and one is free, small otherwise. */
export class ReadWindow {
  private buffer: Buffer | null = null;
  private released = false;

  constructor(private readonly pool: RelayBuffers) {}

  /** The buffer for the next read. Starts small: a client has to show it keeps up before it gets a big one. */
  current(): Buffer {
    return (this.buffer ??= this.pool.takeSmall());
  }

  /** The last read's bytes were written to the client in `ms`, and the buffer is free again: the next read's size follows. */
  written(ms: number): void {
    if (this.released || !this.buffer) return;
    const big = this.buffer.length === this.pool.options.bigBytes;
    if (ms <= PROMPT_WRITE_MS) {
      if (big) return;
      const next = this.pool.takeBig();
      if (!next) return;
      this.pool.giveBack(this.buffer, true);
      this.buffer = next;
    } else if (big) {
      this.pool.giveBack(this.buffer, true);
      this.buffer = null;
    }
  }

  /** The body is over. `reuse`: no write still refers to the buffer. */
  release(reuse: boolean): void {
    if (this.released) return;
    this.released = true;
    if (this.buffer) this.pool.giveBack(this.buffer, reuse);
    this.buffer = null;
  }
}
