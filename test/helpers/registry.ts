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
  /** Fixed port (e.g. 5001/5002, the backends of config/gateway.yaml's example sites); ephemeral when omitted. */
  port?: number;
  readyTimeoutMs?: number;
  /**
   * Turn distribution's access log on: one combined-log-format line per request on its stdout, e.g.
   * `127.0.0.1 - - [date] "GET /v2/a/manifests/x HTTP/1.1" 200 123 "" "user-agent"`. Read it with
   * `accessLog(registry)`. Keeps up to `keepLines` output lines (default 100 000) instead of 200.
   */
  accessLog?: boolean;
  keepLines?: number;
  /**
   * Use this directory (storage in ROOT/storage) instead of a fresh temp one, and leave it on stop: replicas
   * of one registry share it, and a registry restarted on it finds its content again. The config file is
   * ROOT/config-PORT.yml, so replicas do not overwrite each other's.
   */
  rootDir?: string;
  /** http.secret, which signs the upload `_state` parameter; random when omitted. */
  secret?: string;
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

/** Starts a real CNCF distribution registry with filesystem storage in a fresh temp dir (or options.rootDir). */
export async function startRegistry(options: RegistryOptions = {}): Promise<Registry> {
  const rootDir = options.rootDir ?? (await mkdtemp(join(tmpdir(), "rg-registry-")));
  try {
    for (let attempt = 1; ; attempt++) {
      const port = options.port ?? (await freePort());
      const registry = await tryStart(rootDir, port, options);
      if (registry !== "port-taken") return registry;
      // freePort() releases the port before the registry binds it; another process won the race.
      if (options.port !== undefined || attempt >= BIND_ATTEMPTS) throw new Error(`registry could not bind 127.0.0.1:${port}`);
    }
  } catch (err) {
    if (options.rootDir === undefined) await rm(rootDir, { recursive: true, force: true });
    throw err;
  }
}

async function tryStart(rootDir: string, port: number, options: RegistryOptions): Promise<Registry | "port-taken"> {
  const configPath = join(rootDir, options.rootDir === undefined ? "config.yml" : `config-${port}.yml`);
  const storageDir = join(rootDir, "storage");
  await mkdir(storageDir, { recursive: true });
  await writeFile(configPath, registryConfig(storageDir, port, options.auth, options.accessLog ?? false, options.secret));

  const child = startProcess("docker-registry", ["serve", configPath], {
    name: `docker-registry :${port}`,
    keepLines: options.keepLines ?? (options.accessLog ? 100_000 : undefined),
  });
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
      if (options.rootDir === undefined) await rm(rootDir, { recursive: true, force: true });
    },
  };
}

/** JSON is valid YAML, and JSON.stringify gets the quoting right for any path. */
function registryConfig(storageDir: string, port: number, auth: RegistryTokenAuth | undefined, accessLog: boolean, secret?: string): string {
  const config: Record<string, unknown> = {
    version: "0.1",
    log: { level: "warn", accesslog: { disabled: !accessLog } },
    storage: { filesystem: { rootdirectory: storageDir }, delete: { enabled: true } },
    http: { addr: `127.0.0.1:${port}`, secret: secret ?? randomBytes(16).toString("hex") },
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

/** One request as distribution's access log (gorilla/handlers CombinedLoggingHandler) recorded it. */
export interface AccessLogLine {
  /** The whole line, for assertion messages. */
  line: string;
  method: string;
  /** The request target exactly as the backend received it, as a byte string (one char per byte, latin1). */
  uri: string;
  proto: string;
  status: number;
  userAgent: string;
}

const COMBINED = /^\S+ - \S+ \[[^\]]*\] "(\S+) (\S+) (\S+)" (\d{3}) (?:\d+|-) "((?:[^"\\]|\\.)*)" "((?:[^"\\]|\\.)*)"$/;

/** Every access-log line the registry wrote so far (started with `accessLog: true`), in order. */
export function accessLog(registry: Registry): AccessLogLine[] {
  const lines: AccessLogLine[] = [];
  for (const raw of registry.process.output().split("\n")) {
    if (!raw.startsWith("[stdout] ")) continue;
    const line = raw.slice("[stdout] ".length);
    const match = COMBINED.exec(line);
    if (!match) continue;
    lines.push({
      line,
      method: match[1]!,
      uri: unquoteGo(match[2]!),
      proto: match[3]!,
      status: Number(match[4]),
      userAgent: Buffer.from(unquoteGo(match[6]!), "latin1").toString("utf8"),
    });
  }
  return lines;
}

/**
 * Reverses gorilla/handlers' appendQuoted (`\\`, `\"`, `\xNN` for bytes that are not UTF-8, `\uNNNN` and
 * `\UNNNNNNNN` for unprintable runes, `\n` and friends); printable runes stay as their UTF-8 bytes. Returns
 * the original bytes as a latin1 string.
 */
export function unquoteGo(text: string): string {
  const bytes: number[] = [];
  const pushRune = (codePoint: number) => bytes.push(...Buffer.from(String.fromCodePoint(codePoint), "utf8"));
  const simple: Record<string, number> = { a: 7, b: 8, f: 12, n: 10, r: 13, t: 9, v: 11, "\\": 92, '"': 34 };
  for (let i = 0; i < text.length; ) {
    const char = text[i]!;
    if (char !== "\\") {
      const codePoint = text.codePointAt(i)!;
      pushRune(codePoint);
      i += codePoint > 0xffff ? 2 : 1;
      continue;
    }
    const kind = text[i + 1]!;
    if (kind === "x") {
      bytes.push(parseInt(text.slice(i + 2, i + 4), 16));
      i += 4;
    } else if (kind === "u") {
      pushRune(parseInt(text.slice(i + 2, i + 6), 16));
      i += 6;
    } else if (kind === "U") {
      pushRune(parseInt(text.slice(i + 2, i + 10), 16));
      i += 10;
    } else if (kind in simple) {
      bytes.push(simple[kind]!);
      i += 2;
    } else {
      throw new Error(`unexpected escape \\${kind} in access log text ${JSON.stringify(text)}`);
    }
  }
  return Buffer.from(bytes).toString("latin1");
}
