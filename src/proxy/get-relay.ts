// Blob and manifest GETs to plain-HTTP backends, relayed socket to socket without Node's HTTP client.
// Blob pulls are most of a registry's bytes, and Node's client copies every body chunk out of its
// parser into a new buffer, allocates another 64 KiB buffer for every socket read, and runs the stream
// machinery (pause, drain, resume) per chunk; manifest GETs are most of its requests, and http-proxy-3 plus
// Node's client cost about a third of the gateway's CPU per request. Here the backend socket reads into one
// reusable buffer (net's `onread`), each read is one write to the client, and the socket reads again once
// that write has let go of the buffer: backpressure without copies or garbage. The buffers come from one
// bounded pool (relay-buffers.ts): 1 MiB for a few pulls whose client keeps up, 64 KiB for the rest, so a
// client that stops reading holds little. docs/profile.md has the measurements.
//
// Deliberately narrow, and strict where it reads: an answer whose head is plainly valid HTTP/1.x and whose
// body is framed by one Content-Length (or that has none: 204, 304) is relayed. Anything else (1xx,
// Transfer-Encoding, no length, a control character, an oversized head) is handed over unread, as a stream
// of the bytes the backend sent, for Node's client to parse (`onUnsupported`): the backend is asked once, and
// everything but the plain case is read by the same parser as every other answer.
import net from "node:net";
import { Duplex } from "node:stream";
import type { ReadWindow, RelayBuffers } from "./relay-buffers.js";

/** Response heads larger than this are handed over (Node's client then refuses them, as it allows 16 KiB). */
const MAX_HEAD_BYTES = 16 * 1024;
/** Reads before and between bodies (response heads, and nothing else) go to a small buffer. */
const HEAD_READ_BYTES = 16 * 1024;

const STATUS_LINE = /^HTTP\/1\.([01]) ([2-9]\d\d)(?: ([\t\x20-\x7e\x80-\xff]*))?$/;
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** A field value Node's server will write again as it is: no control characters but HTAB (RFC 9110 §5.5). */
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
const CONTENT_LENGTH = /^\d{1,15}$/;
/** An origin-form target of visible ASCII (the pipeline has checked it; this is the last writer before the socket). */
const TARGET = /^\/[\x21-\x7e]*$/;
/** TCP keep-alive probes on backend connections, as Node's agent sets them. */
const TCP_KEEPALIVE_MS = 1000;

export interface GetRelayOptions {
  /** Where body read buffers come from (one pool for the process). */
  buffers: RelayBuffers;
  /** A backend silent this long (both directions: a stalled client stalls it too) is given up on. */
  idleTimeoutMs: number;
  /** How long an unused pooled connection is kept. */
  keepAliveMs: number;
  /** Unused pooled connections kept per backend. */
  maxFree: number;
}

export interface RelayHead {
  status: number;
  statusMessage: string;
  rawHeaders: string[];
}

/** What to do with an answer once its head is known. */
export type HeadVerdict = "relay" | "discard" | "abort";

export interface RelayHandlers {
  /**
   * The answer's head. `decide` says what becomes of its body, at once or later: until then the connection
   * reads nothing more (what already came waits for the verdict).
   */
  onHead(head: RelayHead, decide: (verdict: HeadVerdict) => void): void;
  /** A body chunk; call `done` once the chunk's bytes are no longer needed (the client write's callback). */
  onBody(chunk: Buffer, done: () => void): void;
  /** The body is complete (`last`, if any, is its final chunk); call `done` once `last` is written. */
  onEnd(last: Buffer | null, done: () => void): void;
  /**
   * An answer this does not relay: `answer` is the connection's stream from the first byte the backend sent
   * (what is written to it is dropped: the request went already), for Node's client to read. It fails with
   * ETIMEDOUT after idleTimeoutMs of silence.
   */
  onUnsupported(answer: Duplex): void;
  /** The connection failed before a head (err.code as Node's client reports it; ETIMEDOUT after idleTimeoutMs). */
  onFailure(err: NodeJS.ErrnoException): void;
  /** The backend went away in the middle of the body. */
  onCut(): void;
}

