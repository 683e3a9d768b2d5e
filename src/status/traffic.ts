// Request, 429 and refused-login rates per site, from the gateway's own counters (exposition.ts), over the
// last minute (rates.ts).
import { readSamples, type Sample } from "./exposition.js";
import { RateWindow, type Totals } from "./rates.js";

// The names observe/metrics.ts exports under. Not imported from there: that module loads prom-client, which a
// cluster's primary loads only once something scrapes (cluster/worker-metrics.ts).
const METRIC_PREFIX = "registry_gateway_";
/** The site label of a request whose Host matched no site. */
const UNKNOWN_SITE = "";
const REQUESTS = `${METRIC_PREFIX}requests_total`;
const RATE_LIMITED = `${METRIC_PREFIX}rate_limited_requests_total`;
const AUTH_FAILURES = `${METRIC_PREFIX}auth_failures_total`;
const FAMILIES: ReadonlySet<string> = new Set([REQUESTS, RATE_LIMITED, AUTH_FAILURES]);

/** Auth failures that are a login refused: a wrong password, or one not checked at all (throttle, overload). A missing credential is the normal first challenge. */
const REFUSED_LOGIN_REASONS: ReadonlySet<string> = new Set(["invalid_credentials", "throttled", "overloaded"]);

export const STATUS_CLASSES = ["2xx", "3xx", "4xx", "5xx", "other"] as const;
export type StatusClass = (typeof STATUS_CLASSES)[number];

/** Per second, averaged over `windowSeconds`. */
export interface SiteTraffic {
  /** The site's configured name; "(no site)" for requests whose Host matched none. */
  site: string;
  requests: Record<StatusClass | "total", number>;
  rateLimited: number;
  refusedLogins: number;
}

export type TrafficStatus =
  | { metrics: "disabled" }
  /** windowSeconds null: the first reading, nothing to compare with yet (sites is then empty). */
  | { metrics: "enabled"; windowSeconds: number | null; sites: SiteTraffic[] };

export const NO_SITE_LABEL = "(no site)";

/** Reads the counters at each call; rates come from the difference to the readings kept. */
export class TrafficRates {
  readonly #window = new RateWindow();

  async read(exposition: () => Promise<string>, configuredSites: readonly string[], now: number): Promise<TrafficStatus> {
    const totals = totalsOf(readSamples(await exposition(), FAMILIES));
    const rates = this.#window.observe(totals, now);
    if (!rates) return { metrics: "enabled", windowSeconds: null, sites: [] };
    const seen = [...totals.keys()].map((key) => key.split("\t")[1]!);
    const sites = [...new Set([...configuredSites, ...seen])];
    const perSecond = (key: string) => rates.perSecond.get(key) ?? 0;
    return {
      metrics: "enabled",
      windowSeconds: Math.round(rates.windowSeconds * 1000) / 1000,
      sites: sites.map((site) => siteTraffic(site, perSecond)),
    };
  }
}

function siteTraffic(site: string, perSecond: (key: string) => number): SiteTraffic {
  const requests = Object.fromEntries(STATUS_CLASSES.map((c) => [c, perSecond(key("requests", site, c))])) as Record<StatusClass, number>;
  const total = STATUS_CLASSES.reduce((sum, c) => sum + requests[c], 0);
  return {
    site: site === UNKNOWN_SITE ? NO_SITE_LABEL : site,
    requests: { ...requests, total },
    rateLimited: perSecond(key("limited", site)),
    refusedLogins: perSecond(key("refused", site)),
  };
}

/** The counters summed into the keys the panel shows: requests by site and status class, 429s and refused logins by site. */
function totalsOf(samples: readonly Sample[]): Totals {
  const totals = new Map<string, number>();
  const add = (k: string, value: number) => totals.set(k, (totals.get(k) ?? 0) + value);
  for (const { name, labels, value } of samples) {
    const site = labels.site ?? UNKNOWN_SITE;
    if (name === REQUESTS) add(key("requests", site, statusClass(labels.code ?? "")), value);
    else if (name === RATE_LIMITED) add(key("limited", site), value);
    else if (REFUSED_LOGIN_REASONS.has(labels.reason ?? "")) add(key("refused", site), value);
  }
  return totals;
}

function key(kind: "requests" | "limited" | "refused", site: string, statusClass = ""): string {
  return `${kind}\t${site}\t${statusClass}`;
}

function statusClass(code: string): StatusClass {
  const first = code.length === 3 ? code[0] : "";
  return first === "2" || first === "3" || first === "4" || first === "5" ? (`${first}xx` as StatusClass) : "other";
}
