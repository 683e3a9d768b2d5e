// Every metric the gateway exports is defined here, and only here, so names and label sets cannot drift
// apart. Other modules record through the small typed API at the bottom of GatewayMetrics and never see
// prom-client.
//
// Labels are bounded by construction: site and backend come from configuration, operation from the
// route classifier's fixed list, method and reason from fixed lists (anything else becomes "OTHER" /
// "other"), code is an HTTP status. Never a repository, digest, user name or client address.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { UpstreamFailure } from "../proxy/forward.js";
import type { RouteKind } from "../registry/routes.js";

export const METRIC_PREFIX = "registry_gateway_";

/** The operation label: the route kind, or "other" when the request never got as far as classifying. */
export type Operation = RouteKind;
export const OPERATIONS: readonly Operation[] = ["base", "catalog", "tags", "manifest", "blob", "upload", "referrers", "token", "search", "ping", "browser", "other"];

/** The site label of a request whose Host matched no site (site names are never empty). */
export const UNKNOWN_SITE = "";

const METHODS = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]);

export const UPSTREAM_FAILURES: readonly UpstreamFailure[] = ["refused", "timeout", "reset", "other"];

/** Why authentication or authorization failed; the auth code picks one, unknown values count as "other". */
export const AUTH_FAILURE_REASONS = [
  "missing_credentials",
  "invalid_credentials",
  "invalid_token",
  "expired_token",
  "insufficient_scope",
  "denied",
  /** Too many failed logins for this user from this address: answered 429 without checking the password. */
  "throttled",
  /** Too many password checks waiting for a hashing thread: answered 503 without checking the password. */
  "overloaded",
  "other",
] as const;
export type AuthFailureReason = (typeof AUTH_FAILURE_REASONS)[number];
const AUTH_FAILURE_REASON_SET: ReadonlySet<string> = new Set(AUTH_FAILURE_REASONS);

/** One finished request, as the observer hands it over. */
export interface RequestSample {
  site: string;
  operation: Operation;
  method: string;
  /** HTTP status sent; 0 when the client went away before one was sent. */
  status: number;
  durationMs: number;
  /** Request body bytes forwarded to the backend. */
  bytesIn: number;
  /** Response body bytes sent to the client. */
  bytesOut: number;
  /** Configured backend origin, when the request was forwarded. */
  backend?: string;
  /** From sending the request to the backend's response headers. */
  upstreamMs?: number;
  upstreamFailure?: UpstreamFailure;
}

/**
 * A running gateway, read at scrape time: the request path pays nothing for these, and a certificate
 * replaced by rotation shows up at the next scrape without anyone having to report it.
 */
export interface GatewaySource {
  requestsInFlight(): number;
  clientConnections(): number;
  certificates(): readonly CertificateExpiry[];
  /** Every backend of the configuration in service, with its pool's view of it. */
  backends(): readonly BackendHealth[];
}

export interface BackendHealth {
  pool: string;
  backend: string;
  healthy: boolean;
  outstanding: number;
}

export interface CertificateExpiry {
  site: string;
  hosts: readonly string[];
  notAfter: Date;
}

// Registry traffic spans a 2 ms manifest HEAD to an hour-long layer upload.
const REQUEST_SECONDS_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900];
const UPSTREAM_SECONDS_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/**
 * prom-client's default gauges named `*_total` break the naming rule `promtool check metrics` enforces
 * (only counters end in _total); each has an unsuffixed twin broken down by type, so nothing is lost.
 */
const DEFAULT_METRICS_DROPPED = ["nodejs_active_handles_total", "nodejs_active_requests_total", "nodejs_active_resources_total"];

type RequestLabels = { site: string; operation: Operation; method: string; code: string };
type BodyLabels = { site: string; operation: Operation };

/** Label objects built once per site and reused: prom-client hashes them per call, we skip the allocation. */
class SiteLabels {
  readonly site: { site: string };
  readonly body: Record<Operation, BodyLabels>;
  private readonly requests = new Map<string, RequestLabels>();

  constructor(readonly name: string) {
    this.site = { site: name };
    this.body = Object.fromEntries(OPERATIONS.map((operation) => [operation, { site: name, operation }])) as Record<Operation, BodyLabels>;
  }

  request(operation: Operation, method: string, status: number): RequestLabels {
    const key = `${operation} ${method} ${status}`;
    let labels = this.requests.get(key);
    if (!labels) {
      labels = { site: this.name, operation, method, code: String(status) };
      this.requests.set(key, labels);
    }
    return labels;
  }
}

