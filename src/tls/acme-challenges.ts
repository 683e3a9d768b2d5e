// Answers the CA's challenge requests while an ACME order is pending: HTTP-01 on the plain-HTTP listener,
// TLS-ALPN-01 (RFC 8737) on the HTTPS listener. The responder is only a table the orders fill and empty;
// the listeners consult it, so one responder can outlive a reload that replaces the ACME manager.
import type { IncomingMessage, ServerResponse } from "node:http";
import * as tls from "node:tls";

export const ACME_TLS_ALPN_PROTOCOL = "acme-tls/1";

/** A pending ACME challenge added or (null fields) removed; every process that may be asked answers it. */
export type ChallengeChange =
  | { kind: "http"; token: string; keyAuthorization: string | null }
  | { kind: "alpn"; host: string; certPem: string | null; keyPem: string | null };
const HTTP_CHALLENGE_PATH = /^\/\.well-known\/acme-challenge\/([A-Za-z0-9_-]+)$/;

export class AcmeChallengeResponder {
  readonly #httpKeyAuthorizations = new Map<string, string>();
  readonly #alpnContexts = new Map<string, tls.SecureContext>();

  /** The key authorization to answer `GET /.well-known/acme-challenge/<token>` with, if that challenge is pending. */
  httpChallengeResponse(token: string): string | undefined {
    return this.#httpKeyAuthorizations.get(token);
  }

  /** The self-signed `acme-tls/1` certificate for a host whose TLS-ALPN-01 challenge is pending. */
  alpnContextFor(servername: string): tls.SecureContext | undefined {
    return this.#alpnContexts.get(normalizeHost(servername));
  }

  pendingCount(): number {
    return this.#httpKeyAuthorizations.size + this.#alpnContexts.size;
  }

  /** Resolves once the challenges added so far can be answered wherever the CA may connect (cluster workers). */
  async published(): Promise<void> {}

  addHttpChallenge(token: string, keyAuthorization: string): void {
    this.#httpKeyAuthorizations.set(token, keyAuthorization);
  }

  removeHttpChallenge(token: string): void {
    this.#httpKeyAuthorizations.delete(token);
  }

  addAlpnChallenge(host: string, certPem: string, keyPem: string): void {
    this.#alpnContexts.set(normalizeHost(host), tls.createSecureContext({ cert: certPem, key: keyPem }));
  }

  removeAlpnChallenge(host: string): void {
    this.#alpnContexts.delete(normalizeHost(host));
  }
}

export interface TlsChallengeHooks {
  SNICallback: NonNullable<tls.TlsOptions["SNICallback"]>;
  ALPNCallback: NonNullable<tls.TlsOptions["ALPNCallback"]>;
}

/**
 * SNICallback and ALPNCallback for the HTTPS listener (they replace `ALPNProtocols`, which Node refuses
 * together with ALPNCallback). A validator is told apart from a client by the `acme-tls/1` protocol it
 * offers, so ordinary clients keep getting the site's certificate even while a challenge is pending.
 *
 * That needs the ALPN offer before the certificate is chosen, which only TLS 1.3 gives: there OpenSSL
 * negotiates ALPN before Node's SNI callback picks the context, and Node calls both callbacks with the
 * TLSSocket as `this`, so the ALPN callback marks the socket and the SNI callback hands out the challenge
 * context. Under TLS 1.2 the certificate is already chosen when ALPN is seen, and swapping it then
 * (`setKeyCert`) does not work for acme-client's challenge certificate (OpenSSL keeps the site's key of
 * the same type, or rejects the certificate's key usage), so an `acme-tls/1` offer over TLS 1.2 is refused.
 * Validators negotiate TLS 1.3 (Let's Encrypt's and pebble's are Go clients), which the listener always offers.
 */
export function tlsChallengeHooks(
  responder: Pick<AcmeChallengeResponder, "alpnContextFor">,
  contextFor: (servername: string) => tls.SecureContext,
  protocols: readonly string[] = ["http/1.1"],
): TlsChallengeHooks {
  const validators = new WeakSet<object>();
  const certificateChosen = new WeakSet<object>();
  return {
    ALPNCallback(this: unknown, { servername, protocols: offered }) {
      if (!offered.includes(ACME_TLS_ALPN_PROTOCOL)) return protocols.find((protocol) => offered.includes(protocol));
      const pending = servername !== undefined && servername !== "" && responder.alpnContextFor(servername) !== undefined;
      // Refused (no protocol, a fatal alert) when there is nothing to prove or it is too late to prove it.
      if (!pending || !isObject(this) || certificateChosen.has(this)) return undefined;
      validators.add(this);
      return ACME_TLS_ALPN_PROTOCOL;
    },
    SNICallback(this: unknown, servername, callback) {
      try {
        if (isObject(this)) certificateChosen.add(this);
        const challenge = isObject(this) && validators.has(this) ? responder.alpnContextFor(servername) : undefined;
        callback(null, challenge ?? contextFor(servername));
      } catch (error) {
        callback(error instanceof Error ? error : new Error(String(error)));
      }
    },
  };
}

export interface PlainHttpHandlerOptions {
  responder: Pick<AcmeChallengeResponder, "httpChallengeResponse">;
  /** Port of the HTTPS listener as clients reach it; 443 is left out of the redirect. */
  httpsPort: number;
}

/**
 * The plain-HTTP listener's whole behaviour: HTTP-01 answers, and a redirect to HTTPS for everything else.
 * The redirect keeps the Host the client asked for; that only ever sends a client to where it wanted to go.
 */
export function createPlainHttpHandler({ responder, httpsPort }: PlainHttpHandlerOptions) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    const path = (req.url ?? "/").split("?", 1)[0]!;
    const token = HTTP_CHALLENGE_PATH.exec(path)?.[1];
    if (token !== undefined && (req.method === "GET" || req.method === "HEAD")) {
      const keyAuthorization = responder.httpChallengeResponse(token);
      if (keyAuthorization === undefined) return plain(res, 404, "no such ACME challenge\n");
      return plain(res, 200, keyAuthorization);
    }
    const host = hostWithoutPort(req.headers.host);
    if (!host) return plain(res, 400, "a Host header is required\n");
    const authority = httpsPort === 443 ? host : `${host}:${httpsPort}`;
    // 308 keeps the method and body; GET and HEAD get the 301 that every client follows.
    const status = req.method === "GET" || req.method === "HEAD" ? 301 : 308;
    res.writeHead(status, { location: `https://${authority}${req.url ?? "/"}`, "content-length": "0", connection: "close" });
    res.end();
  };
}

function plain(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { "content-type": "text/plain; charset=utf-8", "content-length": Buffer.byteLength(body) });
  res.end(body);
}

function hostWithoutPort(header: string | undefined): string | null {
  const match = /^(\[[0-9a-f:.]+\]|[a-z0-9.-]+)(?::\d{1,5})?$/i.exec(header?.trim() ?? "");
  return match ? match[1]!.toLowerCase() : null;
}

function normalizeHost(host: string): string {
  return host.trim().toLowerCase().replace(/\.$/, "");
}

function isObject(value: unknown): value is object {
  return typeof value === "object" && value !== null;
}
