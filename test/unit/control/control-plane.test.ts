// The control plane over a scripted data plane (the seam between them): reloads run one at a time, a
// prepare that fails aborts and keeps the running configuration, commit follows a prepare that succeeded
// and nothing else, the ACME manager is replaced only when what it is built from changes (its data
// directory included), and managed registries stop only once the replaced configuration has retired.
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { afterEach, beforeEach, describe, it } from "node:test";
import type { ManagedUrls } from "../../../src/backends/managed.js";
import { gatewayConfig, type GatewayConfig, type GatewayConfigInput } from "../../../src/config/schema.js";
import { ControlPlane, type ManagedRegistryControl } from "../../../src/control/control-plane.js";
import type { ChallengeChange, CommitOptions, Committed, DataPlane, Readiness, ServingAddresses } from "../../../src/control/data-plane.js";
import { createLogger } from "../../../src/observe/log.js";
import type { AcmeCertificates } from "../../../src/tls/acme.js";
import type { SiteCertificate } from "../../../src/tls/store.js";
import { configuredBackend } from "../../../src/backends/resolve.js";
import { waitFor } from "../../helpers/process.js";

interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(err: Error): void;
}

function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (err: Error) => void;
  const promise = new Promise<T>((res, rej) => ((resolve = res), (reject = rej)));
  return { promise, resolve, reject };
}

/** A data plane that records every call and lets the test decide when (and how) prepare and retirement end. */
class ScriptedDataPlane implements DataPlane {
  readonly calls: string[] = [];
  /** The next prepare calls take these, in order; without one a prepare succeeds at once. */
  readonly prepares: Deferred<void>[] = [];
  readonly retirements: Deferred<void>[] = [];
  readonly reloads: boolean[] = [];

  async start(): Promise<ServingAddresses> {
    return { https: { address: "127.0.0.1", family: "IPv4", port: 1 }, http: null, caFile: null };
  }
  async prepare(config: GatewayConfig): Promise<void> {
    this.calls.push(`prepare ${config.sites[0]!.name}`);
    await this.prepares.shift()?.promise;
    this.calls.push(`prepared ${config.sites[0]!.name}`);
  }
  async commit(options: CommitOptions): Promise<Committed> {
    this.calls.push(`commit keepAcmeHandOvers=${options.keepAcmeHandOvers}`);
    const retired = deferred();
    this.retirements.push(retired);
    return { retired: retired.promise };
  }
  async abort(): Promise<void> {
    this.calls.push("abort");
  }
  reloaded(ok: boolean): void {
    this.reloads.push(ok);
  }
  async readiness(): Promise<Readiness> {
    return { listening: true, backends: [] };
  }
  metrics() {
    return { contentType: "text/plain", exposition: async () => "" };
  }
  async replaceCertificates(_certificates: readonly SiteCertificate[]): Promise<string[]> {
    return [];
  }
  async acmeCertificate(): Promise<void> {}
  async challenge(_change: ChallengeChange): Promise<void> {}
  async shutdown(): Promise<void> {
    this.calls.push("shutdown");
  }
}

/** Managed registries that run nothing and record what each prune keeps. */
class RecordingRegistries implements ManagedRegistryControl {
  readonly prunes: string[][] = [];
  async start(): Promise<void> {}
  resolver() {
    return configuredBackend;
  }
  async prune(inUse: readonly GatewayConfig[]): Promise<void> {
    this.prunes.push(inUse.map((config) => config.sites[0]!.name!));
  }
  async stop(): Promise<void> {}
  urls(): ManagedUrls {
    return {};
  }
}

/** An ACME manager that orders nothing; counts how it is used. */
class CountingAcme implements AcmeCertificates {
  stopped = false;
  refreshes = 0;
  constructor(readonly dataDir: string) {}
  async start(): Promise<void> {}
  async stop(): Promise<void> {
    this.stopped = true;
  }
  async renewNow() {
    return [];
  }
  async refreshFromDisk(): Promise<void> {
    this.refreshes++;
  }
  status() {
    return [];
  }
  httpChallengeResponse() {
    return undefined;
  }
  alpnContextFor() {
    return undefined;
  }
}

const silent = new Writable({ write: (_chunk, _encoding, done) => done() });

