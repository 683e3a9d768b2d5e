// The Authorization the gateway sends its managed registries, made from their key pair in its data
// directory: for tests that look into a managed registry directly, which answers nobody else.
import { loadManagedTrust } from "../../src/backends/managed-auth.js";
import type { Access } from "../../src/registry/routes.js";

/** `Bearer …` granting `accesses` at the managed registries of a gateway with data directory `dataDir`. */
export async function managedRegistryAuthorization(dataDir: string, accesses: readonly Access[]): Promise<string> {
  return (await loadManagedTrust(dataDir)).minter.authorizationFor(accesses, null);
}