export class GatewayMetrics {
  readonly registry = new Registry();
  private readonly sites = new Map<string, SiteLabels>();
  private readonly backends = new Map<string, { backend: string }>();
  private readonly liveSources = new Set<GatewaySource>();
  /** Set through setCertificateNotAfter, for certificates no watched gateway presents; key site + host. */
  private readonly reportedCertificates = new Map<string, { site: string; host: string; notAfter: number }>();
  private processMetricsOn = false;

  private readonly requests: Counter<keyof RequestLabels>;
  private readonly requestSeconds: Histogram<keyof RequestLabels>;
  private readonly requestBodyBytes: Counter<keyof BodyLabels>;
  private readonly responseBodyBytes: Counter<keyof BodyLabels>;
  private readonly blobPulledBytes: Counter<"site">;
  private readonly blobPushedBytes: Counter<"site">;
  private readonly upstreamSeconds: Histogram<"backend">;
  private readonly upstreamErrors: Counter<"backend" | "reason">;
  private readonly tlsHandshakeFailures: Counter;
  private readonly authFailures: Counter<"site" | "reason">;
  private readonly rateLimitedRequests: Counter<"site" | "limit">;
  private readonly loginsThrottled: Counter<"site">;
  private readonly redisUp: Gauge;
  private redisUpRegistered = false;
  private readonly certificateNotAfter: Gauge<"site" | "host">;
  private readonly configReloads: Counter<"result">;
  private readonly groupPassedOverTotal: Counter<"site" | "member" | "reason">;
  private readonly workerRequests: Counter<"worker">;
  /** This process's worker number in a cluster; null in a single process (no worker label at all). */
  private worker: { worker: string } | null = null;
  private readonly configLastSuccess: Gauge;

