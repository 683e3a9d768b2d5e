// The browser's POSTs as raw bytes: a form answered without being read must not make the gateway read and
// discard whatever body the client declared to keep the connection; it closes the connection instead.
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { startTestGateway, type TestGateway } from "../helpers/gateway.js";
import { htpasswdLine } from "../helpers/htpasswd.js";
import { rawExchange } from "../helpers/raw-http.js";

const HOST = "web.registry.test";

describe("browser forms whose body is left unread", () => {
  let workDir: string;
  let gateway: TestGateway;

  before(async () => {
    workDir = await mkdtemp(join(tmpdir(), "rg-browser-forms-"));
    const htpasswd = join(workDir, "htpasswd");
    await writeFile(htpasswd, `${await htpasswdLine("admin", "Admin123", 4)}\n`);
    gateway = await startTestGateway({
      sites: [{ name: "web", hosts: [HOST], backend: "http://127.0.0.1:9", auth: { type: "htpasswd", htpasswd, rules: [{ who: ["admin"], repositories: ["**"], actions: ["pull"] }] } }],
    });
  });

  after(async () => {
    await gateway?.stop();
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  for (const [form, contentType] of [
    ["/logout", "application/x-www-form-urlencoded"],
    ["/logout", "text/plain"],
    ["/login", "application/x-www-form-urlencoded"],
  ] as const) {
    it(`POST ${form} (${contentType}) declaring 10 GB: answered at once, with Connection: close, and the connection ends`, async () => {
      const request = `POST ${form} HTTP/1.1\r\nHost: ${HOST}:${gateway.port}\r\nContent-Type: ${contentType}\r\nContent-Length: 10000000000\r\n\r\ncsrf=x&`;
      const exchange = await rawExchange({ port: gateway.port, tls: { ca: gateway.caPem, servername: HOST } }, request, { expectResponses: 1, idleMs: 3000 });
      assert.equal(exchange.responses.length, 1, exchange.raw.toString("latin1"));
      const [response] = exchange.responses;
      assert.ok([303, 400, 403, 413].includes(response!.status), response!.statusLine);
      assert.equal(response!.headers.connection, "close", JSON.stringify(response!.headers));
      assert.ok(exchange.closed, "the gateway closed the connection instead of reading the declared body");
    });
  }
});
