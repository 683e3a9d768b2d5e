// The connection a listener makes per accepted TCP connection, found from the TLS socket over it:
// proxy/client-connection.ts, with a real TLS server on loopback.
import assert from "node:assert/strict";
import { once } from "node:events";
import { mkdtemp, rm } from "node:fs/promises";
import { connect as tcpConnect, type AddressInfo, type Socket } from "node:net";
import os from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import tls from "node:tls";
import { AcceptedConnections, ClientConnection } from "../../../src/proxy/client-connection.js";
import { issueLeaf, loadOrCreateCa } from "../../../src/tls/selfsigned.js";

describe("client connections", async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), "rg-client-connection-"));
  const ca = await loadOrCreateCa(dir, 1);
  const leaf = await issueLeaf(ca, ["localhost"], 1);
  const accepted = new AcceptedConnections();
  const tcpSockets: Socket[] = [];
  const server = tls.createServer({ key: leaf.keyPem, cert: leaf.certPem });
  server.on("connection", (socket: Socket) => {
    tcpSockets.push(socket);
    accepted.accept(socket);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  after(async () => {
    for (const socket of tcpSockets) socket.destroy();
    server.close();
    await rm(dir, { recursive: true, force: true });
  });

  const handshake = () => tls.connect({ port, host: "127.0.0.1", ca: ca.certPem, servername: "localhost" });

  it("finds the connection under each TLS socket, and both sockets then carry it", { timeout: 10_000 }, async () => {
    const handedOver: tls.TLSSocket[] = [];
    const both = new Promise<void>((resolve) =>
      server.on("secureConnection", (socket: tls.TLSSocket) => {
        if (handedOver.push(socket) === 2) resolve();
      }),
    );
    const clients = [handshake(), handshake()];
    await both;
    server.removeAllListeners("secureConnection");
    const connections = handedOver.map((socket) => accepted.under(socket));
    for (const [index, socket] of handedOver.entries()) {
      const connection = connections[index]!;
      assert.ok(connection, "no connection found under a TLS socket");
      assert.equal(socket.remotePort, connection.tcp.remotePort, "matched to another client's connection");
      assert.ok(tcpSockets.includes(connection.tcp));
      connection.secure(socket);
      assert.equal(ClientConnection.of(socket), connection);
      assert.equal(ClientConnection.of(connection.tcp), connection);
      assert.equal(connection.secured, socket);
    }
    assert.notEqual(connections[0], connections[1]);
    const closed = connections.map((connection) => once(connection!.tcp, "close"));
    for (const client of clients) client.destroy();
    await Promise.all(closed);
    assert.equal(accepted.size, 0, "a closed connection is still held");
  });

  it("finds the TCP socket under a TLS handshake that failed: plain HTTP sent to the TLS port", { timeout: 10_000 }, async () => {
    // Looked up in the event, as the listener does: the failed TLS socket is closed right after.
    const failed = new Promise<[string | undefined, Socket | undefined]>((resolve) =>
      server.once("tlsClientError", (err: NodeJS.ErrnoException, socket: tls.TLSSocket) => resolve([err.code, accepted.under(socket)?.tcp])),
    );
    const client = tcpConnect(port, "127.0.0.1", () => client.write("GET /v2/ HTTP/1.1\r\nHost: localhost\r\n\r\n"));
    const [code, tcp] = await failed;
    assert.equal(code, "ERR_SSL_HTTP_REQUEST");
    assert.ok(tcp, "no TCP socket found under the failed TLS socket");
    assert.equal(tcp.remotePort, client.localPort);
    client.destroy();
  });
});