  constructor() {
    const registers = [this.registry];
    const name = (suffix: string) => METRIC_PREFIX + suffix;
    const live = this.liveSources;
    const reported = this.reportedCertificates;
    const sum = (read: (source: GatewaySource) => number) => {
      let total = 0;
      for (const source of live) total += read(source);
      return total;
    };

    this.requests = new Counter({
      name: name("requests_total"),
      help: "Requests answered, by site, operation, method and HTTP status (code 0: the client left before a status was sent).",
      labelNames: ["site", "operation", "method", "code"],
      registers,
    });
    this.requestSeconds = new Histogram({
      name: name("request_duration_seconds"),
      help: "Time from receiving a request's headers to the end of its response.",
      labelNames: ["site", "operation", "method", "code"],
      buckets: REQUEST_SECONDS_BUCKETS,
      registers,
    });
    this.requestBodyBytes = new Counter({
      name: name("request_body_bytes_total"),
      help: "Request body bytes received from clients and forwarded to the backend.",
      labelNames: ["site", "operation"],
      registers,
    });
    this.responseBodyBytes = new Counter({
      name: name("response_body_bytes_total"),
      help: "Response body bytes sent to clients (relayed from the backend or written by the gateway).",
      labelNames: ["site", "operation"],
      registers,
    });
    this.blobPulledBytes = new Counter({
      name: name("blob_pulled_bytes_total"),
      help: "Blob bytes served to clients (response bodies of blob GETs answered 200 or 206).",
      labelNames: ["site"],
      registers,
    });
    this.blobPushedBytes = new Counter({
      name: name("blob_pushed_bytes_total"),
      help: "Blob bytes received from clients in uploads (request bodies of upload POST, PATCH and PUT).",
      labelNames: ["site"],
      registers,
    });
    new Gauge({
      name: name("requests_in_flight"),
      help: "Requests being handled right now.",
      registers,
      collect() {
        this.set(sum((source) => source.requestsInFlight()));
      },
    });
    new Gauge({
      name: name("client_connections"),
      help: "Client TCP connections open on the HTTPS listener.",
      registers,
      collect() {
        this.set(sum((source) => source.clientConnections()));
      },
    });
    this.tlsHandshakeFailures = new Counter({
      name: name("tls_handshake_failures_total"),
      help: "TLS handshakes with clients that failed.",
      registers,
    });
    this.upstreamSeconds = new Histogram({
      name: name("upstream_request_duration_seconds"),
      help: "Time from sending a request to a backend to receiving its response headers.",
      labelNames: ["backend"],
      buckets: UPSTREAM_SECONDS_BUCKETS,
      registers,
    });
    this.upstreamErrors = new Counter({
      name: name("upstream_errors_total"),
      help: "Backend exchanges that failed, by backend and reason (refused, timeout, reset, other).",
      labelNames: ["backend", "reason"],
      registers,
    });
    this.authFailures = new Counter({
      name: name("auth_failures_total"),
      help: "Requests refused by authentication or authorization, by site and reason.",
      labelNames: ["site", "reason"],
      registers,
    });
    this.rateLimitedRequests = new Counter({
      name: name("rate_limited_requests_total"),
      help: "Requests refused with 429 by a rate limit, by site and limit.",
      labelNames: ["site", "limit"],
      registers,
    });
    this.loginsThrottled = new Counter({
      name: name("login_throttled_total"),
      help: "Logins answered 429 without checking the password: too many recent failures for that user name from that client address, by site.",
      labelNames: ["site"],
      registers,
    });
    // Registered on first use: a gateway without Redis exports no redis_up, rather than a false 0.
    this.redisUp = new Gauge({
      name: name("redis_up"),
      // A cluster's workers each report it; one value stands for all of them (prom-client aggregation).
      aggregator: "min",
      help: "1 when the last exchange with Redis (shared rate-limit state) succeeded, else 0.",
      registers: [],
    });
    this.certificateNotAfter = new Gauge({
      name: name("certificate_not_after_timestamp_seconds"),
      aggregator: "min",
      help: "Expiry (notAfter) of the certificate each site presents, in Unix seconds, by site and configured host.",
      labelNames: ["site", "host"],
      registers,
      collect() {
        this.reset();
        for (const { site, host, notAfter } of reported.values()) this.set({ site, host }, notAfter);
        for (const source of live) {
          for (const certificate of source.certificates()) {
            const notAfter = unixSeconds(certificate.notAfter);
            for (const host of certificate.hosts) this.set({ site: certificate.site, host }, notAfter);
          }
        }
      },
    });
    new Gauge({
      name: name("backend_up"),
      aggregator: "min",
      help: "1 when a backend registry passes its health checks (GET /v2/ below 500, no refused connections), else 0; by pool (site, site/member, site:prefix) and backend.",
      labelNames: ["pool", "backend"],
      registers,
      collect() {
        this.reset();
        for (const source of live) for (const b of source.backends()) this.set({ pool: b.pool, backend: b.backend }, b.healthy ? 1 : 0);
      },
    });
    new Gauge({
      name: name("backend_outstanding_requests"),
      help: "Requests forwarded to a backend registry and not yet finished, by pool and backend (what least-outstanding balancing compares).",
      labelNames: ["pool", "backend"],
      registers,
      collect() {
        this.reset();
        for (const source of live) for (const b of source.backends()) this.set({ pool: b.pool, backend: b.backend }, b.outstanding);
      },
    });
    this.groupPassedOverTotal = new Counter({
      name: name("group_passed_over_total"),
      help: "Pulls a group member could not answer, passed on to the next member: reason not_found (404) or error (5xx, no connection).",
      labelNames: ["site", "member", "reason"],
      registers,
    });
    this.workerRequests = new Counter({
      name: name("worker_requests_total"),
      help: "Requests answered by each worker process of a cluster (workers > 1), by worker number.",
      labelNames: ["worker"],
      registers,
    });
    this.configReloads = new Counter({
      name: name("config_reloads_total"),
      aggregator: "max",
      help: "Configuration reloads attempted, by result (success, failure).",
      labelNames: ["result"],
      registers,
    });
    // Both results exist from the start, so rate() and alerts work before the first reload.
    this.configReloads.inc({ result: "success" }, 0);
    this.configReloads.inc({ result: "failure" }, 0);
    this.configLastSuccess = new Gauge({
      name: name("config_last_reload_success_timestamp_seconds"),
      aggregator: "min",
      help: "When the configuration in use was loaded (at start or by the last successful reload), in Unix seconds.",
      registers,
    });
  }

  /** Node process metrics (CPU, memory, event loop lag, GC), once per registry; they keep their standard names. */
  collectProcessMetrics(): void {
    if (this.processMetricsOn) return;
    this.processMetricsOn = true;
    collectDefaultMetrics({ register: this.registry });
    for (const dropped of DEFAULT_METRICS_DROPPED) this.registry.removeSingleMetric(dropped);
  }

  /** Reads a running gateway's live numbers and certificates at each scrape; returns the detach function. */
  watch(source: GatewaySource): () => void {
    this.liveSources.add(source);
    return () => this.liveSources.delete(source);
  }

  // ---- the request path ----------------------------------------------------------------------------------

