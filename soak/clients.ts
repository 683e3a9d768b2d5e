// The real clients' traffic through the balancer: skopeo pushes fresh images of mixed sizes and pulls back
// earlier ones, podman pulls and re-pushes small ones to the other site. Each push that got a success answer
// is remembered with the digest the client was told.
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { certDir, podman, podmanStore, skopeo, type PodmanStore } from "../test/helpers/clients.js";
import { buildOciImage } from "../test/helpers/oci.js";
import { formatRun, type RunResult } from "../test/helpers/process.js";
import { creds } from "./credentials.js";
import type { Fleet } from "./fleet.js";
import { HUB, TEAM } from "./gateway-config.js";
import { repeat, type PushRecord, type Recorder } from "./recorder.js";
import { layerSize } from "./sizes.js";

const MiB = 1024 * 1024;
/** Pulls and podman's re-pushes stay on images up to this size: they exercise the clients, not the disk. */
const PULLABLE_BYTES = 32 * MiB;

export interface ClientTraffic {
  stop(): Promise<void>;
}

export interface ClientContext {
  fleet: Fleet;
  recorder: Recorder;
  workDir: string;
  largestLayer: number;
}

const site = (n: number) => (n % 2 === 0 ? { name: "hub" as const, host: HUB } : { name: "team" as const, host: TEAM });

function ensureRan(what: string, args: readonly string[], result: RunResult): void {
  if (result.code !== 0) throw new Error(formatRun(what, args, result).slice(0, 600));
}

/** skopeo copy of a freshly built OCI image (one layer of the size the plan says) to alternating sites. */
export function skopeoPushes(ctx: ClientContext): ClientTraffic {
  let n = 0;
  return repeat(async () => {
    const index = n++;
    const target = site(index);
    const dir = await mkdtemp(join(ctx.workDir, "push-"));
    try {
      const bytes = layerSize(index, ctx.largestLayer);
      const image = await buildOciImage(dir, { layers: 1, layerSize: bytes, tag: "v1" });
      const repository = `soak/skopeo-${index}`;
      const reference = `${target.host}:${ctx.fleet.port}/${repository}:v1`;
      const digestFile = join(dir, "digest");
      const args = ["copy", "--retry-times", "0", "--dest-creds", creds("admin"), "--dest-cert-dir", await certDir(ctx.fleet.caPem), "--digestfile", digestFile, image.ociRef, `docker://${reference}`];
      await ctx.recorder.track("skopeo push", async () => {
        ensureRan("skopeo", args, await skopeo(args, { hosts: ctx.fleet.hosts, timeoutMs: 600_000 }));
        const manifestDigest = (await readFile(digestFile, "utf8")).trim();
        ctx.recorder.pushes.push({ client: "skopeo", site: target.name, reference, repository, tag: "v1", manifestDigest, bytes });
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 300);
}

function pickPullable(ctx: ClientContext, n: number): PushRecord | undefined {
  const candidates = ctx.recorder.pushes.filter((p) => p.bytes <= PULLABLE_BYTES);
  return candidates.length === 0 ? undefined : candidates[n % candidates.length];
}

/** skopeo copy of an earlier push into a throw-away directory, as the read-only user. */
export function skopeoPulls(ctx: ClientContext): ClientTraffic {
  let n = 0;
  return repeat(async () => {
    const push = pickPullable(ctx, n++);
    if (!push) return;
    const dir = await mkdtemp(join(ctx.workDir, "pull-"));
    try {
      const args = ["copy", "--retry-times", "0", "--src-creds", creds("reader"), "--src-cert-dir", await certDir(ctx.fleet.caPem), `docker://${push.reference}`, `dir:${join(dir, "image")}`];
      await ctx.recorder.track("skopeo pull", async () => ensureRan("skopeo", args, await skopeo(args, { hosts: ctx.fleet.hosts, timeoutMs: 300_000 })));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 500);
}

/** podman pull of an earlier push, then push of it under a new name to the other site; the store is emptied each time. */
export function podmanTraffic(ctx: ClientContext): ClientTraffic {
  let n = 0;
  let store: PodmanStore | undefined;
  const traffic = repeat(async () => {
    const index = n++;
    const source = pickPullable(ctx, index * 7 + 3);
    if (!source || source.bytes > 4 * MiB) return;
    store ??= await podmanStore();
    const options = { store, hosts: ctx.fleet.hosts, timeoutMs: 300_000 };
    const certs = await certDir(ctx.fleet.caPem);
    const pullArgs = ["pull", "--cert-dir", certs, "--creds", creds("reader"), `docker://${source.reference}`];
    const pulled = await ctx.recorder.track("podman pull", async () => {
      ensureRan("podman", pullArgs, await podman(pullArgs, options));
      return true;
    });
    if (!pulled) return;
    const target = site(source.site === "hub" ? 1 : 0);
    const repository = `soak/podman-${index}`;
    const reference = `${target.host}:${ctx.fleet.port}/${repository}:v1`;
    const digestFile = join(store.dir, `digest-${index}`);
    const pushArgs = ["push", "--cert-dir", certs, "--creds", creds("admin"), "--digestfile", digestFile, source.reference, `docker://${reference}`];
    await ctx.recorder.track("podman push", async () => {
      ensureRan("podman", pushArgs, await podman(pushArgs, options));
      const manifestDigest = (await readFile(digestFile, "utf8")).trim();
      ctx.recorder.pushes.push({ client: "podman", site: target.name, reference, repository, tag: "v1", manifestDigest, bytes: source.bytes });
    });
    await podman(["rmi", "--all", "--force"], options);
  }, 1000);
  return {
    async stop() {
      await traffic.stop();
      await store?.remove();
    },
  };
}
