// `cert rotate` when no gateway is running: only the data directory changes; the next start serves it.
//   generated  a new leaf from the local CA
//   files      nothing to do: the gateway reads the files themselves when it starts or reloads
//   acme       an order, answered by temporary listeners on the gateway's own addresses (where the CA
//              validates: http.listen for HTTP-01, listen for TLS-ALPN-01), closed again afterwards
import { once } from "node:events";
import http from "node:http";
import * as tls from "node:tls";
import type { GatewayConfig, ListenAddress } from "../config/schema.js";
import { defaultSiteName, siteName } from "../config/site-names.js";
import { ProxyProtocolGate } from "../proxy/proxy-protocol-gate.js";
import { AcmeManager, acmeSites, type AcmeLogger } from "./acme.js";
import { AcmeChallengeResponder, createPlainHttpHandler, tlsChallengeHooks } from "./acme-challenges.js";
import { ForwardingResponder } from "../control/forwarding-responder.js";
import { certificateStatus } from "./cert-info.js";
import { report, selectSites, type RotationOutcome } from "./rotation.js";
import { CertificateStore, loadSiteCertificates } from "./store.js";
import type { TlsStore } from "./tls-store.js";
import { withTlsStore } from "./tls-stores.js";

const FILES_NOTE = "nothing to do on disk: the gateway reads tls.cert and tls.key when it starts or reloads; replace the files, then start or reload it";

export function rotateOnDisk(config: GatewayConfig, selector: string | undefined, logger?: AcmeLogger): Promise<RotationOutcome> {
  // Held for the whole rotation: one connection to a shared store, not one per step.
  return withTlsStore(config, (store) => rotateInStore(config, store, selector, logger));
}

async function rotateInStore(config: GatewayConfig, store: TlsStore, selector: string | undefined, logger?: AcmeLogger): Promise<RotationOutcome> {
  let targets;
  try {
    targets = selectSites(config, selector);
  } catch (error) {
    return { ok: false, certificates: [], errors: [(error as Error).message] };
  }
  const before = await servedSerials(config);
  const failures = new Map<string, string>();
  const names = (source: string) => targets.filter((site) => site.tls.source === source).map(siteName);

  const generated = names("generated");
  if (generated.length > 0) {
    try {
      await loadSiteCertificates(config, { sites: new Set(generated), renew: new Set(generated), store });
    } catch (error) {
      for (const name of generated) failures.set(name, (error as Error).message);
    }
  }
  const acme = names("acme");
  if (acme.length > 0) {
    for (const [name, why] of await orderWithTemporaryListeners(config, store, acme, logger)) failures.set(name, why);
  }

  const after = await servedSerials(config);
  const certificates = targets.map((site) => {
    const name = siteName(site);
    return report(site, before.get(name)?.serial ?? null, after.get(name) ?? null, failures.get(name), site.tls.source === "files" ? FILES_NOTE : undefined);
  });
  return { ok: failures.size === 0, certificates, errors: [] };
}

async function servedSerials(config: GatewayConfig): Promise<Map<string, { serial: string; notAfter: Date }>> {
  const serials = new Map<string, { serial: string; notAfter: Date }>();
  for (const row of await certificateStatus(config)) {
    if (row.certificate && !serials.has(row.site)) serials.set(row.site, { serial: row.certificate.serial, notAfter: row.certificate.notAfter });
  }
  return serials;
}

/** Orders for `names`; returns the sites that failed and why. */
async function orderWithTemporaryListeners(config: GatewayConfig, store: TlsStore, names: string[], logger?: AcmeLogger): Promise<Map<string, string>> {
  const sites = acmeSites(config).filter((site) => names.includes(site.name));
  // With a shared store the balancer may send the CA to a running gateway of the fleet: it answers too.
  const fleet = store.fleet;
  const responder = fleet ? new ForwardingResponder((change) => fleet.publishChallenge(change)) : new AcmeChallengeResponder();
  const servers: (http.Server | tls.Server)[] = [];
  const failures = new Map<string, string>();
  try {
    // Behind a balancer that sends the PROXY protocol, the CA's requests arrive with its header, as at a
    // running gateway: the temporary listeners take it off the same way.
    const gate = new ProxyProtocolGate(config.proxyProtocol, config.timeouts.handshake, { debug: () => {}, warn: (details, message) => logger?.warn(details, message) });
    if (sites.some((site) => site.tls.challenge === "http-01") && config.http.listen) {
      const server = http.createServer(createPlainHttpHandler({ responder, httpsPort: config.listen.port }));
      gate.guard(server);
      servers.push(await listen(server, config.http.listen, "http.listen"));
    }
    if (sites.some((site) => site.tls.challenge === "tls-alpn-01")) {
      // Whoever else connects meanwhile gets the site's current certificate and a closed connection.
      const { certificates } = await loadSiteCertificates(config, { store });
      const current = new CertificateStore(certificates, defaultSiteName(config), config.tls.minVersion);
      const server = tls.createServer({ ...current.serverOptions(), ...tlsChallengeHooks(responder, (name) => current.contextFor(name)) }, (socket) => socket.end());
      gate.guard(server);
      servers.push(await listen(server, config.listen, "listen"));
    }
    const manager = new AcmeManager({ dataDir: config.dataDir, store, sites, responder, onCertificate: () => {}, ...(logger ? { logger } : {}) });
    // start() adopts what is stored, so renewNow replaces that rather than "renewing" to it.
    await manager.start();
    try {
      await Promise.all(
        sites.map((site) => manager.renewNow(site.name).catch((error: Error) => failures.set(site.name, error.message))),
      );
    } finally {
      await manager.stop();
    }
  } catch (error) {
    for (const site of sites) if (!failures.has(site.name)) failures.set(site.name, (error as Error).message);
  } finally {
    for (const server of servers) server.close();
  }
  return failures;
}

async function listen<T extends http.Server | tls.Server>(server: T, address: ListenAddress, key: string): Promise<T> {
  server.listen(address.port, address.host);
  try {
    await once(server, "listening");
  } catch (error) {
    const busy = (error as NodeJS.ErrnoException).code === "EADDRINUSE";
    throw new Error(
      busy
        ? `cannot answer the CA's challenges on ${key} ${address.host}:${address.port}: another process listens there (a gateway whose admin listener did not answer?)`
        : `cannot listen on ${key} ${address.host}:${address.port}: ${(error as Error).message}`,
    );
  }
  return server;
}
