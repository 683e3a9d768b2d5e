// Tokens stay on the site that issued them. Found by an attacker test: two token sites sharing a service
// let a user with rights on one site only read and delete on the other, anonymous tokens crossed too, and
// the configuration loaded without a word. Against a real distribution registry whose access log shows
// that nothing was served for the refused requests.
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { AccessRuleConfig } from "../../src/config/schema.js";
import { startTestGateway, type TestGateway } from "../helpers/gateway.js";
import { htpasswdLine } from "../helpers/htpasswd.js";
import { OCI_MANIFEST } from "../helpers/oci.js";
import { waitFor } from "../helpers/process.js";
import { accessLog, startRegistry, type Registry } from "../helpers/registry.js";
import { pushTinyImage, type TinyImage } from "../helpers/seed.js";

const A = "a.test";
const B = "b.test";
/** The user agent of a request the backend must see: the gateway passes user agents on. */
const CONTROL = "control-admin";
const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;

/** reader may do everything on a.test, anyone may pull team/** there; on b.test only admin may do anything. */
const OPEN_RULES: AccessRuleConfig[] = [
  { who: ["reader"], repositories: ["**"], actions: ["pull", "push", "delete"] },
  { who: "*", repositories: ["team/**"], actions: ["pull"] },
];
const ADMIN_ONLY: AccessRuleConfig[] = [{ who: ["admin"], repositories: ["**"], actions: ["pull", "push", "delete", "catalog"] }];

describe("tokens are bound to the site that issued them", () => {
  let workDir: string;
  let dataDir: string;
  let htpasswd: string;
  let backendA: Registry;
  let backendB: Registry;
  let image: TinyImage;
  let gateway: TestGateway;
  let refusedAgents: string[] = [];

  const site = (name: string, host: string, backend: Registry, service: string, rules: AccessRuleConfig[]) => ({
    name,
    hosts: [host],
    backend: backend.url,
    auth: { type: "token" as const, htpasswd, service, rules },
  });

  /** A token from `on`'s /token for `service`. */
  const tokenFrom = async (on: TestGateway, host: string, service: string, authorization?: string) => {
    const res = await on.request(host, {
      path: `/token?service=${service}&scope=repository:team/app:pull,delete`,
      headers: authorization ? { authorization } : {},
    });
    assert.equal(res.status, 200, res.body.toString());
    return res.json().token as string;
  };

  /** GET and DELETE of team/app's manifest with `token`; every request gets a user agent of its own. */
  const readAndDelete = async (on: TestGateway, host: string, token: string, label: string) => {
    const statuses: number[] = [];
    for (const [method, reference] of [["GET", "v1"], ["DELETE", image.manifestDigest]] as const) {
      const agent = `refused-${label}-${method}`;
      refusedAgents.push(agent);
      const res = await on.request(host, {
        method,
        path: `/v2/team/app/manifests/${reference}`,
        headers: { authorization: `Bearer ${token}`, accept: OCI_MANIFEST, "user-agent": agent },
      });
      statuses.push(res.status);
      if (res.status === 401) assert.equal(res.json().errors[0].code, "UNAUTHORIZED");
    }
    return statuses;
  };

  before(async () => {
    workDir = await mkdtemp(join(tmpdir(), "rg-token-sites-"));
    dataDir = join(workDir, "data");
    htpasswd = join(workDir, "htpasswd");
    await writeFile(htpasswd, `${await htpasswdLine("admin", "Admin123")}\n${await htpasswdLine("reader", "Reader123")}\n`);
    [backendA, backendB] = await Promise.all([startRegistry(), startRegistry({ accessLog: true })]);
    image = await pushTinyImage(backendB.url, "team/app", "v1", "seed");
    gateway = await startTestGateway({
      dataDir,
      sites: [site("a", A, backendA, "svc-a", OPEN_RULES), site("b", B, backendB, "svc-b", ADMIN_ONLY)],
    });
  });

  after(async () => {
    await gateway?.stop();
    await Promise.all([backendA?.stop(), backendB?.stop()]);
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  it("refuses at start two token sites with one service, naming both keys", async () => {
    const refused = await startTestGateway({ dataDir, sites: [site("a", A, backendA, "registry", OPEN_RULES), site("b", B, backendB, "registry", ADMIN_ONLY)] }).then(
      async (started) => void (await started.stop()),
      (error: Error) => error,
    );
    assert.ok(refused instanceof Error, "the configuration must be refused");
    assert.match(refused.message, /"sites",\s*1,\s*"auth",\s*"service"/);
    assert.match(refused.message, /service \\?"registry\\?" is also sites\[0\]\.auth\.service/);
  });

  it("refuses on b.test the tokens a.test issued, named and anonymous (one key, distinct services)", async () => {
    const reader = await tokenFrom(gateway, A, "svc-a", basic("reader", "Reader123"));
    assert.deepEqual(await readAndDelete(gateway, B, reader, "reader"), [401, 401]);
    const anonymous = await tokenFrom(gateway, A, "svc-a");
    assert.deepEqual(await readAndDelete(gateway, B, anonymous, "anonymous"), [401, 401]);
  });

  it("refuses them on another gateway sharing the key whose site has the same service", async () => {
    // Its configuration cannot know the first gateway's: only the site named in the token tells them apart.
    const other = await startTestGateway({ dataDir, sites: [site("b-elsewhere", B, backendB, "svc-a", ADMIN_ONLY)] });
    try {
      const reader = await tokenFrom(gateway, A, "svc-a", basic("reader", "Reader123"));
      assert.deepEqual(await readAndDelete(other, B, reader, "other-gateway"), [401, 401]);
      const own = await tokenFrom(other, B, "svc-a", basic("admin", "Admin123"));
      const control = await other.request(B, { path: "/v2/team/app/manifests/v1", headers: { authorization: `Bearer ${own}`, accept: OCI_MANIFEST, "user-agent": CONTROL } });
      assert.equal(control.status, 200, "the control: that gateway's own token for admin");
    } finally {
      await other.stop();
    }
  });

  it("b.test's backend served none of the refused requests, and still has the manifest", async () => {
    const sentinel = `sentinel-${Date.now()}`;
    await (await fetch(`${backendB.url}/v2/`, { headers: { "user-agent": sentinel } })).arrayBuffer();
    await waitFor(() => accessLog(backendB).some((line) => line.userAgent === sentinel), { timeoutMs: 5000, what: "the sentinel's access-log line" });
    const reached = accessLog(backendB).filter((line) => refusedAgents.includes(line.userAgent));
    assert.deepEqual(reached.map((line) => line.line), []);
    assert.ok(accessLog(backendB).some((line) => line.userAgent === CONTROL && line.status === 200), "the control request is in the log");
    assert.ok(refusedAgents.length >= 6);
    const head = await fetch(`${backendB.url}/v2/team/app/manifests/v1`, { method: "HEAD", headers: { accept: OCI_MANIFEST } });
    assert.equal(head.status, 200);
  });
});
