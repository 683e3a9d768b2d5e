// What one gateway process is, decided once when it starts and handed to every generation it builds: its
// place in the fleet, where its counts live, its metrics, its logger, how backends resolve, and the pool of
// resources that outlive a reload (resources.ts). Nothing here is module state a caller could forget to set:
// a module learns the process's mode from the context it is given, not from a global someone set earlier.
import type { GatewayConfig } from "../config/schema.js";
import { processCounters, type CounterStore } from "../cluster/shared.js";
import type { Logger } from "../observe/log.js";
import type { GatewayMetrics } from "../observe/metrics.js";
import { configuredBackend, type BackendResolver } from "../backends/resolve.js";
import { ResourcePool } from "./resources.js";

/** single: one process serves everything; worker: one of a cluster's (the primary keeps the counts); primary: the cluster's supervisor. */
export type FleetRole = "single" | "worker" | "primary";

export interface ProcessContext {
  readonly role: FleetRole;
  readonly logger: Logger;
  /** Resources shared by every generation of this process: kept across reloads while their settings stay. */
  readonly resources: ResourcePool;
  /** The process's metrics: the request path counts into them whether or not they are served. */
  readonly metrics: GatewayMetrics;
  /** metrics.enabled as the process started (only a restart changes it): whether the stages report at all. */
  readonly metricsEnabled: boolean;
  /** Where in-memory counts live: this process, or (in a cluster worker) the primary. */
  readonly counters: CounterStore;
  /** Each backend's URL under `config`; a managed backend's is its running registry's. */
  backendsFor(config: GatewayConfig): BackendResolver;
}

export interface ProcessContextOptions {
  role?: FleetRole;
  logger: Logger;
  metrics: GatewayMetrics;
  metricsEnabled?: boolean;
  /** Default: this process's memory. */
  counters?: CounterStore;
  /** Default: backends as configured (no managed registries). */
  backendsFor?: (config: GatewayConfig) => BackendResolver;
}

export function createProcessContext(options: ProcessContextOptions): ProcessContext {
  return {
    role: options.role ?? "single",
    logger: options.logger,
    resources: new ResourcePool(),
    metrics: options.metrics,
    metricsEnabled: options.metricsEnabled ?? true,
    counters: options.counters ?? processCounters,
    backendsFor: options.backendsFor ?? (() => configuredBackend),
  };
}
