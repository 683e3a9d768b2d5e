// Talking to one gateway of the fleet directly (not through the balancer): its admin listener, a request on
// its HTTPS port, and the serial of the certificate it presents in a TLS handshake.
import tls from "node:tls";
import { gatewayRequest, type GatewayResponse } from "../test/helpers/gateway.js";
import { basic, type User } from "./credentials.js";
import type { Fleet, GatewaySlot } from "./fleet.js";

export async function adminPost(fleet: Fleet, slot: GatewaySlot, path: string): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://127.0.0.1:${slot.adminPort}${path}`, { method: "POST", headers: { authorization: `Bearer ${fleet.adminToken}` }, signal: AbortSignal.timeout(60_000) });
  return { status: res.status, body: await res.text() };
}

/** GET `path` on one gateway's own port as `user`. */
export function directGet(fleet: Fleet, slot: GatewaySlot, host: string, path: string, user: User): Promise<GatewayResponse> {
  return gatewayRequest(slot.httpsPort, fleet.caPem, host, { path, headers: { authorization: basic(user) } });
}

/** Serial (upper-case hex) of the certificate a gateway presents for `servername`; no CA check (ACME's differs). */
export function servedSerial(port: number, servername: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: "127.0.0.1", port, servername, rejectUnauthorized: false }, () => {
      const serial = socket.getPeerCertificate().serialNumber;
      socket.destroy();
      resolve(serial);
    });
    socket.setTimeout(10_000, () => socket.destroy(new Error(`no TLS handshake on :${port} within 10 s`)));
    socket.once("error", reject);
  });
}

/** The serial each gateway serves for `servername`, in gateway order. */
export function servedSerials(fleet: Fleet, servername: string): Promise<string[]> {
  return Promise.all(fleet.gateways.map((slot) => servedSerial(slot.httpsPort, servername)));
}
