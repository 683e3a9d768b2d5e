// The docker CLI's traffic, from a private dockerd (see test/helpers/docker.ts for how it stays off the
// host): pull an earlier small push, tag it under a new name on the other site, push it, forget it.
// Addresses in 127.0.0.0/8 are docker's default insecure registries: it still speaks HTTPS to them but does
// not verify the certificate (the CA is installed in certs.d anyway, as a user would).
import { startDockerEngine, type DockerClient, type DockerEngine } from "../test/helpers/docker.js";
import { formatRun } from "../test/helpers/process.js";
import type { ClientContext, ClientTraffic } from "./clients.js";
import { USERS } from "./gateway-config.js";
import { HUB, TEAM } from "./gateway-config.js";
import { repeat } from "./recorder.js";

const SMALL = 4 << 20;

async function loggedIn(engine: DockerEngine, ctx: ClientContext): Promise<DockerClient> {
  const client = await engine.client();
  for (const host of [HUB, TEAM]) {
    const hostPort = `${host}:${ctx.fleet.port}`;
    await engine.trust(hostPort, ctx.fleet.caPem);
    const args = ["login", "--username", "admin", "--password-stdin", hostPort];
    const result = await client.run(args, { input: USERS.admin });
    if (result.code !== 0) throw new Error(formatRun("docker", args, result));
  }
  return client;
}

async function docker(client: DockerClient, args: string[]): Promise<string> {
  const result = await client.run(args, { timeoutMs: 300_000 });
  if (result.code !== 0) throw new Error(formatRun("docker", args, result).slice(0, 600));
  return result.stdout;
}

export async function dockerTraffic(ctx: ClientContext): Promise<ClientTraffic> {
  const engine = await startDockerEngine({ hostsFile: ctx.fleet.hosts });
  const client = await loggedIn(engine, ctx);
  let n = 0;
  const traffic = repeat(async () => {
    const index = n++;
    const candidates = ctx.recorder.pushes.filter((p) => p.bytes <= SMALL && p.client !== "docker");
    const source = candidates[(index * 5 + 1) % Math.max(1, candidates.length)];
    if (!source) return;
    const pulled = await ctx.recorder.track("docker pull", () => docker(client, ["pull", source.reference]));
    if (pulled === undefined) return;
    const site = source.site === "hub" ? ("team" as const) : ("hub" as const);
    const repository = `soak/docker-${index}`;
    const reference = `${site === "hub" ? HUB : TEAM}:${ctx.fleet.port}/${repository}:v1`;
    await docker(client, ["tag", source.reference, reference]).catch(() => undefined);
    await ctx.recorder.track("docker push", async () => {
      const output = await docker(client, ["push", reference]);
      const manifestDigest = /digest: (sha256:[0-9a-f]{64})/.exec(output)?.[1];
      if (!manifestDigest) throw new Error(`docker push ${reference}: no digest in its output: ${output.slice(-300)}`);
      ctx.recorder.pushes.push({ client: "docker", site, reference, repository, tag: "v1", manifestDigest, bytes: source.bytes });
    });
    await docker(client, ["rmi", "--force", source.reference, reference]).catch(() => undefined);
  }, 1000);
  return {
    async stop() {
      await traffic.stop();
      await engine.stop();
    },
  };
}
