// A flood of wrong passwords, each for a new user name, from several loopback addresses at once (what an
// attacker guessing names does), run on a worker thread of its own: the flood's client work then competes
// with the gateway only for CPU, as a separate machine's would for the network, instead of sharing the
// measuring thread's event loop and inflating every latency the test or bench takes.
import { Worker } from "node:worker_threads";

export interface LoginFloodOptions {
  /** The gateway's HTTPS port on 127.0.0.1. */
  port: number;
  /** PEM of the CA the gateway's certificate chains to. */
  ca: string;
  /** Host (SNI and Host header) of the site. */
  host: string;
  /** Path to request; default `/v2/`. */
  path?: string;
  /** Local addresses to send from, e.g. 127.0.0.2 and 127.0.0.3; the connections are spread over them. */
  addresses: readonly string[];
  /** Keep-alive connections in all. */
  connections: number;
}

export interface LoginFlood {
  /** Answers so far, by status ("0": the request failed), and per address. */
  counts(): Promise<FloodCounts>;
  /**
   * Stops sending but keeps the connections (a quiet phase without 400 new handshakes after it); resolves
   * once every request in flight is answered.
   */
  pause(): Promise<FloodCounts>;
  resume(): Promise<FloodCounts>;
  /** Stops sending, waits for what is in flight, and gives the final counts. */
  stop(): Promise<FloodCounts>;
}

export interface FloodCounts {
  statuses: Record<string, number>;
  /** Status counts per source address. */
  byAddress: Record<string, Record<string, number>>;
  /** Distinct error messages of the refusals (429/503), with how often each came. */
  messages: Record<string, number>;
}

const WORKER_SOURCE = `
"use strict";
const https = require("node:https");
const { parentPort, workerData } = require("node:worker_threads");
const { port, ca, host, path, addresses, connections } = workerData;
const counts = { statuses: {}, byAddress: {}, messages: {} };
const bump = (record, key) => (record[key] = (record[key] || 0) + 1);
const agents = addresses.map(() => new https.Agent({ keepAlive: true, maxSockets: Math.ceil(connections / addresses.length) }));
let running = true;
let inFlight = 0;
let paused = null;
let drained = null;
let n = 0;
const tag = Math.random().toString(36).slice(2, 8);
function one(index) {
  const address = addresses[index % addresses.length];
  const user = "guess-" + tag + "-" + n++;
  inFlight++;
  return new Promise((resolve) => {
    const done = (status, body) => {
      inFlight--;
      if (inFlight === 0 && drained) drained();
      bump(counts.statuses, String(status));
      bump((counts.byAddress[address] = counts.byAddress[address] || {}), String(status));
      if ((status === 429 || status === 503) && body) {
        try { bump(counts.messages, JSON.parse(body).errors[0].message); } catch { bump(counts.messages, "(unreadable)"); }
      }
      resolve();
    };
    const req = https.request({
      host: "127.0.0.1", port, path, method: "GET", ca, servername: host, localAddress: address,
      agent: agents[index % addresses.length],
      headers: { host: host + ":" + port, authorization: "Basic " + Buffer.from(user + ":not-the-password").toString("base64") },
    }, (res) => {
      const chunks = [];
      res.on("data", (chunk) => chunks.push(chunk));
      res.on("end", () => done(res.statusCode, Buffer.concat(chunks).toString()));
      res.on("error", () => done(0));
    });
    req.on("error", () => done(0));
    req.end();
  });
}
const loops = Array.from({ length: connections }, async (_, i) => {
  while (running) {
    if (paused) await paused.promise;
    else await one(i);
  }
});
// One question at a time, answered in order.
let answering = Promise.resolve();
parentPort.on("message", (message) => (answering = answering.then(() => answer(message))));
async function answer(message) {
  if (message === "counts") parentPort.postMessage(counts);
  if (message === "pause") {
    let resume;
    paused = { promise: new Promise((resolve) => (resume = resolve)), resume };
    if (inFlight > 0) await new Promise((resolve) => (drained = resolve));
    drained = null;
    parentPort.postMessage(counts);
  }
  if (message === "resume") {
    const was = paused;
    paused = null;
    was?.resume();
    parentPort.postMessage(counts);
  }
  if (message === "stop") {
    running = false;
    paused?.resume();
    await Promise.all(loops);
    for (const agent of agents) agent.destroy();
    parentPort.postMessage(counts);
  }
}
`;

/** Starts the flood at once; stop() it (the worker ends with it). */
export function startLoginFlood(options: LoginFloodOptions): LoginFlood {
  const worker = new Worker(WORKER_SOURCE, {
    eval: true,
    execArgv: [],
    workerData: { ...options, path: options.path ?? "/v2/", addresses: [...options.addresses] },
  });
  // A test that gives up must not be kept alive by its flood.
  worker.unref();
  // The worker answers in order: one waiting promise per question.
  const waiting: { resolve(counts: FloodCounts): void; reject(err: Error): void }[] = [];
  worker.on("message", (counts: FloodCounts) => waiting.shift()?.resolve(counts));
  worker.on("error", (err) => waiting.splice(0).forEach(({ reject }) => reject(err)));
  const ask = (message: "counts" | "pause" | "resume" | "stop") =>
    new Promise<FloodCounts>((resolve, reject) => {
      waiting.push({ resolve, reject });
      worker.postMessage(message);
    });
  return {
    counts: () => ask("counts"),
    pause: () => ask("pause"),
    resume: () => ask("resume"),
    async stop() {
      const counts = await ask("stop");
      await worker.terminate();
      return counts;
    },
  };
}
