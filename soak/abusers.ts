// Clients that misbehave on purpose, through the balancer: uploads cut off mid-PATCH, downloads abandoned
// after their first bytes, and slowloris connections that send a request head one line at a time.
import https from "node:https";
import tls from "node:tls";
import { setTimeout as sleep } from "node:timers/promises";
import { gatewayRequest } from "../test/helpers/gateway.js";
import { patchChunked } from "../test/helpers/upload.js";
import { basic } from "./credentials.js";
import type { Fleet } from "./fleet.js";
import { HUB, TEAM } from "./gateway-config.js";

/** Runs `count` tasks, `parallel` at a time; resolves with how many resolved true. */
async function inParallel(count: number, parallel: number, task: (i: number) => Promise<boolean>): Promise<number> {
  let next = 0;
  let succeeded = 0;
  const worker = async () => {
    for (let i = next++; i < count; i = next++) if (await task(i).catch(() => false)) succeeded++;
  };
  await Promise.all(Array.from({ length: parallel }, worker));
  return succeeded;
}

/** Each client starts an upload, sends a quarter of a 1 MiB PATCH and drops the connection. */
export async function abortUploads(fleet: Fleet, count: number): Promise<string> {
  const authorization = basic("uploader");
  const started = await inParallel(count, 50, async (i) => {
    const host = i % 2 === 0 ? HUB : TEAM;
    const post = await gatewayRequest(fleet.port, fleet.caPem, host, { method: "POST", path: `/v2/soak/aborted-${i}/blobs/uploads/`, headers: { authorization, "content-length": "0" } });
    if (post.status !== 202 || typeof post.headers.location !== "string") return false;
    const target = { port: fleet.port, caPem: fleet.caPem, host };
    await patchChunked(target, post.headers.location, { bytes: 1 << 20, chunkSize: 64 << 10, abortAfter: 256 << 10, headers: { authorization } });
    return true;
  });
  return `${count} clients each cut off a 1 MiB PATCH after 256 KiB (${started} uploads started)`;
}

/** A blob of a few MiB in the pool (hub), for downloads to abandon. */
export interface BigBlob {
  repository: string;
  digest: string;
  bytes: number;
}

function abandonOne(fleet: Fleet, blob: BigBlob): Promise<boolean> {
  return new Promise((resolve) => {
    const req = https.get(
      { host: "127.0.0.1", port: fleet.port, servername: HUB, ca: fleet.caPem, agent: false, path: `/v2/${blob.repository}/blobs/${blob.digest}`, headers: { host: `${HUB}:${fleet.port}`, authorization: basic("reader") } },
      (res) => {
        res.once("data", () => {
          req.destroy();
          resolve(res.statusCode === 200);
        });
        res.once("end", () => resolve(false));
      },
    );
    req.on("error", () => resolve(false));
    req.setTimeout(15_000, () => req.destroy());
  });
}

/** Each client asks for a blob of several MiB, reads its first bytes and closes the connection. */
export async function abandonDownloads(fleet: Fleet, blob: BigBlob, count: number): Promise<string> {
  const abandoned = await inParallel(count, 25, () => abandonOne(fleet, blob));
  return `${count} clients abandoned a ${Math.round(blob.bytes / (1 << 20))} MiB blob download after its first bytes (${abandoned} had started with 200)`;
}

/** `count` connections that send one header line every 500 ms for `holdSeconds`, never finishing the head. */
export async function slowloris(fleet: Fleet, count: number, holdSeconds: number): Promise<string> {
  const sockets = await Promise.all(
    Array.from({ length: count }, () =>
      new Promise<tls.TLSSocket | null>((resolve) => {
        const socket = tls.connect({ host: "127.0.0.1", port: fleet.port, servername: HUB, ca: fleet.caPem }, () => {
          socket.write(`GET /v2/ HTTP/1.1\r\nHost: ${HUB}:${fleet.port}\r\n`);
          resolve(socket);
        });
        socket.on("error", () => resolve(null));
      }),
    ),
  );
  const open = sockets.filter((s): s is tls.TLSSocket => s !== null);
  for (let elapsed = 0; elapsed < holdSeconds * 1000; elapsed += 500) {
    for (const socket of open) if (!socket.destroyed) socket.write(`X-Slow-${elapsed}: 1\r\n`);
    await sleep(500);
  }
  const closedByGateway = open.filter((s) => s.destroyed).length;
  for (const socket of open) socket.destroy();
  return `${count} connections sent a request head one line per 500 ms for ${holdSeconds} s (${open.length} connected, ${closedByGateway} closed by the gateway meanwhile)`;
}
