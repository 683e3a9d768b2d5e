// What a reload cannot change in a running process: the listeners are bound, and their TLS floor and
// header limit are fixed when they are created. A reload applies everything else and names these keys in
// a warning, so nobody believes a new port is live when it is not.
import type { GatewayConfig } from "./schema.js";

const RESTART_ONLY: readonly { key: string; read: (config: GatewayConfig) => unknown }[] = [
  { key: "listen", read: (c) => c.listen },
  { key: "http.listen", read: (c) => c.http.listen },
  { key: "admin.listen", read: (c) => c.admin.listen },
  { key: "admin.allowNonLoopback", read: (c) => c.admin.allowNonLoopback },
  // The admin credential is read once, at start (admin-token.ts).
  { key: "admin.token", read: (c) => c.admin.token },
  { key: "admin.tokenFile", read: (c) => c.admin.tokenFile },
  { key: "tls.minVersion", read: (c) => c.tls.minVersion },
  // The control plane keeps the TLS store it started with (its ACME manager, notices and served reports).
  { key: "tls.store", read: (c) => c.tls.store },
  { key: "tls.storeKeyFile", read: (c) => c.tls.storeKeyFile },
  { key: "limits.maxHeaderBytes", read: (c) => c.limits.maxHeaderBytes },
  { key: "timeouts.handshake", read: (c) => c.timeouts.handshake },
  { key: "log.format", read: (c) => c.log.format },
  // /metrics is served (or not) by the admin listener as it was started.
  { key: "metrics.enabled", read: (c) => c.metrics.enabled },
  { key: "workers", read: (c) => c.workers },
];

/** The keys whose new values only a restart applies, in a fixed order. */
export function keysNeedingRestart(running: GatewayConfig, next: GatewayConfig): string[] {
  return RESTART_ONLY.filter(({ read }) => JSON.stringify(read(running)) !== JSON.stringify(read(next))).map(({ key }) => key);
}
