// Which certificate each site presents: the set loaded from configuration (generated leaves, files, the
// ACME certificate stored on disk or the generated fallback), overlaid with the newest certificate the
// ACME manager handed over. Both change independently (a reload or rotation replaces the set, an ACME
// order hands one over at any time), and either way the store gets the whole set at once, so one never
// undoes the other: a reload that read the disk just before an order finished still keeps the new one.
import type { CertificateStore, SiteCertificate } from "./store.js";

export class ServedCertificates {
  readonly #store: CertificateStore;
  #loaded: SiteCertificate[];
  #defaultSite: string;
  /** Sites whose certificate comes from ACME, so a hand-over for a site that is no longer one is ignored. */
  #acmeSites: ReadonlySet<string>;
  readonly #handedOver = new Map<string, SiteCertificate>();

  /** `loaded` must be what the store was built with. */
  constructor(store: CertificateStore, loaded: SiteCertificate[], defaultSite: string, acmeSites: ReadonlySet<string>) {
    this.#store = store;
    this.#loaded = loaded;
    this.#defaultSite = defaultSite;
    this.#acmeSites = acmeSites;
  }

  /**
   * Serves a new set from configuration (reload, rotation). Validates everything first: on error it
   * throws and nothing changes. `keepHandOvers: false` when the ACME manager is replaced too (the new
   * one hands over what it adopts).
   */
  replaceLoaded(loaded: SiteCertificate[], defaultSite: string, acmeSites: ReadonlySet<string>, { keepHandOvers = true } = {}): void {
    const handedOver = new Map(keepHandOvers ? this.#handedOver : []);
    for (const [site, certificate] of handedOver) {
      const entry = loaded.find((c) => c.site === site);
      // A site whose hosts changed needs a new order: its old certificate does not cover them.
      if (!acmeSites.has(site) || !entry || !sameHosts(entry.hosts, certificate.hosts)) handedOver.delete(site);
    }
    this.#store.replace(overlay(loaded, handedOver), defaultSite);
    this.#loaded = loaded;
    this.#defaultSite = defaultSite;
    this.#acmeSites = acmeSites;
    this.#handedOver.clear();
    for (const [site, certificate] of handedOver) this.#handedOver.set(site, certificate);
  }

  /** The set loaded from configuration (without ACME hand-overs), as replaceSome last left it. */
  get loaded(): readonly SiteCertificate[] {
    return this.#loaded;
  }

  /** Throws what replaceLoaded would throw for this set, changing nothing. */
  validate(loaded: SiteCertificate[], defaultSite: string): void {
    this.#store.validate(loaded, defaultSite);
  }

  /** Replaces some sites' loaded certificates (rotation of generated and files sites). */
  replaceSome(certificates: SiteCertificate[]): void {
    const bySite = new Map(certificates.map((c) => [c.site, c]));
    this.replaceLoaded(
      this.#loaded.map((c) => bySite.get(c.site) ?? c),
      this.#defaultSite,
      this.#acmeSites,
    );
  }

  /** The ACME manager's onCertificate. Throws (the manager logs it) if the certificate cannot be served. */
  acmeCertificate(site: string, certPem: string, keyPem: string): void {
    const entry = this.#loaded.find((c) => c.site === site);
    if (!entry || !this.#acmeSites.has(site)) return;
    const next = new Map(this.#handedOver).set(site, { site, hosts: [...entry.hosts], certPem, keyPem });
    this.#store.replace(overlay(this.#loaded, next), this.#defaultSite);
    this.#handedOver.set(site, next.get(site)!);
  }
}

function overlay(loaded: SiteCertificate[], handedOver: ReadonlyMap<string, SiteCertificate>): SiteCertificate[] {
  return loaded.map((certificate) => handedOver.get(certificate.site) ?? certificate);
}

function sameHosts(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((host, index) => host === b[index]);
}
