// The one configuration schema: it is the TypeScript type, the validator and the defaults.
// Every key here is documented in config/gateway.yaml; keep the two in step.
import { z } from "zod";

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

const generatedTls = z.strictObject({
  source: z.literal("generated"),
});

const filesTls = z.strictObject({
  source: z.literal("files"),
  cert: z.string().min(1),
  key: z.string().min(1),
});

export const siteTls = z.discriminatedUnion("source", [generatedTls, filesTls]);

export const site = z.strictObject({
  /** Label used in logs and metrics; defaults to the first host. */
  name: z.string().regex(/^[A-Za-z0-9._-]+$/).optional(),
  hosts: z.array(hostName).min(1),
  backend: backendUrl,
  /** The site answering TLS handshakes with an unknown or absent SNI; defaults to the first site. */
  default: z.boolean().default(false),
  tls: siteTls.prefault({ source: "generated" }),
});

export const gatewayConfig = z
  .strictObject({
    listen: listenAddress.prefault(":5443"),
    admin: z
      .strictObject({
        listen: listenAddress.prefault("127.0.0.1:9091"),
        /** Binding the admin listener beyond loopback must be asked for. */
        allowNonLoopback: z.boolean().default(false),
      })
      .prefault({}),
    dataDir: z.string().min(1).default("./data"),
    tls: z
      .strictObject({
        minVersion: z.enum(["TLSv1.2", "TLSv1.3"]).default("TLSv1.2"),
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
        idle: duration.prefault("5m"),
        keepAlive: duration.prefault("65s"),
        drain: duration.prefault("30s"),
      })
      .prefault({}),
    limits: z
      .strictObject({
        maxHeaderBytes: z.number().int().min(1024).max(1_048_576).default(16_384),
      })
      .prefault({}),
    log: z
      .strictObject({
        level: z.enum(["trace", "debug", "info", "warn", "error", "fatal", "silent"]).default("info"),
        format: z.enum(["json", "pretty"]).default("json"),
      })
      .prefault({}),
    sites: z.array(site).min(1),
  })
  .superRefine((config, ctx) => {
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
    const defaults = config.sites.flatMap((s, index) => (s.default ? [index] : []));
    for (const index of defaults.slice(1)) {
      ctx.addIssue({ code: "custom", path: ["sites", index, "default"], message: "only one site may be the default" });
    }
    if (!config.admin.allowNonLoopback && !isLoopback(config.admin.listen.host)) {
      ctx.addIssue({
        code: "custom",
        path: ["admin", "listen"],
        message: "the admin listener binds loopback unless admin.allowNonLoopback is true",
      });
    }
  });

export function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

export type GatewayConfigInput = z.input<typeof gatewayConfig>;
export type GatewayConfig = z.output<typeof gatewayConfig>;
export type SiteConfig = GatewayConfig["sites"][number];
export type SiteTlsConfig = SiteConfig["tls"];
