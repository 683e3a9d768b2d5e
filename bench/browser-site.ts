// The gateway as the registry browser's bench and screenshots run it: `node dist/main.js serve`, one
// process, one htpasswd site where everyone may browse and pull and one user may do everything, in front of
// one registry; and signing in through its login form.
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Page } from "playwright-core";
import { startGatewayProcess, type GatewayProcess } from "../test/helpers/cli.js";
import { htpasswdLine } from "../test/helpers/htpasswd.js";

/** The site's name; browsers resolve it to 127.0.0.1 (launchBrowser's host rules). */
export const BROWSER_HOST = "web.registry.test";
export const BROWSER_USER = { name: "bench-user", password: "bench-password-1" };

export interface BrowserSite {
  gateway: GatewayProcess;
  /** https://BROWSER_HOST:PORT */
  origin: string;
  /** http://127.0.0.1:PORT, the admin listener. */
  admin: string;
}

/** Writes the configuration into `dir` and starts the gateway on it; the caller stops `gateway.process`. */
export async function startBrowserSite(dir: string, registryUrl: string): Promise<BrowserSite> {
  const htpasswd = join(dir, "htpasswd");
  await writeFile(htpasswd, `${await htpasswdLine(BROWSER_USER.name, BROWSER_USER.password)}\n`);
  const config = [
    "listen: 127.0.0.1:0",
    'admin: { listen: "127.0.0.1:0" }',
    `dataDir: ${join(dir, "data")}`,
    "workers: 1",
    "log: { level: info, access: false }",
    "sites:",
    "  - name: web",
    `    hosts: [${BROWSER_HOST}]`,
    `    backend: ${registryUrl}`,
    "    auth:",
    "      type: htpasswd",
    `      htpasswd: ${htpasswd}`,
    "      rules:",
    `        - { who: [${BROWSER_USER.name}], repositories: ["**"], actions: [pull, push, delete, catalog] }`,
    '        - { who: "*", repositories: ["**"], actions: [pull, catalog] }',
    "",
  ].join("\n");
  const path = join(dir, "gateway.yaml");
  await writeFile(path, config);
  const gateway = await startGatewayProcess(path);
  return { gateway, origin: `https://${BROWSER_HOST}:${gateway.httpsPort}`, admin: `http://127.0.0.1:${gateway.adminPort}` };
}

/** Through the login form, as a person does: whatever hidden fields it carries go along. */
export async function signIn(page: Page, origin: string): Promise<void> {
  const form = await page.goto(`${origin}/login?next=/`);
  if (form?.status() !== 200) throw new Error(`${origin}/login answered ${form?.status()}`);
  await page.fill('input[name="username"]', BROWSER_USER.name, { timeout: 5000 });
  await page.fill('input[name="password"]', BROWSER_USER.password, { timeout: 5000 });
  await Promise.all([page.waitForNavigation(), page.press('input[name="password"]', "Enter")]);
  if (!(await page.context().cookies(origin)).length) throw new Error("signing in set no cookie");
}
