// The one configuration schema: it is the TypeScript type, the validator and the defaults.
// Every key here is documented in config/gateway.yaml; keep the two in step.
import { isIP } from "node:net";
import path from "node:path";
import { z } from "zod";
import { ADMIN_TOKEN_PATTERN, isLoopback, MANAGED_SERVICE, managedStorage, namedBackends, type UpstreamFields } from "./rules.js";

// What works on a validated configuration lives in helpers.ts (no zod there: a cluster worker, which is
// handed a validated configuration, never loads zod).

const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** A duration written "500ms", "30s", "5m", "2h", or a number of seconds; parsed to milliseconds. */
export const duration = z
  .union([z.number().nonnegative(), z.string()])
  .transform((value, ctx) => {
    if (typeof value === "number") return Math.round(value * 1000);
    const match = DURATION.exec(value.trim());
    if (!match) {
      ctx.addIssue({ code: "custom", message: `expected a duration such as "30s", "5m" or "500ms", got "${value}"` });
      return z.NEVER;
    }
    return Math.round(Number(match[1]) * UNIT_MS[match[2]!]!);
  });

export interface ListenAddress {
  host: string;
  port: number;
}

/** "host:port", "[v6]:port" or ":port" (all interfaces). */
export const listenAddress = z.string().transform((value, ctx): ListenAddress => {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(value.trim());
  const port = match ? Number(match[3]) : NaN;
  if (!match || port > 65535) {
    ctx.addIssue({ code: "custom", message: `expected "host:port", "[::1]:port" or ":port", got "${value}"` });
    return z.NEVER;
  }
  return { host: match[1] ?? (match[2] || "0.0.0.0"), port };
});

const ADMIN_TOKEN_EXPECTED = "expected at least 16 characters of A-Z a-z 0-9 - . _ ~ + / (e.g. openssl rand -base64 32)";

const HOSTNAME = /^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;
const IP_LITERAL = /^(\d{1,3}(\.\d{1,3}){3}|[0-9a-f:]*:[0-9a-f:.]*)$/;

export const hostName = z
  .string()
  .transform((value) => value.trim().toLowerCase())
  .refine((value) => HOSTNAME.test(value) || IP_LITERAL.test(value), {
    message: "expected a host name such as registry.example.com (optionally *.example.com) or an IP address",
  });

export const backendUrl = z.string().transform((value, ctx) => {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    ctx.addIssue({ code: "custom", message: `expected an absolute http:// or https:// URL, got "${value}"` });
    return z.NEVER;
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    ctx.addIssue({ code: "custom", message: `expected an http:// or https:// URL, got scheme "${url.protocol}"` });
    return z.NEVER;
  }
  if (url.pathname !== "/" || url.search || url.hash || url.username || url.password) {
    ctx.addIssue({
      code: "custom",
      message: `expected a URL with no path, query or credentials (the registry API lives at /v2/), got "${value}"`,
    });
    return z.NEVER;
  }
  return url;
});

/** The registry the gateway runs itself: Debian's `docker-registry`, on a loopback port of its own. */
export const managedBackend = z.strictObject({
  managed: z
    .strictObject({
      /** Filesystem storage of the registry (its config.yml lives there too); default: <dataDir>/registry. */
      storage: z.string().min(1).optional(),
      /** Loopback port the registry listens on; default: a free one, chosen at start. */
      port: z.number().int().min(1).max(65535).optional(),
      /** The distribution registry executable: a name looked up on PATH, or a path. */
      binary: z.string().min(1).default("docker-registry"),
      /**
       * A pull-through cache of another registry (distribution's `proxy:` section): a pull is answered from
       * storage, else fetched from `remoteurl` and kept; pushes and deletes are refused (405). distribution
       * 2.8 has no `ttl`: what it caches is dropped 7 days after it was fetched, and fetched again if pulled.
       */
      proxy: z
        .strictObject({
          /** The registry cached, e.g. https://registry-1.docker.io (no path: the API lives at /v2/). */
          remoteurl: backendUrl.transform((url) => url.origin),
          /** Credentials for the remote registry (Docker Hub: an access token as the password); set both or neither. */
          username: z.string().min(1).optional(),
          password: z.string().min(1).optional(),
        })
        .refine((proxy) => (proxy.username === undefined) === (proxy.password === undefined), {
          message: "set username and password together, or neither (anonymous pulls from remoteurl)",
        })
        .optional(),
    })
    // `managed:` with nothing after it is YAML's null: every default.
    .nullable()
    .transform((spec) => spec ?? { binary: "docker-registry" }),
});

/** A registry URL, or `{ managed: {…} }` for one the gateway starts and supervises. */
export const backend = z.union([backendUrl, managedBackend], {
  error: "expected an http:// or https:// URL of a registry, or { managed: {…} } for one the gateway runs",
});

