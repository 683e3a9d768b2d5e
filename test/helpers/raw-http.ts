// Raw HTTP/1.1 over TLS (or plain TCP): the test writes the request bytes itself, so no client library
// normalises a target, a header or the framing, and reads back every response on the
// connection, in order.
import net from "node:net";
import tls from "node:tls";

export interface RawResponse {
  status: number;
  statusLine: string;
  /** Lower-cased names; repeated headers joined with ", ". */
  headers: Record<string, string>;
  body: Buffer;
  json(): any;
}

export interface RawExchange {
  responses: RawResponse[];
  /** The peer closed (or reset) the connection. */
  closed: boolean;
  /** Bytes received that did not parse as a complete response. */
  rest: Buffer;
  raw: Buffer;
  error?: string;
}

export interface RawTarget {
  port: number;
  /** TLS when set (the gateway); plain TCP otherwise (a backend). */
  tls?: { ca: string; servername?: string };
}

export interface RawOptions {
  /** Methods of the requests on the connection, in order: a response to HEAD has no body. */
  methods?: readonly string[];
  /** Stop once this many final responses have arrived, after waiting settleMs for anything more. */
  expectResponses?: number;
  settleMs?: number;
  /** Give up waiting for more bytes after this long without any (the connection may stay open). */
  idleMs?: number;
  /** Write the request in these pieces, pausing between them. */
  pieces?: readonly (string | Buffer)[];
}

/** Writes `request` (a string is sent as UTF-8) and collects what comes back until close or idle. */
export function rawExchange(target: RawTarget, request: string | Buffer, options: RawOptions = {}): Promise<RawExchange> {
  const idleMs = options.idleMs ?? 3000;
  const settleMs = options.settleMs ?? 150;
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let closed = false;
    let error: string | undefined;
    let done = false;
    const socket: net.Socket = target.tls
      ? tls.connect({ host: "127.0.0.1", port: target.port, ca: target.tls.ca, servername: target.tls.servername }, write)
      : net.connect({ host: "127.0.0.1", port: target.port }, write);
    let idle = setTimeout(finish, idleMs);
    let settle: NodeJS.Timeout | undefined;

    function write(): void {
      const pieces = options.pieces ?? [request];
      void (async () => {
        for (let i = 0; i < pieces.length; i++) {
          if (socket.destroyed) return;
          socket.write(pieces[i]!);
          if (i < pieces.length - 1) await new Promise((r) => setTimeout(r, 50));
        }
      })();
    }
    function finish(): void {
      if (done) return;
      done = true;
      clearTimeout(idle);
      clearTimeout(settle);
      socket.destroy();
      const raw = Buffer.concat(chunks);
      const { responses, rest } = parseResponses(raw, options.methods ?? []);
      resolve({ responses, closed, rest, raw, error });
    }
    socket.on("data", (chunk: Buffer) => {
      chunks.push(chunk);
      clearTimeout(idle);
      idle = setTimeout(finish, idleMs);
      if (options.expectResponses !== undefined) {
        const { responses } = parseResponses(Buffer.concat(chunks), options.methods ?? []);
        if (responses.length >= options.expectResponses && !settle) settle = setTimeout(finish, settleMs);
      }
    });
    socket.on("end", () => {
      closed = true;
      finish();
    });
    socket.on("close", () => {
      closed = true;
      finish();
    });
    socket.on("error", (err: NodeJS.ErrnoException) => {
      error = err.code ?? err.message;
      closed = true;
      finish();
    });
  });
}

/** Header lines → lower-case names; repeated names joined with ", ". */
export function parseHeaderLines(lines: readonly string[]): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(":");
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
  }
  return headers;
}

/**
 * Splits a byte stream into HTTP/1.1 responses: Content-Length, chunked, or (last) until close; no body for
 * HEAD, 1xx, 204 and 304. 1xx interim responses are dropped. A response whose body is cut short stays in
 * `rest`, except a close-delimited last one.
 */
export function parseResponses(raw: Buffer, methods: readonly string[]): { responses: RawResponse[]; rest: Buffer } {
  const responses: RawResponse[] = [];
  let at = 0;
  let requestIndex = 0;
  for (;;) {
    const headEnd = raw.indexOf("\r\n\r\n", at);
    if (headEnd < 0) break;
    const head = raw.subarray(at, headEnd).toString("latin1");
    const [statusLine = "", ...lines] = head.split("\r\n");
    const status = Number(/^HTTP\/\d\.\d (\d{3})/.exec(statusLine)?.[1] ?? NaN);
    if (Number.isNaN(status)) break;
    const headers = parseHeaderLines(lines);
    let bodyStart = headEnd + 4;
    if (status >= 100 && status < 200) {
      at = bodyStart;
      continue;
    }
    const method = methods[requestIndex] ?? "GET";
    let body: Buffer;
    let next: number;
    if (method === "HEAD" || status === 204 || status === 304) {
      body = Buffer.alloc(0);
      next = bodyStart;
    } else if (/chunked/i.test(headers["transfer-encoding"] ?? "")) {
      const parts: Buffer[] = [];
      let p = bodyStart;
      let complete = false;
      for (;;) {
        const lineEnd = raw.indexOf("\r\n", p);
        if (lineEnd < 0) break;
        const size = parseInt(raw.subarray(p, lineEnd).toString("latin1"), 16);
        if (Number.isNaN(size)) break;
        if (size === 0) {
          const trailerEnd = raw.indexOf("\r\n\r\n", lineEnd);
          if (trailerEnd < 0) break;
          p = trailerEnd + 4;
          complete = true;
          break;
        }
        if (raw.length < lineEnd + 2 + size + 2) break;
        parts.push(raw.subarray(lineEnd + 2, lineEnd + 2 + size));
        p = lineEnd + 2 + size + 2;
      }
      if (!complete) break;
      body = Buffer.concat(parts);
      next = p;
    } else if (headers["content-length"] !== undefined) {
      const length = Number(headers["content-length"]);
      if (raw.length < bodyStart + length) break;
      body = raw.subarray(bodyStart, bodyStart + length);
      next = bodyStart + length;
    } else {
      body = raw.subarray(bodyStart);
      next = raw.length;
    }
    responses.push({ status, statusLine, headers, body, json: () => JSON.parse(body.toString("utf8")) });
    requestIndex++;
    at = next;
    bodyStart = at;
    if (at >= raw.length) break;
  }
  return { responses, rest: raw.subarray(at) };
}

/** Runs tasks with at most `limit` in flight; results in input order. */
export async function pool<T, R>(items: readonly T[], limit: number, task: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const index = next++;
        results[index] = await task(items[index]!, index);
      }
    }),
  );
  return results;
}
