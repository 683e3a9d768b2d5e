// Debian's HAProxy as the L4 balancer in front of several gateways: `mode tcp`, round robin, loopback only.
// TLS passes through untouched, so each gateway terminates its own handshakes as behind a cloud balancer.
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { freePort, isListening } from "./ports.js";
import { startProcess, waitFor, type ManagedProcess } from "./process.js";

export interface HaproxyFrontend {
  /** Port HAProxy listens on (127.0.0.1); ephemeral unless given. */
  port?: number;
  /** Ports on 127.0.0.1 of the servers behind it, in round-robin order. */
  servers: readonly number[];
  /** Start each server connection, health checks included, with a PROXY protocol header of this version. */
  sendProxy?: "v1" | "v2";
}

export interface Haproxy {
  /** The listening port of each frontend, in the order given. */
  ports: number[];
  readonly process: ManagedProcess;
  /** The configuration file HAProxy was started with (for diagnostics). */
  configText: string;
  stop(): Promise<void>;
}

/** A frontend whose port is chosen. */
export type ResolvedFrontend = HaproxyFrontend & { port: number };

/** One `frontend`/`backend` pair per entry; servers are health-checked by TCP connect every 500 ms. */
export function haproxyConfig(frontends: readonly ResolvedFrontend[]): string {
  const lines = [
    "global",
    "  maxconn 4096",
    "defaults",
    "  mode tcp",
    "  timeout connect 2s",
    // Long enough for a slow multi-GB layer: the gateway owns the real timeouts.
    "  timeout client 1h",
    "  timeout server 1h",
    "  timeout tunnel 1h",
  ];
  frontends.forEach((frontend, index) => {
    lines.push(`frontend f${index}`, `  bind 127.0.0.1:${frontend.port}`, `  default_backend b${index}`);
    lines.push(`backend b${index}`, "  balance roundrobin", "  option redispatch", "  retries 2");
    const proxy = frontend.sendProxy === undefined ? "" : ` ${SEND_PROXY[frontend.sendProxy]} check-send-proxy`;
    frontend.servers.forEach((port, server) => lines.push(`  server g${server} 127.0.0.1:${port} check inter 500ms fall 2 rise 1${proxy}`));
  });
  return `${lines.join("\n")}\n`;
}

const SEND_PROXY = { v1: "send-proxy", v2: "send-proxy-v2" } as const;

export async function startHaproxy(frontends: readonly HaproxyFrontend[]): Promise<Haproxy> {
  const resolved: ResolvedFrontend[] = [];
  for (const frontend of frontends) resolved.push({ ...frontend, port: frontend.port ?? (await freePort()) });
  return startHaproxyWithConfig(haproxyConfig(resolved), resolved.map((frontend) => frontend.port));
}

/** Starts HAProxy with a configuration written elsewhere (an example file); `ports` are its frontends' ports. */
export async function startHaproxyWithConfig(configText: string, ports: readonly number[]): Promise<Haproxy> {
  const dir = await mkdtemp(path.join(tmpdir(), "haproxy-"));
  const file = path.join(dir, "haproxy.cfg");
  await writeFile(file, configText);
  // -db: stay in the foreground, no daemon; -W: master-worker so SIGTERM stops everything.
  const child = startProcess("haproxy", ["-db", "-W", "-f", file], { name: "haproxy" });
  try {
    for (const port of ports) {
      await waitFor(() => isListening(port), {
        timeoutMs: 10_000,
        intervalMs: 25,
        what: `haproxy on 127.0.0.1:${port}`,
        giveUpIf: () => (child.exitStatus ? `haproxy exited (${JSON.stringify(child.exitStatus)})` : undefined),
      });
    }
  } catch (err) {
    await child.stop(1000);
    await rm(dir, { recursive: true, force: true });
    throw new Error(`${(err as Error).message}\n--- haproxy output ---\n${child.output()}`);
  }
  return {
    ports: [...ports],
    process: child,
    configText,
    async stop() {
      await child.stop(3000);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

