// A configured backend's URL. A backend given as a URL is its own; a managed one has a URL only once its
// registry runs (backends/managed.ts supplies the resolver that knows it).
import type { BackendConfig } from "../config/schema.js";

export type BackendResolver = (backend: BackendConfig) => URL;

/** The resolver for a configuration whose managed backends are not running: it refuses them. */
export const configuredBackend: BackendResolver = (backend) => {
  if (backend instanceof URL) return backend;
  throw new Error(`a managed backend (storage ${backend.managed.storage ?? "default"}) has not been started`);
};