export interface ParsedHead extends RelayHead {
  /** Body bytes that follow the head. */
  length: number;
  /** The backend closes the connection after this answer. */
  close: boolean;
  /** The backend's `Keep-Alive: timeout=N` hint, in ms: how long it keeps the connection open once idle. */
  keepAliveMs: number | null;
}

/** The head of a GET's answer (without its final CRLF CRLF), or null when it is not one this relays. */
export function parseResponseHead(text: string): ParsedHead | null {
  const lines = text.split("\r\n");
  const statusLine = STATUS_LINE.exec(lines[0]!);
  if (!statusLine) return null;
  const status = Number(statusLine[2]);
  const rawHeaders: string[] = [];
  let length: number | null = null;
  let keepAliveMs: number | null = null;
  let close = statusLine[1] === "0";
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]!;
    const colon = line.indexOf(":");
    if (colon <= 0) return null;
    const name = line.slice(0, colon);
    // Also refuses obs-fold continuation lines and whitespace before the colon.
    if (!TOKEN.test(name)) return null;
    const value = line.slice(colon + 1).replace(/^[\t ]+|[\t ]+$/g, "");
    if (!FIELD_VALUE.test(value)) return null;
    const lower = name.toLowerCase();
    if (lower === "transfer-encoding") return null;
    if (lower === "content-length") {
      // Even a repeated identical one: Node's client refuses it (502), and the relay answers as it would.
      if (!CONTENT_LENGTH.test(value) || length !== null) return null;
      length = Number(value);
    }
    if (lower === "keep-alive") {
      const hint = /(?:^|[\s,])timeout=(\d{1,6})(?:$|[\s,])/i.exec(value);
      if (hint) keepAliveMs = Number(hint[1]) * 1000;
    }
    if (lower === "connection" && value.split(",").some((token) => token.trim().toLowerCase() === "close")) close = true;
    rawHeaders.push(name, value);
  }
  const bodiless = status === 204 || status === 304;
  if (bodiless) {
    // A length on an answer that cannot have a body is not one this trusts to frame the next.
    if (length !== null && length !== 0) return null;
    return { status, statusMessage: statusLine[3] ?? "", rawHeaders, length: 0, close, keepAliveMs };
  }
  if (length === null) return null;
  return { status, statusMessage: statusLine[3] ?? "", rawHeaders, length, close, keepAliveMs };
}

/** The request head for `target` with `headers` (forwardRequestHeaders' result), or null when one is not plainly valid. */
export function requestHead(target: string, headers: Record<string, string | string[] | undefined>): string | null {
  if (!TARGET.test(target)) return null;
  let text = `GET ${target} HTTP/1.1\r\n`;
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    if (!TOKEN.test(name)) return null;
    for (const v of Array.isArray(value) ? value : [value]) {
      if (!FIELD_VALUE.test(v)) return null;
      text += `${name}: ${v}\r\n`;
    }
  }
  return `${text}\r\n`;
}

class Connection {
  readonly socket: net.Socket;
  private readonly small = Buffer.allocUnsafe(HEAD_READ_BYTES);
  /** The body's read buffer, while a body is read. */
  private window: ReadWindow | null = null;
  private handlers: RelayHandlers | null = null;
  private headBytes: Buffer | null = null;
  private inBody = false;
  private discarding = false;
  private left = 0;
  private answered = false;
  private timedOut = false;
  /** A head whose verdict is still to come, with the body bytes read meanwhile. */
  private undecided: { early: Buffer[]; handlers: RelayHandlers; paused: boolean } | null = null;
  /** The connection's stream once its answer is handed over (onUnsupported). */
  private handoff: Duplex | null = null;
  reusable = true;
  requests = 0;
  /** How long the backend keeps this connection once idle, when it said so (Keep-Alive: timeout=N). */
  backendKeepAliveMs: number | null = null;

