// The send timeout (timeouts.send, as nginx's send_timeout): a response with bytes waiting for the client
// that sees none of them leave for this long is closed. A client that stops reading otherwise holds its
// response's buffers, its backend connection and the backend's own buffers until the idle timeout (minutes);
// a slow client that keeps reading is never cut. One timer per forwarder looks at every watched response, a
// few times per timeout, so a stalled response is closed between 1 and 1.25 timeouts after its last progress.
import type { ServerResponse } from "node:http";
import type { Socket } from "node:net";

interface Watched {
  onStall: () => void;
  /** Bytes the socket had sent (written and completed) when last looked at. */
  sent: number;
  /** When the response last had nothing waiting, or last sent something. */
  progressAt: number;
}

/** Checks per timeout: the finer, the closer to the timeout a stall is closed. */
const CHECKS_PER_TIMEOUT = 4;

export class SendTimeout {
  private readonly watched = new Map<ServerResponse, Watched>();
  private timer: NodeJS.Timeout | null = null;

  constructor(readonly timeoutMs: number) {}

  /** Watches `res` until it closes or finishes; `onStall` is called (once) when it stalls. */
  watch(res: ServerResponse, onStall: () => void): void {
    if (this.watched.has(res)) return;
    this.watched.set(res, { onStall, sent: sentBytes(res.socket), progressAt: performance.now() });
    const forget = () => this.unwatch(res);
    res.once("close", forget);
    res.once("finish", forget);
    this.timer ??= setInterval(() => this.check(), Math.max(1, Math.floor(this.timeoutMs / CHECKS_PER_TIMEOUT))).unref();
  }

  private unwatch(res: ServerResponse): void {
    this.watched.delete(res);
    if (this.watched.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }

  private check(): void {
    const now = performance.now();
    for (const [res, watched] of this.watched) {
      const sent = sentBytes(res.socket);
      // Nothing waiting (the backend is slow, not the client), or bytes left since the last look: progress.
      if (res.writableLength === 0 || sent !== watched.sent) {
        watched.sent = sent;
        watched.progressAt = now;
      } else if (now - watched.progressAt >= this.timeoutMs) {
        this.unwatch(res);
        watched.onStall();
      }
    }
  }

  close(): void {
    for (const res of [...this.watched.keys()]) this.unwatch(res);
  }
}

/**
 * Bytes the socket's writes have completed: what it has taken (bytesWritten, which also counts what is still
 * queued) less what is still waiting (writableLength: queued, or handed to the connection and not yet sent).
 * For a TLS socket a write completes once its encrypted bytes are in the kernel, which the client empties.
 */
function sentBytes(socket: Socket | null): number {
  return socket ? socket.bytesWritten - socket.writableLength : 0;
}
