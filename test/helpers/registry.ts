import { randomBytes } from "node:crypto";
import { mkdtemp, mkdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./ports.js";
import { startProcess, waitFor, type ManagedProcess } from "./process.js";

export interface RegistryTokenAuth {
  realm: string;
  service: string;
  issuer: string;
  /** Path to a PEM bundle with the certificate(s) that sign the tokens. */
  rootCertBundle: string;
}

export interface RegistryOptions {
  auth?: RegistryTokenAuth;
  /** Fixed port (e.g. the 5001/5002 backends of DESIGN.md §8); ephemeral when omitted. */
  port?: number;
  readyTimeoutMs?: number;
}

export interface Registry {
  /** http://127.0.0.1:PORT */
  url: string;
  /** 127.0.0.1:PORT, the form image references use. */
  host: string;
  port: number;
  rootDir: string;
  process: ManagedProcess;
  stop(): Promise<void>;
}

const BIND_ATTEMPTS = 3;

/** Starts a real CNCF distribution registry with filesystem storage in a fresh temp dir. */
export async function startRegistry(options: RegistryOptions = {}): Promise<Registry> {
  const rootDir = await mkdtemp(join(tmpdir(), "rg-registry-"));
  try {
    for (let attempt = 1; ; attempt++) {
      const port = options.port ?? (await freePort());
      const registry = await tryStart(rootDir, port, options);
      if (registry !== "port-taken") return registry;
      // freePort() releases the port before the registry binds it; another process won the race.
      if (options.port !== undefined || attempt >= BIND_ATTEMPTS) throw new Error(`registry could not bind 127.0.0.1:${port}`);
    }
  } catch (err) {
    await rm(rootDir, { recursive: true, force: true });
    throw err;
  }
}

async function tryStart(rootDir: string, port: number, options: RegistryOptions): Promise<Registry | "port-taken"> {
  const configPath = join(rootDir, "config.yml");
  const storageDir = join(rootDir, "storage");
  await mkdir(storageDir, { recursive: true });
  await writeFile(configPath, registryConfig(storageDir, port, options.auth));

  const child = startProcess("docker-registry", ["serve", configPath], { name: `docker-registry :${port}` });
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitFor(() => answersV2(url, options.auth !== undefined), {
      timeoutMs: options.readyTimeoutMs ?? 15_000,
      intervalMs: 50,
      what: `registry at ${url}/v2/`,
      giveUpIf: () => (child.exitStatus ? `process exited (${JSON.stringify(child.exitStatus)})` : undefined),
    });
  } catch (err) {
    await child.stop(1000);
    if (/address already in use/i.test(child.output())) return "port-taken";
    throw new Error(`${(err as Error).message}\n--- registry output ---\n${child.output()}`);
  }

  return {
    url,
    host: `127.0.0.1:${port}`,
    port,
    rootDir,
    process: child,
    stop: async () => {
      await child.stop();
      await rm(rootDir, { recursive: true, force: true });
    },
  };
}

/** JSON is valid YAML, and JSON.stringify gets the quoting right for any path. */
function registryConfig(storageDir: string, port: number, auth: RegistryTokenAuth | undefined): string {
  const config: Record<string, unknown> = {
    version: "0.1",
    log: { level: "warn", accesslog: { disabled: true } },
    storage: { filesystem: { rootdirectory: storageDir }, delete: { enabled: true } },
    http: { addr: `127.0.0.1:${port}`, secret: randomBytes(16).toString("hex") },
  };
  if (auth) {
    config.auth = {
      token: { realm: auth.realm, service: auth.service, issuer: auth.issuer, rootcertbundle: auth.rootCertBundle },
    };
  }
  return `${JSON.stringify(config, null, 2)}\n`;
}

/** Ready means the API root answers: 200 when open, 401 when token auth guards it. */
async function answersV2(url: string, expectAuth: boolean): Promise<boolean> {
  const response = await fetch(`${url}/v2/`, { signal: AbortSignal.timeout(2000) });
  await response.arrayBuffer();
  return response.status === (expectAuth ? 401 : 200);
}
