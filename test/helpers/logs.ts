// A logger whose JSON lines the test reads back (what the gateway would write to stdout).
import { Writable } from "node:stream";
import { createLogger, type Logger } from "../../src/observe/log.js";

export function capturingLogger(level: "debug" | "info" = "info"): { logger: Logger; lines: Record<string, any>[] } {
  const lines: Record<string, any>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split("\n")) if (line.trim()) lines.push(JSON.parse(line));
      done();
    },
  });
  return { logger: createLogger({ level, format: "json" }, sink), lines };
}
