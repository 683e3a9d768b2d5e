// GET /status (HTML), /status.json (the same model) and the page's two assets, on the admin listener.
//
// Protection: the same rule as /metrics and /readyz. The admin listener is loopback by default and answers
// only loopback Host names (or admin.hosts), so a web page cannot read it through DNS rebinding; what
// reaches it is a local operator or a monitoring agent. The panel is read-only and shows nothing /metrics
// and /readyz do not already show (site names, hosts, backend origins, certificate serials and expiry,
// rates) — no secret, no user name, no client address — so demanding the admin token here would protect
// nothing more, while it would keep the page out of a plain browser. Actions (POST) still need the token.
// The page is served with a strict CSP (same-origin script and style only, no framing): it shows
// configuration-derived text, which is escaped, and the CSP is the second line should escaping ever miss.
import type { IncomingMessage, ServerResponse } from "node:http";
import type { AdminPages } from "../admin.js";
import { STATUS_CSS, STATUS_JS } from "./assets.js";
import { buildStatus, type StatusSources } from "./model.js";
import { TrafficRates } from "./traffic.js";
import { renderStatusPage, SCRIPT_PATH, STATUS_PATH, STYLESHEET_PATH } from "./view.js";

export const STATUS_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const COMMON_HEADERS = { "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer" };

export class StatusPanel implements AdminPages {
  readonly #traffic = new TrafficRates();

  constructor(private readonly sources: StatusSources) {}

  serves(path: string): boolean {
    return path === STATUS_PATH || path === `${STATUS_PATH}.json` || path === STYLESHEET_PATH || path === SCRIPT_PATH;
  }

  async handle(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    if (path === STYLESHEET_PATH) return send(res, "text/css; charset=utf-8", STATUS_CSS, "max-age=300");
    if (path === SCRIPT_PATH) return send(res, "text/javascript; charset=utf-8", STATUS_JS, "max-age=300");
    const model = await buildStatus(this.sources, this.#traffic);
    if (path === STATUS_PATH) return send(res, "text/html; charset=utf-8", renderStatusPage(model), "no-store", { "Content-Security-Policy": STATUS_CSP });
    return send(res, "application/json; charset=utf-8", `${JSON.stringify(model, null, 2)}\n`, "no-store");
  }
}

function send(res: ServerResponse, contentType: string, body: string, cacheControl: string, extra: Record<string, string> = {}): void {
  res.writeHead(200, {
    ...COMMON_HEADERS,
    ...extra,
    "Content-Type": contentType,
    "Content-Length": Buffer.byteLength(body),
    "Cache-Control": cacheControl,
  });
  res.end(res.req.method === "HEAD" ? undefined : body);
}
