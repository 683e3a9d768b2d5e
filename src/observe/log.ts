// One pino logger for the process. Credentials must never reach a log line: the redact list is the
// backstop, the first rule is not to pass request headers or bodies to the logger at all.
import { pino, type Logger } from "pino";

export type { Logger };

export interface LogOptions {
  level: string;
  format: "json" | "pretty";
}

export const REDACTED_PATHS = [
  "authorization",
  "password",
  "token",
  "*.authorization",
  "*.password",
  "*.token",
  "headers.authorization",
  "headers.cookie",
  "req.headers.authorization",
];

export function createLogger(options: LogOptions, destination: NodeJS.WritableStream = process.stdout): Logger {
  const stream = options.format === "pretty" ? prettyStream(destination) : new CoalescingStream(destination);
  return pino(
    {
      level: options.level,
      base: { service: "registry-gateway" },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: REDACTED_PATHS, censor: "[redacted]" },
      formatters: { level: (label) => ({ level: label }) },
    },
    stream,
  );
}

/** Loggers whose lines may wait up to HIGH_VOLUME_FLUSH_MS (see CoalescingStream). */
const highVolumeLoggers = new WeakSet<Logger>();

/** A child logger for one line per request: same destination and format, its own options, lines batched. */
export function highVolumeChild(logger: Logger, options: pino.ChildLoggerOptions): Logger {
  const child = logger.child({}, options);
  highVolumeLoggers.add(child);
  return child;
}

/** How long a high-volume line may wait for company, and how much may wait. */
export const HIGH_VOLUME_FLUSH_MS = 100;
const HIGH_VOLUME_FLUSH_BYTES = 64 * 1024;

/** Streams holding lines not yet written, flushed if the process exits first. */
const streamsWithPending = new Set<CoalescingStream>();
let exitFlushInstalled = false;

/**
 * Batches the lines of high-volume loggers (the access log) into one write per HIGH_VOLUME_FLUSH_MS or
 * 64 KiB. Measured under load, one pipe write per request line cost the gateway more CPU than
 * metrics, line formatting and request-id handling together (the gateway rarely finishes more than one
 * request per event-loop turn, so batching per turn did not help). Any other line first flushes what is
 * pending and is then written at once, so order is kept and lifecycle, warning and fatal lines are never
 * delayed; whatever is pending is written when the process exits. Only a SIGKILL can lose lines, at most
 * the last HIGH_VOLUME_FLUSH_MS worth.
 */
class CoalescingStream implements pino.DestinationStream {
  // Asks pino to set lastLogger (and the other last* fields) before each write.
  readonly [pino.symbols.needsMetadataGsym] = true as const;
  lastLogger: Logger | undefined;
  lastLevel = 0;
  lastMsg = "";
  lastObj: object = {};
  lastTime = "";
  private pending = "";
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly destination: NodeJS.WritableStream) {}

  write(line: string): void {
    if (this.lastLogger && highVolumeLoggers.has(this.lastLogger)) {
      if (this.pending === "") this.schedule();
      this.pending += line;
      if (this.pending.length >= HIGH_VOLUME_FLUSH_BYTES) this.flush();
      return;
    }
    this.flush();
    this.destination.write(line);
  }

  readonly flush = (): void => {
    if (this.pending === "") return;
    const chunk = this.pending;
    this.pending = "";
    clearTimeout(this.timer);
    this.timer = undefined;
    streamsWithPending.delete(this);
    this.destination.write(chunk);
  };

  private schedule(): void {
    // unref: pending log lines never keep the process alive; the exit hook writes them.
    this.timer = setTimeout(this.flush, HIGH_VOLUME_FLUSH_MS).unref();
    streamsWithPending.add(this);
    if (!exitFlushInstalled) {
      exitFlushInstalled = true;
      process.once("exit", () => {
        for (const stream of streamsWithPending) stream.flush();
      });
    }
  }
}

/** A dependency-free human format: `time level msg key=value …`. */
function prettyStream(destination: NodeJS.WritableStream): pino.DestinationStream {
  return {
    write(line: string) {
      const { time, level, msg, service: _service, ...rest } = JSON.parse(line) as Record<string, unknown>;
      const fields = Object.entries(rest)
        .map(([key, value]) => `${key}=${typeof value === "string" ? value : JSON.stringify(value)}`)
        .join(" ");
      destination.write(`${String(time)} ${String(level).toUpperCase().padEnd(5)} ${String(msg ?? "")}${fields ? " " + fields : ""}\n`);
    },
  };
}