/** Active health checks of a pool's members: GET /v2/, any status below 500 is up. */
export const healthCheck = z.strictObject({
  interval: duration.prefault("5s"),
  timeout: duration.prefault("2s"),
  /** Consecutive failed checks that take a member out of rotation. */
  unhealthyThreshold: z.number().int().min(1).default(2),
  /** Consecutive passed checks that bring it back. */
  healthyThreshold: z.number().int().min(1).default(1),
});

/** One registry (`backend`), or replicas of one registry sharing its storage (`backends`). */
const poolFields = {
  backend: backend.optional(),
  /** Replicas: least outstanding requests, GET/HEAD retried once elsewhere, uploads kept on their replica. */
  backends: z.array(backend).min(1).optional(),
  health: healthCheck.prefault({}),
};

const memberName = z.string().regex(/^[A-Za-z0-9._-]+$/, "expected letters, digits, '.', '_' or '-'");

/** A member of a group (Nexus's group repository): one registry or a pool of replicas. */
const groupMember = exactlyOneOf(
  z.strictObject({
    name: memberName,
    ...poolFields,
    /**
     * The repository names this member serves (globs as in access rules); absent: every name. pushTo's are
     * names it owns: never served by another member. Declared later in this file, hence lazy.
     */
    repositories: z.array(z.lazy(() => repositoryGlob)).min(1).optional(),
  }),
  ["backend", "backends"],
  "expected one of backend or backends",
);

const UPSTREAM_KEYS = ["backend", "backends", "group"] as const;
const NO_UPSTREAM = "expected one of backend (a registry), backends (replicas of one registry) or group (registries tried in order)";

/** Where a set of repositories is served: a registry, a pool of replicas, or a group of those. */
const upstreamFields = {
  ...poolFields,
  /** Pulls try the members in order (404 or 5xx → next); pushes go to `pushTo`. */
  group: z.array(groupMember).min(1).optional(),
  /** The member uploads, manifest PUTs and DELETEs go to; without it a group is read-only (405). */
  pushTo: memberName.optional(),
};

