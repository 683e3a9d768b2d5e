// The Authorization the gateway sends its managed registries, made from the gateway's signing key in its data
// directory: for tests that look into a managed registry directly, which answers nobody else.
import { BackendTokenMinter } from "../../src/auth/backend-token.js";
import { loadSigningKey } from "../../src/auth/signing-key.js";
import { TokenIssuer } from "../../src/auth/tokens.js";
import { MANAGED_SERVICE } from "../../src/backends/managed-auth.js";
import { tokens } from "../../src/config/schema.js";
import type { Access } from "../../src/registry/routes.js";

/** `Bearer …` granting `accesses` at the managed registries of a gateway with default `tokens` settings. */
export async function managedRegistryAuthorization(dataDir: string, accesses: readonly Access[]): Promise<string> {
  const settings = tokens.parse({});
  const issuer = new TokenIssuer(await loadSigningKey({ dataDir, tokens: settings }), settings.issuer, MANAGED_SERVICE);
  return new BackendTokenMinter(issuer, MANAGED_SERVICE).authorizationFor(accesses, null);
}
