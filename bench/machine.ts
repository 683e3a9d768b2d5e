// What the numbers were measured on: cores, memory, and the version of every component in the path.
import { readFile } from "node:fs/promises";
import { release } from "node:os";
import { run } from "../test/helpers/process.js";

async function firstLine(cmd: string, args: string[]): Promise<string> {
  const result = await run(cmd, args, { timeoutMs: 10_000 });
  // nginx -v prints on stderr.
  return (result.stdout.trim() || result.stderr.trim()).split("\n")[0] ?? "unknown";
}

/** `gatewayWorkers`: the worker processes the gateway under test started (its ready line says). */
export async function describeMachine(gatewayWorkers: number): Promise<string[]> {
  const cpuinfo = await readFile("/proc/cpuinfo", "utf8").catch(() => "");
  const cpu = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1] ?? "unknown CPU";
  const free = (await run("free", ["-g"], { timeoutMs: 10_000 })).stdout.trim().split("\n");
  const memLine = free.find((line) => line.startsWith("Mem:"))?.replace(/\s+/g, " ") ?? "unknown";
  const [nproc, nginx, caddy, registry, wrk, curl] = await Promise.all([
    firstLine("nproc", []),
    firstLine("nginx", ["-v"]),
    firstLine("caddy", ["version"]),
    firstLine("docker-registry", ["--version"]),
    firstLine("wrk", ["-v"]),
    firstLine("curl", ["--version"]),
  ]);
  return [
    `CPU: \`nproc\` = ${nproc}, ${cpu}`,
    `Memory (\`free -g\`, columns total used free shared buff/cache available): \`${memLine}\``,
    `Kernel: Linux ${release()}`,
    `Node: ${process.version}, for the bench, its Node clients and every gateway process (gateway: ${gatewayProcesses(gatewayWorkers)}; the feature-overhead and login-flood rows pin \`workers: 1\`, one process)`,
    `nginx: ${nginx.replace(/^nginx version: /, "")}`,
    `Caddy: ${caddy}`,
    `Registry: ${registry}`,
    `Clients: ${wrk.split(" Copyright")[0]}; ${curl.split(" (")[0]}; Node https for uploads`,
  ];
}

function gatewayProcesses(workers: number): string {
  return workers === 1 ? "`workers` default auto = 1 on this machine: one process, no cluster" : `\`workers\` default auto = ${workers} worker processes plus a primary`;
}
