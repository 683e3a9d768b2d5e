// Whether the registries behind a site can carry out a write as the gateway authorized it, decided before
// anything is forwarded (the pipeline's authorize stage):
//
//   mount sources   a blob mount is executed by the target repository's registry, from ITS repository of
//                   the source name. The gateway checked pull on the source as the site serves it, so a
//                   source served by another registry (another prefix route, or in a group another member
//                   than pushTo) is refused: the client then uploads the layer instead, and nothing is read
//                   from a repository the site does not serve under that name.
//   group pushes    uploads, manifest PUTs and DELETEs go to pushTo: a group without one serves pulls only
//                   (405), and a name pushTo does not serve (namespaces.ts) is refused (403).
import type { RegistryRoute } from "../registry/routes.js";
import { membersFor } from "./namespaces.js";
import type { GroupUpstream, SiteUpstreams } from "./upstream.js";

export interface PushRefusal {
  kind: "denied" | "methodNotAllowed";
  message: string;
}

/** A write the site's registries could not carry out as authorized; null: none (or not a write). */
export function pushRefusal(upstreams: SiteUpstreams, route: RegistryRoute, method: string): PushRefusal | null {
  const upstream = upstreams.for(route.repository);
  const stray = route.mountFrom?.find((from) => upstreams.for(from) !== upstream);
  if (stray !== undefined) {
    return denied(`cannot mount from ${stray}: it is served by another registry than ${route.repository}; upload the blob instead`);
  }
  return upstream.kind === "group" && isPush(route, method) ? groupPushRefusal(upstream, route) : null;
}

/** The requests that write to a repository: a group sends them to pushTo. */
export function isPush(route: RegistryRoute, method: string): boolean {
  if (route.kind === "upload") return true;
  if (route.kind === "manifest") return method === "PUT" || method === "DELETE";
  return route.kind === "blob" && method === "DELETE";
}

/** Why a group refuses a push: no pushTo (405), a name or a mount source pushTo does not serve (403). */
export function groupPushRefusal(group: GroupUpstream, route: RegistryRoute): PushRefusal | null {
  const { pushTo } = group;
  if (!pushTo) return { kind: "methodNotAllowed", message: "this registry is a group without pushTo: it serves pulls only" };
  if (!membersFor(group, route.repository!).members.includes(pushTo)) {
    return denied(`${route.repository} is not among the repositories this registry accepts pushes for`);
  }
  const stray = route.mountFrom?.find((from) => !membersFor(group, from).members.includes(pushTo));
  if (stray !== undefined) return denied(`cannot mount from ${stray}: it is not served by the registry pushes go to; upload the blob instead`);
  return null;
}

function denied(message: string): PushRefusal {
  return { kind: "denied", message };
}