/** A repository name prefix, whole path components ending in "/": `library/`, `team-a/tools/`. */
const REPOSITORY_PREFIX = /^(?:[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*\/)+$/;

/** Repositories under `prefix` go to this route's upstream; the longest matching prefix wins. */
const repositoryRoute = exactlyOneOf(
  z.strictObject({
    prefix: z.string().regex(REPOSITORY_PREFIX, 'expected repository path components ending in "/", such as "library/" or "team-a/tools/"'),
    ...upstreamFields,
  }),
  UPSTREAM_KEYS,
  NO_UPSTREAM,
);

/**
 * Exactly one of `keys` is given. Checked on the object itself, and even when other keys of it are invalid,
 * so a missing backend is reported beside a typo in its name (the check reads only which keys are present).
 */
function exactlyOneOf<T extends z.ZodType>(schema: T, keys: readonly string[], missing: string): T {
  return schema.superRefine(
    (value, ctx) => {
      const given = keys.filter((key) => (value as Record<string, unknown>)[key] !== undefined);
      if (given.length === 1) return;
      ctx.addIssue({ code: "custom", message: given.length === 0 ? missing : `give only one of ${given.join(", ")}` });
    },
    { when: (payload) => typeof payload.value === "object" && payload.value !== null },
  ) as T;
}

/** Exactly one of backend, backends, group; pushTo names a member; every member has one of backend, backends. */
function checkUpstream(value: UpstreamFields<BackendConfig>, ctx: z.RefinementCtx, at: (string | number)[]): void {
  const noRepeats = (backends: BackendConfig[] | undefined, where: (string | number)[]) => {
    const origins = new Set<string>();
    backends?.forEach((backend, index) => {
      if (!(backend instanceof URL)) return;
      if (origins.has(backend.origin)) ctx.addIssue({ code: "custom", path: [...where, "backends", index], message: `${backend.origin} is listed twice` });
      origins.add(backend.origin);
    });
  };
  noRepeats(value.backends, at);
  value.group?.forEach((member, index) => noRepeats(member.backends, [...at, "group", index]));
  if (value.pushTo !== undefined && value.group === undefined) {
    ctx.addIssue({ code: "custom", path: [...at, "pushTo"], message: "pushTo names a member of group: only with group" });
  }
  if (!value.group) return;
  const names = new Set<string>();
  value.group.forEach((member, index) => {
    if (names.has(member.name)) ctx.addIssue({ code: "custom", path: [...at, "group", index, "name"], message: `member name "${member.name}" is used twice` });
    names.add(member.name);
  });
  if (value.pushTo !== undefined && !names.has(value.pushTo)) {
    ctx.addIssue({ code: "custom", path: [...at, "pushTo"], message: `no group member is named "${value.pushTo}" (members: ${[...names].join(", ")})` });
  }
  // pushTo without repositories owns every name no other member declares: with no declaration at all it
  // would own every name, and the other members would never be asked.
  const pushTo = value.group.findIndex((member) => member.name === value.pushTo);
  if (pushTo >= 0 && value.group.length > 1 && value.group.every((member) => member.repositories === undefined)) {
    ctx.addIssue({
      code: "custom",
      path: [...at, "group", pushTo, "repositories"],
      message:
        `required in a group with pushTo: declare the names "${value.pushTo}" owns (e.g. ["team/**"]: never served by another member), ` +
        "or the names another member may serve (its own repositories); without either the other members are never asked",
    });
  }
}

/**
 * Every site signs with the same key, so a token's service (`aud`) is what keeps it to its site. Two token
 * sites with one service would take each other's tokens (a user with rights on one only reads and deletes
 * on the other); a site whose service is another site's backendAuth.service hands its users tokens that
 * backend accepts. Backend services may repeat among themselves: the gateway never gives those tokens out.
 */
function checkTokenServices(sites: readonly SiteConfig[], ctx: z.RefinementCtx): void {
  const services: { index: number; service: string; at: "auth" | "backendAuth"; defaulted: boolean }[] = [];
  sites.forEach((s, index) => {
    if (s.auth.type === "token") services.push({ index, service: s.auth.service ?? s.name ?? s.hosts[0]!, at: "auth", defaulted: s.auth.service === undefined });
    if (s.backendAuth.type === "token") services.push({ index, service: s.backendAuth.service, at: "backendAuth", defaulted: false });
  });
  services.forEach((later, position) => {
    const earlier = services
      .slice(0, position)
      .find((e) => e.index !== later.index && e.service === later.service && (e.at === "auth" || later.at === "auth"));
    if (!earlier) return;
    const named = `sites[${earlier.index}].${earlier.at}.service${earlier.defaulted ? " (by default the site name)" : ""}`;
    ctx.addIssue({
      code: "custom",
      path: ["sites", later.index, later.at, "service"],
      message:
        `service "${later.service}"${later.defaulted ? " (by default the site name)" : ""} is also ${named}: every site signs tokens ` +
        "with the same key, so a token issued for one would be accepted by the other; give each token site a service of its own",
    });
  });
}

/** How a managed registry runs, apart from where it stores: two backends naming one storage must agree on it. */
function runSettings(spec: ManagedBackendConfig): string {
  const { storage: _storage, ...settings } = spec;
  return JSON.stringify(Object.entries(settings).sort(([a], [b]) => a.localeCompare(b)));
}

const generatedTls = z.strictObject({
  source: z.literal("generated"),
});

const filesTls = z.strictObject({
  source: z.literal("files"),
  cert: z.string().min(1),
  key: z.string().min(1),
});

/** Directory names accepted instead of a URL. */
export const ACME_DIRECTORY_PRESETS: Readonly<Record<string, string>> = {
  letsencrypt: "https://acme-v02.api.letsencrypt.org/directory",
  "letsencrypt-staging": "https://acme-staging-v02.api.letsencrypt.org/directory",
};

/** A preset name or an https:// URL (RFC 8555 requires TLS); parsed to the URL. */
const acmeDirectory = z.string().transform((value, ctx) => {
  const preset = ACME_DIRECTORY_PRESETS[value.trim()];
  if (preset) return preset;
  let url: URL | undefined;
  try {
    url = new URL(value);
  } catch {
    // reported below
  }
  if (url?.protocol !== "https:") {
    ctx.addIssue({ code: "custom", message: `expected letsencrypt, letsencrypt-staging or an https:// ACME directory URL, got "${value}"` });
    return z.NEVER;
  }
  return url.href;
});

export const ACME_CHALLENGES = ["http-01", "tls-alpn-01"] as const;

const acmeTls = z.strictObject({
  source: z.literal("acme"),
  directory: acmeDirectory,
  /** Contact address given to the CA (expiry notices). */
  email: z.email().optional(),
  /** External Account Binding, for CAs that require one (ZeroSSL, Google, most private CAs). */
  eab: z
    .strictObject({
      kid: z.string().min(1),
      hmacKey: z.string().regex(/^[A-Za-z0-9_-]+={0,2}$/, "expected the base64url HMAC key the CA gave you"),
    })
    .optional(),
  /** PEM CA certificate(s) trusted for the ACME server's own HTTPS, besides the system roots. */
  caFile: z.string().min(1).optional(),
  challenge: z.enum(ACME_CHALLENGES).default("http-01"),
  /** Renew this long before expiry; default: once two thirds of the lifetime have passed. */
  renewBefore: duration.refine((ms) => ms > 0, { message: "expected a positive duration" }).optional(),
});

export const siteTls = z.discriminatedUnion("source", [generatedTls, filesTls, acmeTls]);

// ---- rate limits -----------------------------------------------------------------------------------------

/** What a limit counts: pull = manifest GET, blob = blob GET, push = upload start/finish + manifest PUT. */
export const RATE_LIMIT_OPERATIONS = ["pull", "blob", "push", "any"] as const;

const wholeSeconds = duration.refine((ms) => ms >= 1000 && ms % 1000 === 0, {
  message: 'expected a whole number of seconds, at least 1s (e.g. "1m", "6h"): the RateLimit headers give it in seconds',
});

const rateLimitOverride = z.strictObject({
  rate: z.number().int().min(1),
  /** Default: the override's rate. */
  burst: z.number().int().min(1).optional(),
});

export const rateLimit = z.strictObject({
  /** Part of the counter's key and the metric label; unique within the site. */
  name: z.string().regex(/^[A-Za-z0-9._-]+$/, "expected letters, digits, '.', '_' or '-'"),
  operations: z.array(z.enum(RATE_LIMIT_OPERATIONS)).min(1),
  /** Requests admitted per `per`, on average. */
  rate: z.number().int().min(1),
  per: wholeSeconds,
  /** Requests admitted back to back from a full allowance. Default: rate. */
  burst: z.number().int().min(1).optional(),
  /** user: the authenticated user, else the client IP; ip: always the client IP. */
  key: z.enum(["user", "ip"]).default("user"),
  /** Per user name: another rate (and burst) for the same window. */
  overrides: z.record(z.string().min(1), rateLimitOverride).default({}),
});

const redisNode = z.string().transform((value, ctx): { host: string; port: number } => {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]+)):(\d{1,5})$/.exec(value.trim());
  const port = match ? Number(match[3]) : NaN;
  if (!match || port < 1 || port > 65535) {
    ctx.addIssue({ code: "custom", message: `expected "host:port", got "${value}"` });
    return z.NEVER;
  }
  return { host: match[1] ?? match[2]!, port };
});