describe("the control plane over a scripted data plane", () => {
  let dir: string;
  let data: ScriptedDataPlane;
  let registries: RecordingRegistries;
  let managers: CountingAcme[];
  let control: ControlPlane;

  const config = (site: string, extra: Partial<GatewayConfigInput> = {}, tls?: object): GatewayConfig =>
    gatewayConfig.parse({
      listen: "127.0.0.1:0",
      admin: { listen: "127.0.0.1:0" },
      log: { level: "error" },
      dataDir: join(dir, "data"),
      sites: [{ name: site, hosts: [`${site}.test`], backend: "http://127.0.0.1:5000", ...(tls ? { tls } : {}) }],
      ...extra,
    });
  const acmeTls = { source: "acme", directory: "https://127.0.0.1:14000/dir", challenge: "tls-alpn-01" };

  async function start(first: GatewayConfig): Promise<void> {
    control = new ControlPlane(data, createLogger(first.log, silent), {
      registries,
      createAcmeManager: (forConfig) => {
        const manager = new CountingAcme(forConfig.dataDir);
        managers.push(manager);
        return manager;
      },
    });
    await control.start(first);
  }

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "rg-control-"));
    data = new ScriptedDataPlane();
    registries = new RecordingRegistries();
    managers = [];
  });

  afterEach(async () => {
    await control?.shutdown(0);
    await rm(dir, { recursive: true, force: true });
  });

  it("runs two concurrent reloads one after the other: the second prepares only once the first has committed", async () => {
    await start(config("zero"));
    const first = deferred();
    data.prepares.push(first);
    const one = control.reload(config("one"));
    const two = control.reload(config("two"));
    await waitFor(() => data.calls.includes("prepare one"), { timeoutMs: 2000, what: "the first prepare" });
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.deepEqual(data.calls, ["prepare one"], "the second reload waits while the first prepares");
    first.resolve();
    assert.equal((await one).ok, true);
    assert.equal((await two).ok, true);
    assert.deepEqual(data.calls, ["prepare one", "prepared one", "commit keepAcmeHandOvers=true", "prepare two", "prepared two", "commit keepAcmeHandOvers=true"]);
  });

  it("commits only once the prepare succeeded; a failed prepare aborts, keeps the running configuration and reports every line", async () => {
    await start(config("zero"));
    const failing = deferred();
    data.prepares.push(failing);
    const outcome = control.reload(config("broken"));
    await waitFor(() => data.calls.includes("prepare broken"), { timeoutMs: 2000, what: "the prepare" });
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.ok(!data.calls.some((call) => call.startsWith("commit")), "nothing commits while a prepare runs");
    failing.reject(new Error("worker 1: htpasswd line 1 is no known hash\nworker 2: htpasswd line 1 is no known hash"));
    assert.deepEqual(await outcome, { ok: false, errors: ["worker 1: htpasswd line 1 is no known hash", "worker 2: htpasswd line 1 is no known hash"] });
    assert.deepEqual(data.calls, ["prepare broken", "abort"]);
    assert.deepEqual(data.reloads, [false]);
    // What the failed attempt started stops; the running configuration is what stays in use.
    assert.deepEqual(registries.prunes, [["zero"]]);
    const next = await control.reload(config("next"));
    assert.deepEqual(next, { ok: true, sites: ["next"], warnings: [] });
    assert.deepEqual(data.reloads, [false, true]);
  });

  it("stops managed registries only after the replaced configuration has retired", async () => {
    await start(config("zero"));
    assert.equal((await control.reload(config("one"))).ok, true);
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.deepEqual(registries.prunes, [], "no prune while the replaced configuration still runs requests");
    data.retirements[0]!.resolve();
    await waitFor(() => registries.prunes.length > 0, { timeoutMs: 2000, what: "the prune after retirement" });
    assert.deepEqual(registries.prunes, [["one"]], "once retired, only the configuration in service keeps its registries");
  });

  it("replaces the ACME manager only when what it is built from changes, the data directory included", async () => {
    await start(config("site", {}, acmeTls));
    assert.equal(managers.length, 1);
    assert.equal((await control.reload(config("site", { log: { level: "warn" } }, acmeTls))).ok, true);
    assert.equal(managers.length, 1, "an unrelated change keeps the manager");
    assert.equal(managers[0]!.refreshes, 1, "the kept manager adopts what was stored meanwhile");
    assert.equal(data.calls.at(-1), "commit keepAcmeHandOvers=true");

    assert.equal((await control.reload(config("site", { dataDir: join(dir, "elsewhere") }, acmeTls))).ok, true);
    assert.equal(managers.length, 2, "a new data directory means a new manager");
    assert.equal(managers[0]!.stopped, true);
    assert.equal(managers[1]!.dataDir, join(dir, "elsewhere"));
    assert.equal(data.calls.at(-1), "commit keepAcmeHandOvers=false");
    assert.equal(control.acme(), managers[1]);
  });
});
