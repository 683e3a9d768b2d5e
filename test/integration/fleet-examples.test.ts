// The fleet examples the README quotes, run as written: config/examples/fleet/haproxy.cfg passes
// `haproxy -c` and, with only its addresses changed to loopback ports, balances two gateways started from
// config/examples/fleet/gateway.yaml that share one Redis (a pull through it works, and one rate limit
// counts the pulls of both); config/examples/kubernetes/*.yaml parse, their probes reach the endpoints the
// gateway serves where its configuration says, and the configuration in the ConfigMap passes `config check`.
import { randomBytes } from "node:crypto";
import assert from "node:assert/strict";
import { mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { parse, parseAllDocuments } from "yaml";
import { cli, REPO_ROOT, startGatewayProcess, type GatewayProcess } from "../helpers/cli.js";
import { httpsCall, type HttpsCall } from "../helpers/cluster.js";
import { startHaproxyWithConfig, type Haproxy } from "../helpers/haproxy.js";
import { scrape, valueOf } from "../helpers/metrics.js";
import { OCI_MANIFEST, sha256Digest } from "../helpers/oci.js";
import { freePort } from "../helpers/ports.js";
import { formatRun, run } from "../helpers/process.js";
import { startRedis, type RedisServer } from "../helpers/redis.js";
import { startRegistry, type Registry } from "../helpers/registry.js";
import { pushTinyImage, type TinyImage } from "../helpers/seed.js";

const FLEET = path.join(REPO_ROOT, "config/examples/fleet");
const KUBERNETES = path.join(REPO_ROOT, "config/examples/kubernetes");
const HOST = "registry.example.com";
const PULLS_ALLOWED = 4;

/** The example with its frontend bound to a loopback port and its servers replaced by the given gateways. */
function onLoopback(example: string, frontendPort: number, gatewayPorts: readonly number[]): string {
  const lines = example.split("\n");
  const bind = lines.findIndex((line) => /^\s*bind\s/.test(line));
  assert.ok(bind >= 0, "the example binds a frontend");
  lines[bind] = `  bind 127.0.0.1:${frontendPort}`;
  const servers = lines.filter((line) => /^\s*server\s/.test(line));
  assert.ok(servers.length >= 2, "the example balances several gateways");
  const kept = lines.filter((line) => !/^\s*server\s/.test(line));
  return [...kept, ...gatewayPorts.map((port, i) => `  server gw${i + 1} 127.0.0.1:${port}`), ""].join("\n");
}

const STORE_KEY = randomBytes(32).toString("base64");

describe("config/examples/fleet: HAProxy in front of two gateways sharing one Redis", () => {
  let dir: string;
  let registry: Registry;
  let redis: RedisServer;
  let image: TinyImage;
  const gateways: GatewayProcess[] = [];
  let haproxy: Haproxy;
  let ca: string;

  async function startFleetGateway(name: string): Promise<GatewayProcess> {
    const [httpsPort, adminPort] = [await freePort(), await freePort()];
    return startGatewayProcess(path.join(FLEET, "gateway.yaml"), {
      REDIS_URL: redis.url,
      BACKEND_URL: registry.url,
      DATA_DIR: path.join(dir, name),
      GATEWAY_LISTEN: `127.0.0.1:${httpsPort}`,
      GATEWAY_ADMIN_LISTEN: `127.0.0.1:${adminPort}`,
      GATEWAY_WORKERS: "1",
      GATEWAY_SITES_0_LIMITS_0_RATE: String(PULLS_ALLOWED),
      GATEWAY_TLS_STORE_KEY: STORE_KEY,
      // HAProxy connects from loopback here, with the PROXY header the example sends.
      BALANCER_ADDRESS: "127.0.0.1/32",
    });
  }

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "rg-fleet-"));
    [registry, redis] = await Promise.all([startRegistry(), startRedis()]);
    image = await pushTinyImage(registry.url, "fleet/app", "v1", "fleet-examples-seed");
    gateways.push(...(await Promise.all([startFleetGateway("gw1"), startFleetGateway("gw2")])));
    // One CA for the fleet, through Redis, though each gateway has a data directory of its own.
    const cas = await Promise.all(gateways.map((g) => readFile(g.caFile!, "utf8")));
    assert.equal(cas[0], cas[1], "both gateways serve certificates of one CA");
    ca = cas[0]!;
    const example = await readFile(path.join(FLEET, "haproxy.cfg"), "utf8");
    const port = await freePort();
    haproxy = await startHaproxyWithConfig(onLoopback(example, port, gateways.map((g) => g.httpsPort)), [port]);
  });

  after(async () => {
    await haproxy?.stop();
    await Promise.all(gateways.map((g) => g.process.stop(10_000)));
    await Promise.all([registry?.stop(), redis?.stop()]);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const call = (urlPath: string, extra: Partial<HttpsCall> = {}): HttpsCall => ({ port: haproxy.ports[0]!, ca, host: HOST, path: urlPath, ...extra });
  const manifest = () => httpsCall(call(`/v2/${image.repository}/manifests/${image.tag}`, { headers: { accept: OCI_MANIFEST } }));
  const pullsServed = async (gateway: GatewayProcess) =>
    valueOf(await scrape(gateway.adminPort), "registry_gateway_requests_total", { site: "registry", operation: "manifest", method: "GET", code: "200" });

  it("the example file is a valid HAProxy configuration as shipped", async () => {
    const args = ["-c", "-f", path.join(FLEET, "haproxy.cfg")];
    const result = await run("haproxy", args);
    assert.equal(result.code, 0, formatRun("haproxy", args, result));
  });

  it("a pull through HAProxy works, and the pull limit counts the pulls of both gateways as one", async () => {
    const first = await manifest();
    assert.equal(first.status, 200, first.body.toString());
    assert.equal(first.headers["docker-content-digest"], image.manifestDigest);
    const config = await httpsCall(call(`/v2/${image.repository}/blobs/${image.configDigest}`));
    assert.equal(config.status, 200);
    assert.equal(sha256Digest(config.body), image.configDigest);

    // Each on a new connection: HAProxy hands them to the gateways in turn.
    const statuses = [first.status];
    for (let i = 1; i < PULLS_ALLOWED + 2; i++) statuses.push((await manifest()).status);
    assert.deepEqual(statuses, [...Array(PULLS_ALLOWED).fill(200), 429, 429], "one limit of 4 pulls for the fleet, not 4 per gateway");
    const served = await Promise.all(gateways.map(pullsServed));
    assert.ok(served.every((n) => n > 0), `both gateways served pulls: ${served.join(" and ")}`);
    assert.equal(served[0]! + served[1]!, PULLS_ALLOWED);
  });

  it("the Kubernetes probe commands, aimed at a gateway's admin port, pass; aimed at nothing, fail", async () => {
    const { deployment } = await kubernetesManifests();
    for (const probe of ["readinessProbe", "livenessProbe"] as const) {
      const command = probeCommand(deployment, probe);
      const aimed = (port: number) => command.slice(1).map((arg) => arg.replace(/127\.0\.0\.1:\d+/, `127.0.0.1:${port}`));
      const passing = await run(process.execPath, aimed(gateways[0]!.adminPort));
      assert.equal(passing.code, 0, formatRun(command[0]!, aimed(gateways[0]!.adminPort), passing));
      const failing = await run(process.execPath, aimed(await freePort()));
      assert.equal(failing.code, 1, `${probe} fails when nothing answers`);
    }
  });
});

