// /metrics of a cluster: every worker's metrics summed, read over IPC (rpc.ts) by the fleet's primary.
import type { Registry } from "prom-client";
import type { MetricsExporter } from "../admin.js";
import type { Rpc } from "./rpc.js";

/** A worker whose metrics are read. */
export interface MetricsSource {
  number: number;
  rpc: Rpc;
}

type MetricsJson = Awaited<ReturnType<Registry["getMetricsAsJSON"]>>;

/** prom-client, for summing the workers' metrics: loaded by the first scrape (or worker exit), not at start. */
const promClient = () => import("prom-client");

/**
 * /metrics for the whole cluster: every worker's metrics summed (gauges as each metric's `aggregator`
 * says). A worker that dies takes its counts with it, and its replacement starts from zero: summed counters
 * would go backwards, which Prometheus reads as a reset. So each worker's last reading is kept, and when it
 * dies its counters and histograms are carried on in `carried`: the sum never drops.
 */
export class WorkerMetrics implements MetricsExporter {
  readonly #latest = new Map<number, MetricsJson>();
  #carried: MetricsJson | null = null;
  /** Departures are folded into `carried` one after the other; a scrape waits for them. */
  #departures: Promise<void> = Promise.resolve();
  /** prom-client's, known once it is loaded (by the first scrape, before the answer goes out). */
  contentType = "";

  constructor(private readonly live: () => MetricsSource[]) {}

  async snapshot(): Promise<void> {
    const members = this.live();
    const readings = await Promise.allSettled(members.map((m) => m.rpc.call<MetricsJson>("metrics", {}, 5000)));
    readings.forEach((reading, index) => {
      if (reading.status === "fulfilled") this.#latest.set(members[index]!.number, reading.value);
    });
  }

  async exposition(): Promise<string> {
    const { AggregatorRegistry } = await promClient();
    this.contentType = AggregatorRegistry.PROMETHEUS_CONTENT_TYPE;
    await this.snapshot();
    await this.#departures;
    const all = [...this.#latest.values(), ...(this.#carried ? [this.#carried] : [])];
    return all.length ? AggregatorRegistry.aggregate(all).metrics() : "";
  }

  /** Worker `number` is gone: what it counted stays counted. */
  departed(number: number): void {
    const last = this.#latest.get(number);
    this.#latest.delete(number);
    if (!last) return;
    // prom-client's JSON says "counter" / "histogram" at run time; its typings call that an enum.
    const cumulative = last.filter((metric) => ["counter", "histogram"].includes(String(metric.type)));
    this.#departures = this.#departures.then(async () => {
      const { AggregatorRegistry } = await promClient();
      this.#carried = await AggregatorRegistry.aggregate([cumulative, ...(this.#carried ? [this.#carried] : [])]).getMetricsAsJSON();
    });
  }
}
