// One ACME order with acme-client: a fresh ECDSA key, a CSR for every host of the site, the challenges put
// up in the responder for the listeners to answer and taken down afterwards. One account (and client) per
// directory, registered once per process and shared by the sites using that directory.
import path from "node:path";
import * as acme from "acme-client";
import type { AcmeTlsConfig } from "../config/schema.js";
import type { AcmeChallengeResponder } from "./acme-challenges.js";
import { trustAcmeServer } from "./acme-transport.js";
import type { KeyPairPem } from "./selfsigned.js";
import type { TlsStore } from "./tls-store.js";

export interface AcmeSite {
  name: string;
  hosts: string[];
  tls: AcmeTlsConfig;
}

/** One order: a fresh key and a certificate chain (leaf first) for every host of the site. */
export interface CertificateOrderer {
  order(site: AcmeSite): Promise<KeyPairPem>;
}

/** How often to ask whether a challenge or order has become valid (acme-client's backoff). */
export interface StatusPolling {
  minMs: number;
  maxMs: number;
  attempts: number;
}

// acme-client waits 5 s before the first re-check; CAs usually validate within a second or two.
const DEFAULT_STATUS_POLLING: StatusPolling = { minMs: 1000, maxMs: 10_000, attempts: 12 };

// X.520 upper bound for commonName; longer names go in the SAN only.
const MAX_COMMON_NAME = 64;

export class AcmeClientOrderer implements CertificateOrderer {
  readonly #store: TlsStore;
  readonly #responder: AcmeChallengeResponder;
  readonly #polling: StatusPolling;
  readonly #clients = new Map<string, Promise<acme.Client>>();

  constructor(store: TlsStore, responder: AcmeChallengeResponder, polling: StatusPolling = DEFAULT_STATUS_POLLING) {
    this.#store = store;
    this.#responder = responder;
    this.#polling = polling;
  }

  async order(site: AcmeSite): Promise<KeyPairPem> {
    const { tls: config, hosts } = site;
    const client = await this.#client(config);
    const keyPem = await acme.crypto.createPrivateEcdsaKey("P-256");
    const [, csr] = await acme.crypto.createCsr(
      { ...(hosts[0]!.length <= MAX_COMMON_NAME ? { commonName: hosts[0] } : {}), altNames: [...hosts] },
      keyPem,
    );
    try {
      const certPem = await client.auto({
        csr,
        ...(config.email ? { email: config.email } : {}),
        termsOfServiceAgreed: true,
        challengePriority: [config.challenge],
        // acme-client's self-check fetches the challenge from this machine through public DNS, which fails
        // behind NAT or split DNS although the CA would succeed: the CA's own validation is what counts.
        skipChallengeVerification: true,
        challengeCreateFn: (authz, challenge, keyAuthorization) => this.#present(config.challenge, authz, challenge, keyAuthorization),
        challengeRemoveFn: async (authz, challenge) => this.#withdraw(authz, challenge),
      });
      return { certPem, keyPem: keyPem.toString() };
    } catch (error) {
      // The account may be gone (deactivated, or a test CA restarted): register afresh next time.
      this.#clients.delete(config.directory);
      throw error;
    }
  }

  async #present(wanted: string, authz: acme.Authorization, challenge: { type: string; token: string }, keyAuthorization: string): Promise<void> {
    const host = authz.identifier.value;
    if (challenge.type !== wanted) throw new Error(`the CA offers no ${wanted} challenge for ${host}`);
    if (challenge.type === "http-01") {
      this.#responder.addHttpChallenge(challenge.token, keyAuthorization);
    } else {
      // ECDSA, like every site certificate the gateway makes: Node adds an SNI context's certificate to the
      // handshake's set by key type, and OpenSSL prefers ECDSA, so an RSA challenge certificate would lose
      // to the listener's default (ECDSA) one.
      const [keyPem, certPem] = await acme.crypto.createAlpnCertificate(authz, keyAuthorization, await acme.crypto.createPrivateEcdsaKey("P-256"));
      this.#responder.addAlpnChallenge(host, certPem.toString(), keyPem.toString());
    }
    // Only then is the CA told to validate: in a cluster, every worker must be able to answer first.
    await this.#responder.published();
  }

  #withdraw(authz: acme.Authorization, challenge: { type: string; token: string }): void {
    if (challenge.type === "http-01") this.#responder.removeHttpChallenge(challenge.token);
    else this.#responder.removeAlpnChallenge(authz.identifier.value);
  }

  #client(config: AcmeTlsConfig): Promise<acme.Client> {
    let client = this.#clients.get(config.directory);
    if (!client) {
      client = this.#createClient(config);
      this.#clients.set(config.directory, client);
      client.catch(() => this.#clients.delete(config.directory));
    }
    return client;
  }

  async #createClient(config: AcmeTlsConfig): Promise<acme.Client> {
    // Relative to the working directory, as load.ts resolves every other path in the config.
    if (config.caFile) await trustAcmeServer(config.directory, path.resolve(config.caFile));
    const { keyPem } = await this.#store.loadOrCreateAccountKey(config.directory);
    const client = new acme.Client({
      directoryUrl: config.directory,
      accountKey: keyPem,
      backoffMin: this.#polling.minMs,
      backoffMax: this.#polling.maxMs,
      backoffAttempts: this.#polling.attempts,
      ...(config.eab ? { externalAccountBinding: { kid: config.eab.kid, hmacKey: config.eab.hmacKey } } : {}),
    });
    await registerAccount(client, config.email);
    return client;
  }
}

/**
 * Finds the account of this key, or registers one. acme-client's own registration (in `auto`) answers
 * "account exists" with an update carrying only termsOfServiceAgreed, which servers refuse as an empty
 * update ("Use POST-as-GET"): so a restart with a stored key would fail. Asking for the existing account
 * first (onlyReturnExisting) avoids that update.
 */
async function registerAccount(client: acme.Client, email: string | undefined): Promise<void> {
  const existing = () => client.createAccount({ onlyReturnExisting: true });
  try {
    await existing();
    return;
  } catch {
    // No account for this key yet, or the server is unreachable: the next request says which.
  }
  try {
    await client.createAccount({ termsOfServiceAgreed: true, ...(email ? { contact: [`mailto:${email}`] } : {}) });
  } catch (error) {
    // Another process registered the same key in between.
    await existing().catch(() => {
      throw error;
    });
  }
}
