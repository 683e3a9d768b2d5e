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
  return pino(
    {
      level: options.level,
      base: { service: "registry-gateway" },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: REDACTED_PATHS, censor: "[redacted]" },
      formatters: { level: (label) => ({ level: label }) },
    },
    options.format === "pretty" ? prettyStream(destination) : (destination as pino.DestinationStream),
  );
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