type Manifest = Record<string, any>;

async function kubernetesManifests(): Promise<{ all: Manifest[]; deployment: Manifest; kind: (kind: string, name?: string) => Manifest }> {
  const all: Manifest[] = [];
  for (const file of (await readdir(KUBERNETES)).filter((f) => f.endsWith(".yaml")).sort()) {
    for (const document of parseAllDocuments(await readFile(path.join(KUBERNETES, file), "utf8"))) {
      assert.deepEqual(document.errors, [], `${file} parses`);
      all.push(document.toJS() as Manifest);
    }
  }
  const kind = (wanted: string, name = "registry-gateway") => {
    const found = all.find((m) => m.kind === wanted && m.metadata?.name === name);
    assert.ok(found, `a ${wanted} named ${name}`);
    return found;
  };
  return { all, deployment: kind("Deployment"), kind };
}

/** The gateway's own configuration, as the ConfigMap carries it. */
function embeddedConfig(kind: (kind: string, name?: string) => Manifest): string {
  return kind("ConfigMap", "registry-gateway-config").data["gateway.yaml"] as string;
}

function gatewayContainer(deployment: Manifest): Manifest {
  const container = deployment.spec.template.spec.containers.find((c: Manifest) => c.name === "gateway");
  assert.ok(container, "the Deployment runs a container named gateway");
  return container;
}

