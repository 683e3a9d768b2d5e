import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { once } from "node:events";
import http from "node:http";
import { mkdtemp, rm } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import * as tls from "node:tls";
import * as acme from "acme-client";
import { AcmeChallengeResponder, createPlainHttpHandler, tlsChallengeHooks } from "../../../src/tls/acme-challenges.js";
import { issueLeaf, loadOrCreateCa } from "../../../src/tls/selfsigned.js";

let tmp: string;
before(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), "rg-acme-challenges-"));
});
after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe("plain-HTTP handler", () => {
  let server: http.Server;
  let port: number;
  const responder = new AcmeChallengeResponder();

  before(async () => {
    server = http.createServer(createPlainHttpHandler({ responder, httpsPort: 5443 }));
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    port = (server.address() as AddressInfo).port;
  });
  after(() => server.close());

  async function request(method: string, urlPath: string, host: string | null = "hub.registry.test:5080", to = port) {
    return new Promise<{ status: number; location: string | undefined; body: string; type: string | undefined }>((resolve, reject) => {
      const headers: http.OutgoingHttpHeaders = {};
      const req = http.request({ host: "127.0.0.1", port: to, method, path: urlPath, headers, setHost: host !== null, agent: false }, (res) => {
        let body = "";
        res.setEncoding("utf8").on("data", (chunk: string) => (body += chunk));
        res.on("end", () => resolve({ status: res.statusCode!, location: res.headers.location, body, type: res.headers["content-type"] }));
      });
      if (host !== null) req.setHeader("host", host);
      req.on("error", reject);
      req.end();
    });
  }

  test("answers a pending HTTP-01 challenge with its key authorization, and only while pending", async () => {
    responder.addHttpChallenge("tok-en_1", "tok-en_1.thumbprint");
    const answer = await request("GET", "/.well-known/acme-challenge/tok-en_1");
    assert.equal(answer.status, 200);
    assert.equal(answer.body, "tok-en_1.thumbprint");
    assert.match(answer.type ?? "", /^text\/plain/);
    responder.removeHttpChallenge("tok-en_1");
    assert.equal((await request("GET", "/.well-known/acme-challenge/tok-en_1")).status, 404);
  });

  test("redirects everything else to HTTPS on the same host, keeping path and query", async () => {
    const get = await request("GET", "/v2/library/alpine/manifests/latest?x=1");
    assert.equal(get.status, 301);
    assert.equal(get.location, "https://hub.registry.test:5443/v2/library/alpine/manifests/latest?x=1");
    const post = await request("POST", "/v2/team/app/blobs/uploads/");
    assert.equal(post.status, 308, "keeps the method");
    assert.equal((await request("GET", "/", null)).status, 400, "no Host, nowhere to redirect");
  });

  test("leaves out :443", async () => {
    const other = http.createServer(createPlainHttpHandler({ responder, httpsPort: 443 })).listen(0, "127.0.0.1");
    await once(other, "listening");
    const answer = await request("GET", "/v2/", "hub.registry.test", (other.address() as AddressInfo).port);
    other.close();
    assert.equal(answer.location, "https://hub.registry.test/v2/");
  });
});

describe("TLS-ALPN-01 hooks", () => {
  let server: tls.Server;
  let port: number;
  let siteSerial: string;
  const responder = new AcmeChallengeResponder();

  before(async () => {
    const ca = await loadOrCreateCa(path.join(tmp, "ca"), 1);
    const leaf = await issueLeaf(ca, ["hub.registry.test"], 1);
    siteSerial = new X509Certificate(leaf.certPem).serialNumber;
    const site = tls.createSecureContext({ cert: leaf.certPem, key: leaf.keyPem });
    server = tls.createServer({ cert: leaf.certPem, key: leaf.keyPem, ...tlsChallengeHooks(responder, () => site) }, (socket) => socket.end());
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    port = (server.address() as AddressInfo).port;
    const authz = { identifier: { type: "dns", value: "hub.registry.test" } } as acme.Authorization;
    const [keyPem, certPem] = await acme.crypto.createAlpnCertificate(authz, "key-authorization", await acme.crypto.createPrivateEcdsaKey());
    responder.addAlpnChallenge("hub.registry.test", certPem.toString(), keyPem.toString());
  });
  after(() => server.close());

  function handshake(options: { servername: string; ALPNProtocols?: string[]; maxVersion: tls.SecureVersion }) {
    return new Promise<{ protocol: string | false; cert: X509Certificate } | Error>((resolve) => {
      const socket = tls.connect({ host: "127.0.0.1", port, rejectUnauthorized: false, ...options }, () => {
        resolve({ protocol: socket.alpnProtocol ?? false, cert: new X509Certificate(socket.getPeerCertificate().raw) });
        socket.end();
      });
      socket.on("error", resolve);
    });
  }

  test("a TLS 1.3 validator offering acme-tls/1 gets the challenge certificate", async () => {
    const result = await handshake({ servername: "HUB.registry.test", ALPNProtocols: ["acme-tls/1"], maxVersion: "TLSv1.3" });
    assert.ok(!(result instanceof Error), String(result));
    assert.equal(result.protocol, "acme-tls/1");
    assert.ok(acme.crypto.isAlpnCertificateAuthorizationValid(result.cert.toString(), "key-authorization"));
  });

  test("acme-tls/1 over TLS 1.2 is refused: the certificate is chosen before ALPN is seen", async () => {
    const result = await handshake({ servername: "hub.registry.test", ALPNProtocols: ["acme-tls/1"], maxVersion: "TLSv1.2" });
    assert.ok(result instanceof Error);
    assert.match(result.message, /no application protocol/);
  });

  for (const maxVersion of ["TLSv1.3", "TLSv1.2"] as const) {
    test(`${maxVersion}: ordinary clients keep the site's certificate while the challenge is pending`, async () => {
      for (const ALPNProtocols of [["h2", "http/1.1"], undefined]) {
        const result = await handshake({ servername: "hub.registry.test", ...(ALPNProtocols ? { ALPNProtocols } : {}), maxVersion });
        assert.ok(!(result instanceof Error), String(result));
        assert.equal(result.cert.serialNumber, siteSerial);
        assert.equal(result.protocol, ALPNProtocols ? "http/1.1" : false);
      }
    });
  }

  test("acme-tls/1 for a name with nothing pending is refused", async () => {
    const result = await handshake({ servername: "team.registry.test", ALPNProtocols: ["acme-tls/1"], maxVersion: "TLSv1.3" });
    assert.ok(result instanceof Error);
    assert.match(result.message, /no application protocol/);
  });
});