  /** In a cluster worker: its number labels worker_requests_total (bounded by `workers`). */
  setWorker(worker: number): void {
    this.worker = { worker: String(worker) };
    this.workerRequests.inc(this.worker, 0);
  }

  recordRequest(sample: RequestSample): void {
    if (this.worker) this.workerRequests.inc(this.worker);
    const site = this.labelsFor(sample.site);
    const method = METHODS.has(sample.method) ? sample.method : "OTHER";
    const labels = site.request(sample.operation, method, sample.status);
    this.requests.inc(labels);
    this.requestSeconds.observe(labels, sample.durationMs / 1000);
    const body = site.body[sample.operation] ?? site.body.other;
    if (sample.bytesIn > 0) {
      this.requestBodyBytes.inc(body, sample.bytesIn);
      if (sample.operation === "upload") this.blobPushedBytes.inc(site.site, sample.bytesIn);
    }
    if (sample.bytesOut > 0) {
      this.responseBodyBytes.inc(body, sample.bytesOut);
      if (sample.operation === "blob" && method === "GET" && (sample.status === 200 || sample.status === 206)) {
        this.blobPulledBytes.inc(site.site, sample.bytesOut);
      }
    }
    if (sample.backend !== undefined) {
      if (sample.upstreamMs !== undefined) this.upstreamSeconds.observe(this.backendLabels(sample.backend), sample.upstreamMs / 1000);
      if (sample.upstreamFailure) this.upstreamErrors.inc({ backend: sample.backend, reason: sample.upstreamFailure });
    }
  }

  tlsHandshakeFailed(): void {
    this.tlsHandshakeFailures.inc();
  }

  // ---- for the other capabilities ------------------------------------------------------------------------

  /** A 401 or 403 (or a login's 429/503) from the gateway's own auth. `site` is the site's configured name. */
  authFailure(site: string, reason: AuthFailureReason): void {
    this.authFailures.inc({ site, reason: AUTH_FAILURE_REASON_SET.has(reason) ? reason : "other" });
  }

  /** A group member answered 404 or failed, and the next member was asked. Member names come from configuration. */
  groupPassedOver(site: string, member: string, reason: "not_found" | "error"): void {
    this.groupPassedOverTotal.inc({ site, member, reason });
  }

  /** A 429. `limit` must be a configured limit's name (bounded by configuration), never a key. */
  rateLimited(site: string, limit: string): void {
    this.rateLimitedRequests.inc({ site, limit });
  }

  /** A login refused before its password was checked (failed-login throttle). `site` is the site's configured name. */
  loginThrottled(site: string): void {
    this.loginsThrottled.inc({ site });
  }

  setRedisUp(up: boolean): void {
    if (!this.redisUpRegistered) {
      this.redisUpRegistered = true;
      this.registry.registerMetric(this.redisUp);
    }
    this.redisUp.set(up ? 1 : 0);
  }

  /**
   * For a certificate that no watched gateway presents (a watched gateway's certificates are read from
   * its store at each scrape, replacements included). A watched gateway's value wins for the same pair.
   */
  setCertificateNotAfter(site: string, host: string, notAfter: Date): void {
    this.reportedCertificates.set(`${site}\n${host}`, { site, host, notAfter: unixSeconds(notAfter) });
  }

  /** Configuration applied at start: sets the last-success time without counting a reload. */
  configLoaded(at = new Date()): void {
    this.configLastSuccess.set(at.getTime() / 1000);
  }

  configReloaded(ok: boolean, at = new Date()): void {
    this.configReloads.inc({ result: ok ? "success" : "failure" });
    if (ok) this.configLoaded(at);
  }

  // ---- export ----------------------------------------------------------------------------------------------

  get contentType(): string {
    return this.registry.contentType;
  }

  exposition(): Promise<string> {
    return this.registry.metrics();
  }

  private backendLabels(backend: string): { backend: string } {
    let labels = this.backends.get(backend);
    if (!labels) {
      labels = { backend };
      this.backends.set(backend, labels);
    }
    return labels;
  }

  private labelsFor(site: string): SiteLabels {
    let labels = this.sites.get(site);
    if (!labels) {
      labels = new SiteLabels(site);
      this.sites.set(site, labels);
    }
    return labels;
  }
}

function unixSeconds(date: Date): number {
  return Math.floor(date.getTime() / 1000);
}

/** The process's metrics: one registry, shared by every gateway state across reloads so counters never reset. */
export const metrics = new GatewayMetrics();