const redisUrl = z.string().refine(
  (value) => {
    try {
      return ["redis:", "rediss:"].includes(new URL(value).protocol);
    } catch {
      return false;
    }
  },
  { message: "expected a redis:// or rediss:// URL such as redis://127.0.0.1:6390/0" },
);

export const redis = z
  .strictObject({
    url: redisUrl.optional(),
    sentinels: z.array(redisNode).min(1).optional(),
    /** The Sentinel master group name; required with sentinels. */
    name: z.string().min(1).optional(),
    cluster: z.array(redisNode).min(1).optional(),
    /** For sentinels and cluster nodes (a url carries its own). */
    password: z.string().min(1).optional(),
    keyPrefix: z.string().default("rgw:"),
    commandTimeout: duration.prefault("250ms"),
    failure: z.enum(["failOpen", "failClosed"]).default("failOpen"),
  })
  .superRefine((value, ctx) => {
    const ways = (["url", "sentinels", "cluster"] as const).filter((key) => value[key] !== undefined);
    if (ways.length !== 1) {
      ctx.addIssue({ code: "custom", message: `set exactly one of url, sentinels (with name) or cluster, got ${ways.length ? ways.join(" and ") : "none"}` });
    }
    if (value.sentinels && !value.name) ctx.addIssue({ code: "custom", path: ["name"], message: "sentinels need the master group name" });
    if (value.name && !value.sentinels) ctx.addIssue({ code: "custom", path: ["name"], message: "name is the Sentinel master group: only with sentinels" });
    if (value.commandTimeout < 1) ctx.addIssue({ code: "custom", path: ["commandTimeout"], message: "expected at least 1ms" });
  });

/** "10.0.0.0/8", "fd00::/8" or a single address; parsed for net.BlockList. */
export const cidr = z.string().transform((value, ctx): { address: string; prefix: number; family: "ipv4" | "ipv6" } => {
  const [address = "", prefixText, ...rest] = value.trim().split("/");
  const version = isIP(address);
  const max = version === 6 ? 128 : 32;
  const prefix = prefixText === undefined ? max : /^\d{1,3}$/.test(prefixText) ? Number(prefixText) : NaN;
  if (!version || rest.length || !(prefix >= 0 && prefix <= max)) {
    ctx.addIssue({ code: "custom", message: `expected an IP address or CIDR block such as 10.0.0.0/8 or fd00::/8, got "${value}"` });
    return z.NEVER;
  }
  return { address, prefix, family: version === 6 ? "ipv6" : "ipv4" };
});

