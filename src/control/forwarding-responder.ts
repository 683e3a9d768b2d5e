// The responder the ACME manager fills: it answers nothing itself, it hands every change down to the data
// plane, whose listeners are where the CA connects (in a cluster, any worker may be asked).
import { AcmeChallengeResponder } from "../tls/acme-challenges.js";
import type { ChallengeChange } from "./data-plane.js";

export class ForwardingResponder extends AcmeChallengeResponder {
  #lastForwarded: Promise<unknown> = Promise.resolve();

  constructor(private readonly forward: (change: ChallengeChange) => Promise<void>) {
    super();
  }

  /** Every challenge added so far is answered by the data plane: the CA may be told to check it. */
  override async published(): Promise<void> {
    await this.#lastForwarded;
  }

  override addHttpChallenge(token: string, keyAuthorization: string): void {
    super.addHttpChallenge(token, keyAuthorization);
    this.#change({ kind: "http", token, keyAuthorization });
  }

  override removeHttpChallenge(token: string): void {
    super.removeHttpChallenge(token);
    this.#change({ kind: "http", token, keyAuthorization: null });
  }

  override addAlpnChallenge(host: string, certPem: string, keyPem: string): void {
    super.addAlpnChallenge(host, certPem, keyPem);
    this.#change({ kind: "alpn", host, certPem, keyPem });
  }

  override removeAlpnChallenge(host: string): void {
    super.removeAlpnChallenge(host);
    this.#change({ kind: "alpn", host, certPem: null, keyPem: null });
  }

  #change(change: ChallengeChange): void {
    // In order: a removal never overtakes the addition it undoes.
    this.#lastForwarded = this.#lastForwarded.then(() => this.forward(change)).catch(() => {});
  }
}
