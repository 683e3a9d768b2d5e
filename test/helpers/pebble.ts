// A real ACME CA for tests: pebble, with pebble-challtestsrv as its DNS server answering
// every name with 127.0.0.1. Validation really happens (PEBBLE_VA_ALWAYS_VALID is never set): pebble
// connects to 127.0.0.1:httpPort for HTTP-01 and 127.0.0.1:tlsPort for TLS-ALPN-01, where the test
// serves the challenges. Every port is ephemeral; pebble's own HTTPS certificate comes from our local CA.
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import https from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { issueLeaf, loadOrCreateCa } from "../../src/tls/selfsigned.js";
import { freePort, isListening } from "./ports.js";
import { startProcess, waitFor, type ManagedProcess } from "./process.js";

export interface PebbleOptions {
  /** Where pebble validates HTTP-01 (its config's httpPort). */
  httpPort: number;
  /** Where pebble validates TLS-ALPN-01 (its config's tlsPort). */
  tlsPort: number;
  /** Lifetime of issued certificates, in seconds (pebble's certificateValidityPeriod). Default: pebble's. */
  certificateValiditySeconds?: number;
  /** kid → base64url HMAC key; set to require External Account Binding. */
  eabKeys?: Record<string, string>;
}

export interface Pebble {
  /** https://127.0.0.1:PORT/dir */
  directoryUrl: string;
  /** The CA that signed pebble's own HTTPS certificate: an ACME client's tls.caFile. */
  caFile: string;
  caPem: string;
  /** Orders pebble has accepted (newOrder requests in its log). */
  orders(): number;
  /** The root that issued certificates chain to (management interface /roots/0). */
  issuingRoot(): Promise<string>;
  output(): string;
  stop(): Promise<void>;
}

const BIND_ATTEMPTS = 3;

export async function startPebble(options: PebbleOptions): Promise<Pebble> {
  const dir = await mkdtemp(join(tmpdir(), "rg-pebble-"));
  try {
    const ca = await loadOrCreateCa(join(dir, "ca-data"), 1);
    const leaf = await issueLeaf(ca, ["127.0.0.1", "localhost"], 1);
    await writeFile(join(dir, "pebble.crt"), leaf.certPem);
    await writeFile(join(dir, "pebble.key"), leaf.keyPem);
    for (let attempt = 1; ; attempt++) {
      try {
        return await tryStart(dir, ca.certPath, ca.certPem, options);
      } catch (err) {
        // freePort() releases a port before pebble binds it; another process may have won the race.
        if (attempt >= BIND_ATTEMPTS || !/address already in use/i.test(String(err))) throw err;
      }
    }
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

async function tryStart(dir: string, caFile: string, caPem: string, options: PebbleOptions): Promise<Pebble> {
  const [acmePort, managementPort, dnsPort, dnsManagementPort] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
  // Only the DNS server of challtestsrv: its own challenge servers would take the ports the test serves.
  const dns = startProcess(
    "pebble-challtestsrv",
    ["-http01", "", "-https01", "", "-tlsalpn01", "", "-dns01", `127.0.0.1:${dnsPort}`, "-management", `127.0.0.1:${dnsManagementPort}`, "-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""],
    { name: `pebble-challtestsrv :${dnsPort}` },
  );
  const config = {
    pebble: {
      listenAddress: `127.0.0.1:${acmePort}`,
      managementListenAddress: `127.0.0.1:${managementPort}`,
      certificate: join(dir, "pebble.crt"),
      privateKey: join(dir, "pebble.key"),
      httpPort: options.httpPort,
      tlsPort: options.tlsPort,
      ocspResponderURL: "",
      externalAccountBindingRequired: options.eabKeys !== undefined,
      ...(options.eabKeys ? { externalAccountMACKeys: options.eabKeys } : {}),
      ...(options.certificateValiditySeconds ? { certificateValidityPeriod: options.certificateValiditySeconds } : {}),
    },
  };
  const configFile = join(dir, `pebble-${acmePort}.json`);
  await writeFile(configFile, JSON.stringify(config, null, 2));
  const pebble = startProcess("pebble", ["-config", configFile, "-dnsserver", `127.0.0.1:${dnsPort}`], {
    name: `pebble :${acmePort}`,
    keepLines: 5000,
    // NOSLEEP: no random validation delay. AUTHZREUSE=0: every order is validated, none rides on an
    // earlier authorization. PEBBLE_VA_ALWAYS_VALID stays unset: validation must really happen.
    // pebble rejects 5% of good nonces by default to exercise client retries; a retried newOrder would
    // then show twice in its log and make order counting flaky.
    env: { PEBBLE_VA_NOSLEEP: "1", PEBBLE_AUTHZREUSE: "0", PEBBLE_WFE_NONCEREJECT: "0", PEBBLE_VA_ALWAYS_VALID: undefined },
  });
  const stopAll = async () => {
    await Promise.all([pebble.stop(2000), dns.stop(2000)]);
  };
  const directoryUrl = `https://127.0.0.1:${acmePort}/dir`;
  try {
    await waitFor(() => isListening(dnsManagementPort), {
      timeoutMs: 10_000,
      intervalMs: 25,
      what: "pebble-challtestsrv",
      giveUpIf: () => exitedWith(dns),
    });
    await waitFor(async () => (await get(directoryUrl, caPem)).status === 200, {
      timeoutMs: 10_000,
      intervalMs: 25,
      what: `pebble at ${directoryUrl}`,
      giveUpIf: () => exitedWith(pebble),
    });
  } catch (err) {
    await stopAll();
    throw new Error(`${(err as Error).message}\n--- pebble ---\n${pebble.output()}\n--- challtestsrv ---\n${dns.output()}`);
  }
  return {
    directoryUrl,
    caFile,
    caPem,
    orders: () => pebble.output().split("\n").filter((line) => /POST \/order-plz/.test(line)).length,
    issuingRoot: async () => (await get(`https://127.0.0.1:${managementPort}/roots/0`, caPem)).body,
    output: () => pebble.output(),
    stop: async () => {
      await stopAll();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

function exitedWith(child: ManagedProcess): string | undefined {
  return child.exitStatus ? `exited (${JSON.stringify(child.exitStatus)}):\n${child.output()}` : undefined;
}


function get(url: string, caPem: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    https
      .get(url, { ca: caPem, agent: false, timeout: 5000 }, (res) => {
        let body = "";
        res.setEncoding("utf8").on("data", (chunk: string) => (body += chunk));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .on("error", reject)
      .on("timeout", function (this: { destroy(err: Error): void }) {
        this.destroy(new Error("timeout"));
      });
  });
}