  constructor(
    private readonly pool: GetRelay,
    port: number,
    host: string,
    private readonly onIdle: (conn: Connection) => void,
  ) {
    this.socket = net.connect({
      port,
      host,
      noDelay: true,
      onread: {
        // Asked after every read, for the next: body bytes go to the body's read buffer, everything else to the
        // small one. Not while a head awaits its verdict: the body may be over before this buffer is read into
        // (given back to the pool for another pull), and what comes meanwhile is copied anyway.
        buffer: () => (this.inBody && this.left > 0 && !this.undecided ? (this.window ??= pool.options.buffers.window()).forRead() : this.small),
        callback: (n, buf) => this.onRead(n, buf as Buffer),
      },
    });
    this.socket.setKeepAlive(true, TCP_KEEPALIVE_MS);
    this.socket.on("error", (err: NodeJS.ErrnoException) => this.onGone(err));
    this.socket.on("close", () => this.onGone());
    this.socket.on("timeout", () => {
      this.timedOut = true;
      this.socket.destroy();
    });
  }

  /** A failure before any byte came back on a connection that served before: the backend had closed it. */
  get stale(): boolean {
    return this.requests > 1 && !this.answered && !this.timedOut;
  }

  start(request: string, handlers: RelayHandlers): void {
    this.handlers = handlers;
    this.headBytes = null;
    this.inBody = false;
    this.discarding = false;
    this.answered = false;
    this.timedOut = false;
    this.requests++;
    this.socket.ref();
    this.socket.setTimeout(this.pool.options.idleTimeoutMs);
    this.socket.write(request, "latin1");
  }

  abort(): void {
    this.reusable = false;
    this.handlers = null;
    this.undecided = null;
    this.dropWindow();
    this.socket.destroy();
  }

  /** The body ends unfinished: its buffer may still be in a client write that never completes, so it is not reused. */
  private dropWindow(): void {
    this.window?.release(false);
    this.window = null;
  }

  private onRead(n: number, buf: Buffer): boolean {
    this.answered = true;
    if (this.handoff) {
      // Copied: the read buffer is reused. Backpressure from Node's client pauses the socket.
      if (this.handoff.push(Buffer.from(buf.subarray(0, n)))) return true;
      this.socket.pause();
      return false;
    }
    if (this.undecided) {
      // Copied: the read buffer is reused. Nothing more is read until the verdict.
      this.undecided.early.push(Buffer.from(buf.subarray(0, n)));
      this.undecided.paused = true;
      this.socket.pause();
      return false;
    }
    const handlers = this.handlers;
    if (!handlers) {
      // Bytes nobody asked for: this connection's framing can no longer be trusted.
      this.abort();
      return false;
    }
    if (!this.inBody) return this.onHeadBytes(Buffer.from(buf.subarray(0, n)), handlers);
    // The first read after a verdict that came later went to the small buffer (see `buffer`). One that ends the
    // body is copied: the connection's next answer reads into that buffer while the last write may still
    // refer to it. Otherwise the read waits for its write like any other.
    if (buf === this.small && n >= this.left) return this.onBodyBytes(Buffer.from(buf.subarray(0, n)), handlers, true);
    return this.onBodyBytes(buf.subarray(0, n), handlers, false);
  }

