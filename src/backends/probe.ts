// GET /v2/ of a registry: the one request every registry answers, whatever its auth (401 is an answer).
// The pool's health checks, readiness and the managed registries' start all ask it this way; what an
// answer means (up below 500, reachable at all) is the caller's.
import http from "node:http";
import https from "node:https";

/** A registry's answer to GET /v2/, or why there was none. */
export type ProbeOutcome = { reachable: true; status: number } | { reachable: false; error: string };

export interface ProbeOptions {
  /** The whole exchange, connecting included, must finish within this (a socket timeout is per idle gap). */
  timeoutMs: number;
  /** `false`: a connection of its own, closed after. */
  agent: http.Agent | false;
  headers?: Record<string, string>;
}

/**
 * Sends GET /v2/ to `backend`; `done` gets the outcome once. Returns the request: destroying it gives up
 * (`done` then gets the error), as a pool does when its health checks stop.
 */
export function probeRegistry(backend: URL, options: ProbeOptions, done: (outcome: ProbeOutcome) => void): http.ClientRequest {
  let settled = false;
  const settle = (outcome: ProbeOutcome) => {
    clearTimeout(timeout);
    if (settled) return;
    settled = true;
    done(outcome);
  };
  const client = backend.protocol === "https:" ? https : http;
  const request = client.get(new URL("/v2/", backend), { agent: options.agent, headers: options.headers ?? {} }, (response) => {
    response.resume();
    settle({ reachable: true, status: response.statusCode ?? 0 });
  });
  const timeout = setTimeout(() => request.destroy(new Error(`no answer within ${options.timeoutMs} ms`)), options.timeoutMs);
  timeout.unref();
  request.on("error", (err: NodeJS.ErrnoException) => settle({ reachable: false, error: err.code ?? err.message }));
  return request;
}

/** What readiness reports of a backend: its origin and its answer. */
export type BackendProbe = { backend: string } & ProbeOutcome;

/** How long readiness and a managed registry's start wait for an answer. */
const PROBE_TIMEOUT_MS = 2000;

/** probeRegistry on a connection of its own (with `headers`: a managed registry wants the gateway's token). */
export function probeBackend(backend: URL, headers: Record<string, string> = {}): Promise<BackendProbe> {
  return new Promise((resolve) => {
    probeRegistry(backend, { timeoutMs: PROBE_TIMEOUT_MS, agent: false, headers }, (outcome) => resolve({ backend: backend.origin, ...outcome }));
  });
}
