// The browser's routes, built from names. Repository names contain '/', which stays a '/' in paths;
// everything else in a name is percent-encoded.

/** A repository name as a path: each '/'-separated component encoded on its own. */
export function encodeName(name: string): string {
  return name.split("/").map(encodeURIComponent).join("/");
}

export function repositoryUrl(repository: string): string {
  return `/repo/${encodeName(repository)}`;
}

export function tagUrl(repository: string, tag: string): string {
  return `/tag/${encodeName(repository)}:${encodeURIComponent(tag)}`;
}

export function deleteConfirmUrl(repository: string, tag: string): string {
  return `/delete?${new URLSearchParams({ repository, tag }).toString()}`;
}

export function loginUrl(next: string): string {
  return `/login?${new URLSearchParams({ next }).toString()}`;
}

/**
 * A link target from a model, kept only when it is a path on this site: a scheme (`javascript:`) or a
 * host (`//evil.example`, `/\evil.example`) in a link would take users elsewhere, so those become "/".
 */
export function sitePath(url: string): string {
  return /^\/(?![/\\])/.test(url) && !/[\u0000-\u001f]/.test(url) ? url : "/";
}

export function pullCommand(registryHost: string, repository: string, tag: string): string {
  return `docker pull ${registryHost}/${repository}:${tag}`;
}