  private onHeadBytes(bytes: Buffer, handlers: RelayHandlers): boolean {
    const all = this.headBytes ? Buffer.concat([this.headBytes, bytes]) : bytes;
    const end = all.indexOf("\r\n\r\n");
    if (end < 0) {
      // Too long, or lines ended by a bare LF (which this never takes): Node's client answers at once.
      if (all.length > MAX_HEAD_BYTES || all.includes("\n\n")) this.handOver(all, handlers);
      else this.headBytes = all;
      return true;
    }
    this.headBytes = null;
    const head = end <= MAX_HEAD_BYTES ? parseResponseHead(all.toString("latin1", 0, end)) : null;
    if (!head) {
      this.handOver(all, handlers);
      return true;
    }
    if (head.close) this.reusable = false;
    this.backendKeepAliveMs = head.keepAliveMs;
    this.inBody = true;
    this.left = head.length;
    // `rest` is a buffer of its own, not the reused read buffer.
    const undecided = { early: [all.subarray(end + 4)], handlers, paused: false };
    this.undecided = undecided;
    handlers.onHead(head, (verdict) => this.decide(undecided, verdict));
    // Still undecided: reading goes on until the next read, which waits (see onRead).
    return !this.socket.destroyed;
  }

  private decide(undecided: NonNullable<Connection["undecided"]>, verdict: HeadVerdict): void {
    // The connection failed or was aborted meanwhile.
    if (this.undecided !== undecided) return;
    this.undecided = null;
    if (verdict === "abort") {
      this.abort();
      return;
    }
    this.discarding = verdict === "discard";
    const { early, handlers } = undecided;
    const rest = early.length === 1 ? early[0]! : Buffer.concat(early);
    if (this.left === 0) {
      if (rest.length) this.reusable = false;
      this.finish(null, handlers, true);
    } else if (rest.length > 0) this.onBodyBytes(rest, handlers, true);
    if (undecided.paused && !this.socket.destroyed) this.socket.resume();
  }

  private onBodyBytes(view: Buffer, handlers: RelayHandlers, owned: boolean): boolean {
    if (view.length > this.left) {
      // More than the announced length: the surplus is dropped and the connection not reused.
      this.reusable = false;
      view = view.subarray(0, this.left);
    }
    this.left -= view.length;
    if (this.left === 0) {
      this.finish(this.discarding ? null : view, handlers, owned || this.discarding);
      return true;
    }
    if (owned || this.discarding) {
      if (!this.discarding) handlers.onBody(view, () => {});
      return true;
    }
    // Nothing more is read into the buffer until the client's write has let go of it; how long that took
    // sizes the next read.
    let sync = true;
    let released = false;
    const window = this.window;
    const writing = performance.now();
    window?.writeStarted();
    handlers.onBody(view, () => {
      if (released) return;
      released = true;
      window?.written(view.length, performance.now() - writing);
      if (!sync && !this.socket.destroyed) this.socket.resume();
    });
    sync = false;
    if (released) return true;
    this.socket.pause();
    return false;
  }

  private finish(last: Buffer | null, handlers: RelayHandlers, lastIsOwned: boolean): void {
    this.handlers = null;
    this.inBody = false;
    this.socket.setTimeout(0);
    const window = this.window;
    this.window = null;
    const done = () => window?.release(true);
    handlers.onEnd(last, done);
    // A `last` that is not a view of the read buffer frees it at once.
    if (lastIsOwned || !last) done();
    if (this.reusable && !this.socket.destroyed) this.onIdle(this);
    else this.socket.destroy();
  }

  /** The answer so far (`bytes`) and the rest of the connection go to Node's client; never reused. */
  private handOver(bytes: Buffer, handlers: RelayHandlers): void {
    this.reusable = false;
    this.handlers = null;
    const socket = this.socket;
    const answer = new Duplex({
      read: () => {
        if (!socket.destroyed) socket.resume();
      },
      write: (_chunk, _encoding, done) => done(),
      destroy: (err, done) => {
        socket.destroy();
        done(err);
      },
    });
    this.handoff = answer;
    answer.push(bytes);
    handlers.onUnsupported(answer);
  }

