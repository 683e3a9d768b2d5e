// Body read buffers for relayed pulls (get-relay.ts), from one bounded pool per process. A relay reads the
// backend into a buffer and writes each read to the client; the buffer is held until that write completes,
// and the write's encrypted copy sits in TLS until the client reads it. A client that stops reading so holds
// both for as long as it is allowed to stall. 1 MiB reads make fast pulls faster (one read and one TLS write
// per MiB), so they are kept, but only a few at a time per process and only for pulls whose client has kept
// up for longer than kernel buffers can hide a stalled one: every other pull reads 64 KiB at a time. What
// stalled pulls hold in relay buffers and queued writes is then bounded by `maxBig` × 2 MiB + (stalled pulls)
// × 2 × 64 KiB, instead of 2 MiB per stalled pull.

export interface RelayBufferOptions {
  /** Bytes per read for a pull whose client keeps up (and a big buffer is free). */
  bigBytes: number;
  /** Big buffers lent at once, per process. */
  maxBig: number;
  /** Bytes per read for every other pull. */
  smallBytes: number;
}

/** A write that completes within this is one the client kept up with. */
const PROMPT_WRITE_MS = 50;
/**
 * Bytes written promptly, back to back, before a pull may read big. More than the kernel takes for a client
 * that reads nothing (on loopback ~5 MB fit into the two sockets' buffers; tcp_wmem's maximum is 4 MiB): until
 * then a stalled client looks like a fast one, and would stall holding a big buffer.
 */
const PROMOTE_AFTER_BYTES = 8 * 1024 * 1024;
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

/**
 * One relayed body's read buffer: small at first, big once its client has kept up for a while (and one is
 * free), small again after a write that waited. The socket asks for the next read's buffer right after each
 * read, while that read's bytes are still being written: a buffer replaced then is given back only once
 * that write has completed.
 */
export class ReadWindow {
  /** Where reads go. */
  private buffer: Buffer | null = null;
  /** The buffer whose bytes a client write is carrying right now. */
  private writing: Buffer | null = null;
  /** Replaced while `writing`: given back when that write completes. */
  private retired: Buffer | null = null;
  private promptBytes = 0;
  private wantBig = false;
  private released = false;

  constructor(private readonly pool: RelayBuffers) {}

  /** The buffer for the next read. */
  forRead(): Buffer {
    if (this.buffer && this.wantBig !== this.isBig(this.buffer)) {
      const next = this.wantBig ? this.pool.takeBig() : this.pool.takeSmall();
      if (next) {
        this.retire(this.buffer);
        this.buffer = next;
      }
    }
    return (this.buffer ??= this.pool.takeSmall());
  }

  /** A client write of the last read's bytes (in the read buffer) has started. */
  writeStarted(): void {
    this.writing = this.buffer;
  }

  /** That write completed after `ms`: what it carried may be read over, and its speed sizes the next reads. */
  written(bytes: number, ms: number): void {
    if (this.released) return;
    if (this.retired) this.pool.giveBack(this.retired, true);
    this.retired = null;
    this.writing = null;
    if (ms <= PROMPT_WRITE_MS) {
      this.promptBytes += bytes;
      if (this.promptBytes >= PROMOTE_AFTER_BYTES) this.wantBig = true;
    } else {
      this.promptBytes = 0;
      this.wantBig = false;
    }
  }

  /** The body is over. `reuse`: no write still refers to the buffers. */
  release(reuse: boolean): void {
    if (this.released) return;
    this.released = true;
    for (const buffer of [this.buffer, this.retired]) if (buffer) this.pool.giveBack(buffer, reuse);
    this.buffer = this.retired = this.writing = null;
  }

  private isBig(buffer: Buffer): boolean {
    return buffer.length === this.pool.options.bigBytes;
  }

  private retire(old: Buffer): void {
    if (old !== this.writing) return this.pool.giveBack(old, true);
    // Never two at once (each read's write completes before the next read), but if so the older is only counted.
    if (this.retired) this.pool.giveBack(this.retired, false);
    this.retired = old;
  }
}
