// Headless Chromium (the system's, driven by playwright-core, which downloads no browser) for tests of the
// pages the gateway serves: sealed off from the network beyond loopback, with a fresh profile each time.
import { chromium, type BrowserContext } from "playwright-core";

const ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/**
 * A browser context on a fresh profile in `userDataDir` (an empty directory the caller removes). `hosts`
 * names the test host names the browser resolves to 127.0.0.1. The gateway's test CA is not trusted, so
 * certificate errors are ignored: what is tested is the pages, not the chain.
 */
export function launchChromium(userDataDir: string, hosts: readonly string[] = []): Promise<BrowserContext> {
  const args = hosts.length > 0 ? [...ARGS, `--host-resolver-rules=${hosts.map((host) => `MAP ${host} 127.0.0.1`).join(", ")}`] : ARGS;
  return chromium.launchPersistentContext(userDataDir, { executablePath: "/usr/bin/chromium", args, ignoreHTTPSErrors: true });
}