// ---- authentication and access rules ---------------------------------------------------------------------

export const RULE_ACTIONS = ["pull", "push", "delete", "catalog"] as const;

/** Goes inside a quoted-string of a WWW-Authenticate challenge, so no quotes, backslashes or line breaks. */
const challengeParameter = z.string().regex(/^[^"\\\r\n]+$/, 'expected text without ", \\ or line breaks');

/** A token audience of the gateway's: a managed registry's is its own, so no other token is valid there. */
const tokenService = (base: z.ZodString) =>
  base.refine((value) => value !== MANAGED_SERVICE, `"${MANAGED_SERVICE}" is reserved for the registries the gateway runs (managed backends)`);

/** `team/*` (one path component), `team/**` (any depth), `?` (one character), or a plain repository name. */
const repositoryGlob = z
  .string()
  .regex(/^[a-z0-9._\-/*?]+$/, 'expected a repository name or glob such as "team/*" or "**" (lower case, digits, . _ - / * ?)');

export const accessRule = z.strictObject({
  /** "*": everyone, anonymous included; or the user names this rule is for. */
  who: z.union([z.literal("*"), z.array(z.string().regex(/^[^:\s]+$/, "expected a user name (no ':' or spaces)")).min(1)]),
  repositories: z.array(repositoryGlob).min(1),
  /** Empty denies: the first rule matching a user and repository decides. */
  actions: z.array(z.enum(RULE_ACTIONS)),
});

const noAuth = z.strictObject({ type: z.literal("none") });

const htpasswdAuth = z.strictObject({
  type: z.literal("htpasswd"),
  /** An htpasswd file (bcrypt, $apr1$, {SHA}); re-read when it changes. */
  htpasswd: z.string().min(1),
  /** Basic realm shown by clients; default: the site name. */
  realm: challengeParameter.optional(),
  rules: z.array(accessRule).default([]),
});

const tokenAuth = z.strictObject({
  type: z.literal("token"),
  /** Users who may log in at /token. */
  htpasswd: z.string().min(1),
  /** The `service` of challenges and the `aud` of tokens; default: the site name. */
  service: tokenService(challengeParameter).optional(),
  rules: z.array(accessRule).default([]),
});

export const siteAuth = z.discriminatedUnion("type", [noAuth, htpasswdAuth, tokenAuth]);

export const backendAuth = z.discriminatedUnion("type", [
  /** The client's Authorization is removed; the backend trusts the gateway. */
  z.strictObject({ type: z.literal("none") }),
  /** The client's Authorization is forwarded untouched (only for sites with auth none). */
  z.strictObject({ type: z.literal("passthrough") }),
  /** The gateway sends a token of its own, for a backend running distribution's `auth: token`. */
  z.strictObject({ type: z.literal("token"), service: tokenService(z.string().min(1)) }),
]);

export const tokens = z
  .strictObject({
    /** `iss` of every token; a token-auth backend's `issuer` must be this. */
    issuer: z.string().min(1).default("registry-gateway"),
    /** For a generated key. A configured key's type decides for itself. */
    algorithm: z.enum(["ES256", "RS256"]).default("ES256"),
    lifetime: duration.prefault("1h"),
    refreshLifetime: duration.prefault("720h"),
    /** PEM private key (EC P-256 or RSA) and its certificate; default: generated in dataDir/tokens. */
    key: z.string().min(1).optional(),
    cert: z.string().min(1).optional(),
  })
  .superRefine((value, ctx) => {
    if ((value.key === undefined) !== (value.cert === undefined)) {
      ctx.addIssue({ code: "custom", path: [value.key === undefined ? "key" : "cert"], message: "set key and cert together, or neither (then one is generated)" });
    }
    if (value.lifetime < 60_000) ctx.addIssue({ code: "custom", path: ["lifetime"], message: "expected at least 60s (clients need expires_in ≥ 60)" });
    if (value.refreshLifetime < value.lifetime) {
      ctx.addIssue({ code: "custom", path: ["refreshLifetime"], message: "expected at least the access token lifetime" });
    }
  });

export const site = exactlyOneOf(
  z.strictObject({
    /** Label used in logs and metrics; defaults to the first host. */
    name: z.string().regex(/^[A-Za-z0-9._-]+$/).optional(),
    hosts: z.array(hostName).min(1),
    /**
     * Where the site's repositories are served: `backend` (an http(s) URL, or { managed: {…} }: a
     * registry the gateway runs), `backends` (replicas) or `group` + `pushTo`.
     */
    ...upstreamFields,
    /** Repository-prefix routes to other upstreams; repositories under no prefix go to the site's own. */
    routes: z
      .array(repositoryRoute)
      .superRefine((routes, ctx) => {
        const seen = new Set<string>();
        routes.forEach((route, index) => {
          if (seen.has(route.prefix)) ctx.addIssue({ code: "custom", path: [index, "prefix"], message: `prefix "${route.prefix}" is routed twice` });
          seen.add(route.prefix);
        });
      })
      .default([]),
    /** The site answering TLS handshakes with an unknown or absent SNI; defaults to the first site. */
    default: z.boolean().default(false),
    tls: siteTls.prefault({ source: "generated" }),
    /** Who may do what; default: no authentication. */
    auth: siteAuth.prefault({ type: "none" }),
    /** What the backend gets as Authorization; default: nothing. */
    backendAuth: backendAuth.prefault({ type: "none" }),
    /**
     * Chunked uploads: `check` keeps each upload's offset from the backend's answers, refuses a chunk that
     * does not start there (416) and answers a session's status (204); `pass` leaves both to the backend.
     */
    uploadRanges: z.enum(["check", "pass"]).default("check"),
    /**
     * The OCI 1.1 referrers API: `emulate` (the gateway keeps each subject's index under the fallback tag),
     * `pass` (the backend answers), `auto` (emulated for a backend found to lack it).
     */
    referrers: z.enum(["emulate", "pass", "auto"]).default("auto"),
    /**
     * The registry browser at `https://HOST:PORT/`: read-only pages, sign-in with the site's users. Absent:
     * enabled, sessions of 8h (web/settings.ts).
     */
    browser: z
      .strictObject({
        enabled: z.boolean().optional(),
        /** How long a sign-in lasts (the session cookie's Max-Age): at least a minute, at most 30 days. */
        sessionLifetime: duration.refine((ms) => ms >= 60_000 && ms <= 30 * 24 * 3600_000, { message: 'expected between 1m and 720h (e.g. "8h")' }).optional(),
      })
      .optional(),
    /** Rate limits; every limit a request's operation belongs to must admit it. */
    limits: z
      .array(rateLimit)
      .superRefine((limits, ctx) => {
        const seen = new Set<string>();
        limits.forEach((limit, index) => {
          if (seen.has(limit.name)) ctx.addIssue({ code: "custom", path: [index, "name"], message: `limit name "${limit.name}" is used twice in this site` });
          seen.add(limit.name);
        });
      })
      .default([]),
    /**
     * `DELETE /v2/<name>/manifests/<tag>`: refuse (405 UNSUPPORTED, "delete by digest", as the OCI spec
     * says for a registry that cannot delete tags: distribution 2.8) or pass it to a registry that can.
     * Absent is refuse (left optional so site objects built in code need not name it).
     */
    tagDelete: z.enum(["refuse", "pass"]).optional(),
  }),
  UPSTREAM_KEYS,
  NO_UPSTREAM,
);

export const gatewayConfig = z
  .strictObject({
    listen: listenAddress.prefault(":5443"),
    admin: z
      .strictObject({
        listen: listenAddress.prefault("127.0.0.1:9091"),
        /** Binding the admin listener beyond loopback must be asked for. */
        allowNonLoopback: z.boolean().default(false),
        /**
         * Host names the admin listener answers besides localhost and loopback addresses: any other Host is
         * refused, so a web page cannot read /metrics or POST /reload through DNS rebinding.
         */
        hosts: z.array(hostName).default([]),
        /**
         * The bearer token admin actions (POST) need; GATEWAY_ADMIN_TOKEN sets it from the environment. Default:
         * tokenFile's, else one generated at start into <dataDir>/admin/token (mode 0600).
         */
        token: z.string().regex(ADMIN_TOKEN_PATTERN, ADMIN_TOKEN_EXPECTED).optional(),
        /** A file holding the token (one line). */
        tokenFile: z.string().min(1).optional(),
      })
      .refine((admin) => admin.token === undefined || admin.tokenFile === undefined, { path: ["tokenFile"], message: "set token or tokenFile, not both" })
      .prefault({}),
    /** Plain HTTP: answers ACME HTTP-01 challenges, redirects everything else to HTTPS. */
    http: z
      .strictObject({
        listen: listenAddress.nullable().default(null),
      })
      .prefault({}),
    dataDir: z.string().min(1).default("./data"),
    tls: z
      .strictObject({
        minVersion: z.enum(["TLSv1.2", "TLSv1.3"]).default("TLSv1.2"),
        /**
         * A request whose Host names another site than its TLS SNI is refused (421): the certificate the client
         * checked and the site it talks to must be one. Clients that send no SNI (IP addresses) are not affected.
         */
        strictSni: z.boolean().default(true),
        generated: z
          .strictObject({
            caValidityDays: z.number().int().min(1).default(3650),
            leafValidityDays: z.number().int().min(1).max(825).default(365),
          })
          .prefault({}),
      })
      .prefault({}),
    timeouts: z
      .strictObject({
        header: duration.prefault("30s"),
        /** A TLS handshake (from the TCP accept) that takes longer is cut: silent connections cost nothing for long. */
        handshake: duration.prefault("10s"),
        idle: duration.prefault("5m"),
        /**
         * A response whose client reads none of it for this long is closed, with its backend connection (nginx's
         * send_timeout): a client that stops reading holds nothing for long.
         */
        send: duration.refine((ms) => ms >= 1000, { message: 'expected at least 1s (e.g. "60s")' }).prefault("60s"),
        keepAlive: duration.prefault("65s"),
        drain: duration.prefault("30s"),
        /** An upload session to replicas unused this long is forgotten (its next request: BLOB_UPLOAD_UNKNOWN). */
        uploadIdle: duration.refine((ms) => ms >= 1000, { message: "must be at least 1s" }).prefault("1h"),
      })
      .prefault({}),
    limits: z
      .strictObject({
        maxHeaderBytes: z.number().int().min(1024).max(1_048_576).default(16_384),
        /** Client connections open at once; the excess is answered 503 and closed. */
        maxConnections: z.number().int().min(1).default(4096),
        /** Client connections open at once from one address (the socket peer); the excess is answered 429 and closed. */
        maxConnectionsPerIp: z.number().int().min(1).default(256),
        /**
         * Blob and manifest GETs in flight at once from one client address, per process; the excess is answered
         * 429. 32: ten docker pulls (3 layers each) or five podman/skopeo pulls (6 each) behind one address.
         */
        downloadsPerClient: z.number().int().min(1).default(32),
        /** The same for one authenticated user from any address, per process: a CI fleet pulling as one user needs more. */
        downloadsPerUser: z.number().int().min(1).default(256),
        /** Upload sessions to replicas one user (or anonymous client address) holds; a new one ends their least recently used. */
        uploadsPerUser: z.number().int().min(1).max(10_000).default(64),
      })
      .prefault({}),
    log: z
      .strictObject({
        level: z.enum(["trace", "debug", "info", "warn", "error", "fatal", "silent"]).default("info"),
        format: z.enum(["json", "pretty"]).default("json"),
        /** One line per request, whatever the level. */
        access: z.boolean().default(true),
      })
      .prefault({}),
    /** Request metrics on the admin listener's /metrics. */
    metrics: z
      .strictObject({
        enabled: z.boolean().default(true),
      })
      .prefault({}),
    /**
     * Catalogs and tag lists the gateway merges itself (groups, prefix routes), which docker search reads too:
     * how long one fetch of the members' lists is reused. 0: only by requests arriving while it is fetched.
     */
    lists: z.strictObject({ cacheFor: duration.prefault("5s") }).prefault({}),
    /** Shared rate-limit state; without it limits are counted in process memory. */
    redis: redis.optional(),
    /** Password checks: failed logins are throttled before hashing; hashing runs off the event loop. */
    logins: z
      .strictObject({
        /** Failed logins allowed back to back per user and client IP; refilled at this many per `per`. */
        maxFailures: z.number().int().min(1).default(10),
        per: wholeSeconds.prefault("1m"),
        /** Failed logins per client address, whatever the user names, per `per`: guessing a new name each time. */
        maxFailuresPerAddress: z.number().int().min(1).default(30),
        /** Failed logins per network of addresses (networkPrefix), per `per`: many addresses of one attacker. */
        maxFailuresPerNetwork: z.number().int().min(1).default(100),
        networkPrefix: z
          .strictObject({
            ipv4: z.number().int().min(0).max(32).default(24),
            ipv6: z.number().int().min(0).max(128).default(64),
          })
          .prefault({}),
        /** Threads verifying passwords; auto: one less than the cores, at least one. */
        hashWorkers: z.union([z.literal("auto"), z.number().int().min(1).max(64)]).default("auto"),
        /** Verifications waiting for a thread beyond this are refused (503) instead of queued. */
        maxQueued: z.number().int().min(1).default(256),
        /** Verifications one client (IPv4 address, IPv6 /64) may have waiting; its next ones are refused (503). */
        maxQueuedPerAddress: z.number().int().min(1).default(8),
      })
      .prefault({}),
    /**
     * Processes accepting connections: auto = the cores this process may use (a container's CPU
     * quota respected); 1 = one process, no cluster. Above 1, a primary supervises the workers.
     */
    workers: z.union([z.literal("auto"), z.number().int().min(1).max(64)]).default("auto"),
    /** Peers whose X-Forwarded-For is believed. */
    trustedProxies: z.array(cidr).default([]),
    /** Signing and lifetimes of the tokens the gateway issues. */
    tokens: tokens.prefault({}),
    sites: z.array(site).min(1),
  })
  .superRefine((config, ctx) => {
    config.sites.forEach((s, index) => {
      checkUpstream(s, ctx, ["sites", index]);
      s.routes.forEach((route, routeIndex) => checkUpstream(route, ctx, ["sites", index, "routes", routeIndex]));
      if (s.backendAuth.type === "passthrough" && s.auth.type !== "none") {
        ctx.addIssue({
          code: "custom",
          path: ["sites", index, "backendAuth", "type"],
          message: "passthrough would hand the users' own credentials to the backend: only with auth type none",
        });
      }
    });
    const owner = new Map<string, number>();
    config.sites.forEach((s, index) => {
      s.hosts.forEach((host, hostIndex) => {
        const first = owner.get(host);
        if (first !== undefined) {
          ctx.addIssue({
            code: "custom",
            path: ["sites", index, "hosts", hostIndex],
            message: `host "${host}" is already served by sites[${first}]`,
          });
        } else owner.set(host, index);
      });
    });
    // One managed registry per storage directory: two sites naming it must agree on how it runs.
    const managedBy = new Map<string, { index: number; spec: ManagedBackendConfig }>();
    config.sites.forEach((s, index) => {
      for (const { backend, at } of namedBackends(s, ["sites", index])) {
        if (backend instanceof URL) continue;
        const spec = backend.managed;
        const storage = path.resolve(managedStorage(spec, config.dataDir));
        const first = managedBy.get(storage);
        if (!first) managedBy.set(storage, { index, spec });
        else if (runSettings(first.spec) !== runSettings(spec)) {
          ctx.addIssue({
            code: "custom",
            path: [...at, "managed"],
            message: `storage ${storage} is already run by a managed backend of sites[${first.index}] with other settings: give the same settings (they then share one registry) or another storage`,
          });
        }
      }
    });
    checkTokenServices(config.sites, ctx);
    const defaults = config.sites.flatMap((s, index) => (s.default ? [index] : []));
    for (const index of defaults.slice(1)) {
      ctx.addIssue({ code: "custom", path: ["sites", index, "default"], message: "only one site may be the default" });
    }
    config.sites.forEach((s, index) => {
      if (s.tls.source !== "acme") return;
      s.hosts.forEach((host, hostIndex) => {
        // Neither challenge type can prove control of a wildcard, and identifiers are ordered as DNS names.
        if (host.startsWith("*.") || isIP(host)) {
          ctx.addIssue({
            code: "custom",
            path: ["sites", index, "hosts", hostIndex],
            message: `tls.source acme orders certificates for DNS names validated by http-01 or tls-alpn-01: "${host}" cannot be one`,
          });
        }
      });
      if (s.tls.challenge === "http-01" && config.http.listen === null) {
        ctx.addIssue({
          code: "custom",
          path: ["sites", index, "tls", "challenge"],
          message: "http-01 challenges are answered on the plain-HTTP listener: set http.listen (the CA connects to port 80), or use tls-alpn-01",
        });
      }
    });
    if (!config.admin.allowNonLoopback && !isLoopback(config.admin.listen.host)) {
      ctx.addIssue({
        code: "custom",
        path: ["admin", "listen"],
        message: "the admin listener binds loopback unless admin.allowNonLoopback is true",
      });
    }
  });

export type GatewayConfigInput = z.input<typeof gatewayConfig>;
export type GatewayConfig = z.output<typeof gatewayConfig>;
export type SiteConfig = GatewayConfig["sites"][number];
export type BackendConfig = z.output<typeof backend>;
export type HealthCheckConfig = z.output<typeof healthCheck>;

export type ManagedBackendConfig = z.output<typeof managedBackend>["managed"];
export type SiteTlsConfig = SiteConfig["tls"];
export type AcmeTlsConfig = Extract<SiteTlsConfig, { source: "acme" }>;
export type AcmeChallengeType = AcmeTlsConfig["challenge"];
export type SiteAuthConfig = SiteConfig["auth"];
export type AccessRuleConfig = z.output<typeof accessRule>;
export type BackendAuthConfig = SiteConfig["backendAuth"];
export type ReferrersMode = SiteConfig["referrers"];
export type TokensConfig = GatewayConfig["tokens"];
export type RateLimitConfig = SiteConfig["limits"][number];
export type RedisConfig = NonNullable<GatewayConfig["redis"]>;
export type LoginsConfig = GatewayConfig["logins"];
export type TrustedProxy = GatewayConfig["trustedProxies"][number];