  private onGone(err?: NodeJS.ErrnoException): void {
    this.reusable = false;
    this.undecided = null;
    this.dropWindow();
    this.pool.forget(this);
    if (this.handoff) {
      if (this.timedOut) this.handoff.destroy(Object.assign(new Error("the backend did not answer in time"), { code: "ETIMEDOUT" }));
      else if (err) this.handoff.destroy(err);
      else this.handoff.push(null);
      return;
    }
    const handlers = this.handlers;
    this.handlers = null;
    if (!handlers) return;
    if (this.inBody) {
      handlers.onCut();
      return;
    }
    const failure: NodeJS.ErrnoException = this.timedOut ? new Error("the backend did not answer in time") : (err ?? new Error("the backend closed the connection"));
    if (this.timedOut) failure.code = "ETIMEDOUT";
    else failure.code ??= "ECONNRESET";
    handlers.onFailure(failure);
  }
}

/** Keep-alive connections per backend origin. */
export class GetRelay {
  private readonly free = new Map<string, Connection[]>();
  /** Backend connections carrying a request right now (an answer handed over counts until it is closed). */
  inUse = 0;
  private closed = false;

  constructor(readonly options: GetRelayOptions) {}

  forget(conn: Connection): void {
    for (const list of this.free.values()) {
      const i = list.indexOf(conn);
      if (i >= 0) list.splice(i, 1);
    }
  }

  /**
   * Sends `GET target` with `headers` to a plain-HTTP backend and reports through `handlers`. Returns null
   * when the request cannot be written this way (a header that is not plainly valid): use the general path.
   */
  get(backend: URL, target: string, headers: Record<string, string | string[] | undefined>, handlers: RelayHandlers): { abort(): void } | null {
    const text = requestHead(target, headers);
    if (text === null) return null;
    const origin = backend.origin;
    const port = Number(backend.port || 80);
    const host = backend.hostname.startsWith("[") ? backend.hostname.slice(1, -1) : backend.hostname;
    const parked = (conn: Connection) => {
      // Kept no longer than the backend said it keeps it (less a second for the race), as Node's agent does.
      const keep = Math.min(this.options.keepAliveMs, conn.backendKeepAliveMs === null ? Infinity : conn.backendKeepAliveMs - 1000);
      const free = this.free.get(origin) ?? [];
      if (this.closed || keep <= 0 || free.length >= this.options.maxFree) conn.socket.destroy();
      else {
        conn.socket.unref();
        conn.socket.setTimeout(keep);
        free.push(conn);
        this.free.set(origin, free);
      }
    };
    let abortCurrent = () => {};
    const attempt = (fresh: boolean) => {
      const conn = (!fresh && this.free.get(origin)?.pop()) || new Connection(this, port, host, parked);
      this.inUse++;
      let counted = true;
      const over = () => {
        if (counted) {
          counted = false;
          this.inUse--;
        }
      };
      // Once this exchange is over the connection may serve another one: aborting is then a no-op.
      abortCurrent = () => {
        if (!counted) return;
        over();
        conn.abort();
      };
      let verdict: HeadVerdict = "relay";
      conn.start(text, {
        onHead: (head, decide) =>
          handlers.onHead(head, (chosen) => {
            verdict = chosen;
            decide(chosen);
          }),
        onBody: (chunk, done) => handlers.onBody(chunk, done),
        onEnd: (last, done) => {
          over();
          handlers.onEnd(last, done);
        },
        onUnsupported: (answer) => {
          answer.once("close", over);
          handlers.onUnsupported(answer);
        },
        onFailure: (err) => {
          over();
          // A pooled connection the backend had closed meanwhile: once more, on a new one.
          if (conn.stale) attempt(true);
          else handlers.onFailure(err);
        },
        onCut: () => {
          over();
          // A body being discarded was no one's: only a relayed one leaves a client cut short.
          if (verdict !== "discard") handlers.onCut();
        },
      });
    };
    attempt(false);
    return { abort: () => abortCurrent() };
  }

  close(): void {
    this.closed = true;
    for (const list of this.free.values()) for (const conn of list) conn.socket.destroy();
    this.free.clear();
  }
}
