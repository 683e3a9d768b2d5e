// Headless chromium (the system's, driven by playwright-core, which downloads no browser) for the bench and
// the screenshots. Playwright's launch() gives every browser a fresh temporary profile (--user-data-dir) of
// its own and removes it on close; the flags keep the browser from talking to anything but loopback.
import { chromium, type Browser } from "playwright-core";

export const CHROMIUM_PATH = "/usr/bin/chromium";

const QUIET_FLAGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** `hosts`: names the browser resolves to 127.0.0.1 (the gateway's site names). */
export function launchBrowser(hosts: readonly string[] = []): Promise<Browser> {
  const rules = hosts.map((host) => `MAP ${host} 127.0.0.1`).join(", ");
  return chromium.launch({ executablePath: CHROMIUM_PATH, args: [...QUIET_FLAGS, ...(rules ? [`--host-resolver-rules=${rules}`] : [])] });
}
