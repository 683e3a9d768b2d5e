// Facts about configuration values that need none of the schema's types: schema.ts validates with them,
// and code running on a validated configuration applies the same ones (without loading zod). Kept apart
// from helpers.ts, whose functions take the schema's types, so the schema depends on this and not back.
import path from "node:path";

/**
 * The `service` (token audience) of every managed registry (backends/managed-auth.ts). The spaces keep it
 * apart from every site name and host name (a site's default service); the schema refuses it as a
 * configured one, so no token the gateway issues to clients or to other backends is ever valid at a
 * managed registry.
 */
export const MANAGED_SERVICE = "registry-gateway managed registry";

/** An admin token: RFC 6750's b64token (a Bearer header carries it unchanged), long enough not to be guessed. */
export const ADMIN_TOKEN_PATTERN = /^[A-Za-z0-9\-._~+/]{16,}=*$/;

export function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/** Where a managed backend keeps its images, before relative paths are resolved. */
export function managedStorage<Spec extends { storage?: string | undefined }>(spec: Spec, dataDir: string): string {
  return spec.storage ?? path.join(dataDir, "registry");
}

/** The fields by which a site, or one of its routes, names its backends (of type `Backend`). */
export type UpstreamFields<Backend> = {
  backend?: Backend;
  backends?: Backend[];
  group?: { name: string; backend?: Backend; backends?: Backend[]; repositories?: string[] }[];
  pushTo?: string;
};

/** Every backend a site names, with where it is named (for issues). */
export function namedBackends<Backend>(
  site: UpstreamFields<Backend> & { routes: UpstreamFields<Backend>[] },
  at: (string | number)[],
): { backend: Backend; at: (string | number)[] }[] {
  const ofPool = (fields: Omit<UpstreamFields<Backend>, "group" | "pushTo">, where: (string | number)[]) => [
    ...(fields.backend ? [{ backend: fields.backend, at: [...where, "backend"] }] : []),
    ...(fields.backends ?? []).map((backend, i) => ({ backend, at: [...where, "backends", i] })),
  ];
  const ofUpstream = (fields: UpstreamFields<Backend>, where: (string | number)[]) => [
    ...ofPool(fields, where),
    ...(fields.group ?? []).flatMap((member, i) => ofPool(member, [...where, "group", i])),
  ];
  return [...ofUpstream(site, at), ...site.routes.flatMap((route, i) => ofUpstream(route, [...at, "routes", i]))];
}
