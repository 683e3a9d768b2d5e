// Blob uploads the way docker does them: POST, then ONE chunked PATCH with no Content-Length, then
// PUT ?digest=. The body is generated on the fly (never held whole in memory) and hashed as it goes.
import { createHash, randomBytes } from "node:crypto";
import https from "node:https";
import type { IncomingMessage } from "node:http";
import type { Socket } from "node:net";
import { gatewayRequest } from "./gateway.js";

export interface UploadTarget {
  port: number;
  caPem: string;
  host: string;
}

export interface PatchOptions {
  bytes: number;
  chunkSize?: number;
  /** Pause between chunks, to make a slow client. */
  delayMs?: number;
  /** Destroy the connection after this many bytes instead of finishing. */
  abortAfter?: number;
  /** Send on this agent's connection (keep-alive) instead of a new one. */
  agent?: https.Agent;
  /** Extra request headers (Authorization). */
  headers?: Record<string, string>;
}

export interface PatchResult {
  status: number;
  location: string | undefined;
  /** The registry's Range: what it holds of the upload. */
  range: string | undefined;
  digest: string;
  sent: number;
  /** The connection the answer came on. */
  socket: Socket | null;
}

/** POST /v2/REPO/blobs/uploads/ → the absolute Location to PATCH. */
export async function startUpload(target: UploadTarget, repository: string): Promise<string> {
  const res = await gatewayRequest(target.port, target.caPem, target.host, {
    method: "POST",
    path: `/v2/${repository}/blobs/uploads/`,
    headers: { "content-length": "0" },
  });
  if (res.status !== 202 || typeof res.headers.location !== "string") {
    throw new Error(`upload start: ${res.status} ${res.body.toString()}`);
  }
  return res.headers.location;
}

/** Streams `bytes` of fresh data as one chunked PATCH, honouring backpressure. `location` may be relative. */
export function patchChunked(target: UploadTarget, location: string, options: PatchOptions): Promise<PatchResult> {
  const url = new URL(location, `https://${target.host}:${target.port}`);
  const chunkSize = options.chunkSize ?? 1024 * 1024;
  const block = randomBytes(chunkSize);
  const hash = createHash("sha256");
  let sent = 0;
  let counter = 0;

  return new Promise((resolve, reject) => {
    const req = https.request({
      host: "127.0.0.1",
      port: target.port,
      method: "PATCH",
      path: url.pathname + url.search,
      servername: target.host,
      ca: target.caPem,
      agent: options.agent ?? false,
      headers: { host: url.host, "content-type": "application/octet-stream", "transfer-encoding": "chunked", ...options.headers },
    });
    const aborted = (): PatchResult => ({ status: 0, location: undefined, range: undefined, digest: "", sent, socket: null });
    req.on("error", (err) => (options.abortAfter !== undefined ? resolve(aborted()) : reject(err)));
    req.on("response", (res: IncomingMessage) => {
      const socket = res.socket;
      res.resume();
      res.on("error", reject);
      res.on("end", () =>
        resolve({
          status: res.statusCode ?? 0,
          location: res.headers.location,
          range: typeof res.headers.range === "string" ? res.headers.range : undefined,
          digest: `sha256:${hash.digest("hex")}`,
          sent,
          socket,
        }),
      );
    });

    const writeMore = (): void => {
      if (req.destroyed) return;
      while (sent < options.bytes) {
        if (options.abortAfter !== undefined && sent >= options.abortAfter) {
          req.destroy();
          resolve(aborted());
          return;
        }
        // A counter in each block keeps the blob unique, so nothing upstream can deduplicate it.
        block.writeUInt32BE(counter++, 0);
        // A copy: a write may still be queued (before the connection is up) when the block changes for the next.
        const piece = Buffer.from(block.subarray(0, Math.min(chunkSize, options.bytes - sent)));
        hash.update(piece);
        sent += piece.length;
        const more = req.write(piece);
        if (options.delayMs) {
          setTimeout(writeMore, options.delayMs);
          return;
        }
        if (!more) {
          req.once("drain", writeMore);
          return;
        }
      }
      req.end();
    };
    writeMore();
  });
}

/** PUT LOCATION&digest=D with no body: the registry verifies the digest of everything it received. */
export async function finishUpload(target: UploadTarget, location: string, digest: string, headers: Record<string, string> = {}) {
  const url = new URL(location, `https://${target.host}:${target.port}`);
  // Appended, not set through searchParams, so the _state token is sent back byte for byte.
  const path = `${url.pathname}${url.search}${url.search ? "&" : "?"}digest=${encodeURIComponent(digest)}`;
  return gatewayRequest(target.port, target.caPem, target.host, {
    method: "PUT",
    path,
    headers: { "content-length": "0", ...headers },
  });
}