function probeCommand(deployment: Manifest, probe: "readinessProbe" | "livenessProbe"): string[] {
  const command = gatewayContainer(deployment)[probe]?.exec?.command as string[] | undefined;
  assert.ok(Array.isArray(command) && command[0] === "node", `${probe} runs node in the container`);
  return command;
}

describe("config/examples/kubernetes", () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "rg-k8s-"));
  });
  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("the probes ask the admin listener the gateway configures for /readyz and /healthz", async () => {
    const { deployment, kind } = await kubernetesManifests();
    const admin = String((parse(embeddedConfig(kind)) as Manifest).admin.listen);
    for (const [probe, endpoint] of [["readinessProbe", "/readyz"], ["livenessProbe", "/healthz"]] as const) {
      const script = probeCommand(deployment, probe).join(" ");
      const url = /fetch\('([^']+)'\)/.exec(script)?.[1];
      assert.equal(url, `http://${admin}${endpoint}`, `${probe} asks ${endpoint} where admin.listen says`);
    }
  });

  it("ports, labels, mounts and secrets agree between the manifests and the gateway's configuration", async () => {
    const { all, deployment, kind } = await kubernetesManifests();
    const container = gatewayContainer(deployment);
    const config = parse(embeddedConfig(kind)) as Manifest;
    const httpsPort = Number(String(config.listen).split(":").at(-1));
    assert.deepEqual(container.ports, [{ name: "https", containerPort: httpsPort }]);
    const service = kind("Service");
    assert.equal(service.spec.ports[0].targetPort, "https");
    const labels = deployment.spec.template.metadata.labels;
    for (const selector of [deployment.spec.selector.matchLabels, service.spec.selector, kind("PodDisruptionBudget").spec.selector.matchLabels]) {
      assert.deepEqual(selector, labels);
    }
    const configMount = container.volumeMounts.find((m: Manifest) => m.name === "config");
    assert.equal(container.args.join(" "), `serve --config ${configMount.mountPath}/gateway.yaml`);
    const secret = kind("Secret");
    for (const variable of container.env) assert.ok(variable.valueFrom.secretKeyRef.key in secret.stringData, `${variable.name} is in the Secret`);
    assert.ok(all.some((m) => m.kind === "Service" && m.metadata.name === new URL(config.redis.url.replace("${REDIS_PASSWORD}", "x")).hostname));
  });

  it("the configuration in the ConfigMap passes `registry-gateway config check` with the Deployment's environment", async () => {
    const { deployment, kind } = await kubernetesManifests();
    const file = path.join(dir, "gateway.yaml");
    await writeFile(file, embeddedConfig(kind));
    const secret = kind("Secret").stringData as Record<string, string>;
    const env: Record<string, string> = {};
    // The store key seals what the fleet keeps in Redis; the certificate store reads it, not the configuration.
    for (const variable of gatewayContainer(deployment).env as Manifest[]) {
      if (variable.name !== "GATEWAY_TLS_STORE_KEY") env[variable.name] = secret[variable.valueFrom.secretKeyRef.key]!;
    }
    const args = ["config", "check", file];
    const result = await cli(args, { env });
    assert.equal(result.code, 0, formatRun("registry-gateway", args, result));
    assert.match(result.stdout, /OK \(1 site\)/);
  });
});

/** A file's body as the README quotes it: without the comment block that heads the file. */
function withoutHeader(text: string): string {
  const lines = text.split("\n");
  const first = lines.findIndex((line) => line.trim() !== "" && !line.startsWith("#"));
  return lines.slice(first).join("\n").trimEnd();
}

describe("README: the fleet examples it quotes are the files shipped", () => {
  it("quotes haproxy.cfg, the fleet gateway.yaml and the ConfigMap's configuration as they are", async () => {
    const readme = await readFile(path.join(REPO_ROOT, "README.md"), "utf8");
    const { kind } = await kubernetesManifests();
    const quoted = {
      "config/examples/fleet/haproxy.cfg": withoutHeader(await readFile(path.join(FLEET, "haproxy.cfg"), "utf8")),
      "config/examples/fleet/gateway.yaml": withoutHeader(await readFile(path.join(FLEET, "gateway.yaml"), "utf8")),
      "the ConfigMap's gateway.yaml": embeddedConfig(kind).trimEnd(),
    };
    for (const [file, body] of Object.entries(quoted)) assert.ok(readme.includes(`\n${body}\n\`\`\``), `the README quotes ${file} as shipped`);
  });
});
