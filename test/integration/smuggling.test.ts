// Request smuggling: raw-socket framing attacks against the gateway in front of a real
// distribution registry whose access log is on. For every case the gateway either answers with a registry
// JSON error (and, where the framing is ambiguous, closes the connection) or handles the request correctly;
// and the backend's own access log shows only requests the client sent through the front — never a request
// the client only put in a body, never a DELETE. Every front request carries `smug/CASE/N` as its
// User-Agent; requests hidden in bodies carry `inner/CASE` and paths under /v2/smuggled/.
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import { startTestGateway, type TestGateway } from "../helpers/gateway.js";
import { OCI_MANIFEST, sha256Digest } from "../helpers/oci.js";
import { waitFor } from "../helpers/process.js";
import { pool, rawExchange, type RawExchange, type RawResponse } from "../helpers/raw-http.js";
import { accessLog, startRegistry, type AccessLogLine, type Registry } from "../helpers/registry.js";
import { pushTinyImage, type TinyImage } from "../helpers/seed.js";

const HUB = "hub.registry.test";
const TEAM = "team.registry.test";

type Expect =
  /** A registry JSON error (or a close without an answer); nothing of the case reaches the backend. */
  | { refused: readonly number[] }
  /** Answered in order with these statuses; each front request reaches the backend exactly once. */
  | { served: readonly number[] }
  /** Either of the two, whichever the gateway picks, but nothing smuggled. */
  | { either: readonly number[] };

interface Case {
  name: string;
  /** Builds the bytes; `ua(i)` is the User-Agent of the i-th front request, `inner` one hidden in a body. */
  bytes: (ctx: CaseContext) => string | Buffer;
  /** Methods of the front requests, in order (HEAD answers have no body). */
  methods: readonly string[];
  /** Front requests the backend may see: method, target and the index of their User-Agent (`served`, `either`). */
  forwards?: (ctx: CaseContext) => readonly [string, string, number][];
  expect: Expect;
  /** A refusal that leaves the framing clear (no body): the connection may stay open. */
  keepAlive?: boolean;
  servername?: string;
  check?: (responses: RawResponse[], ctx: CaseContext) => void;
}

interface CaseContext {
  host: string;
  ua: (i: number) => string;
  inner: string;
  image: TinyImage;
  /** public/victim: what the hidden DELETEs aim at. */
  victim: TinyImage;
  backendHost: string;
}

const crlf = (...lines: string[]) => `${lines.join("\r\n")}\r\n`;

describe("request smuggling through the gateway: the backend sees only what the client sent through the front", () => {
  let registry: Registry;
  let gateway: TestGateway;
  let image: TinyImage;
  let victim: TinyImage;
  const results = new Map<string, { exchange: RawExchange; ctx: CaseContext; kase: Case }>();
  let log: AccessLogLine[] = [];

  /** A request hidden in a body: it must never reach the backend (and never get its own answer). */
  const smuggledDelete = (ctx: CaseContext) => crlf(`DELETE /v2/public/victim/manifests/${ctx.victim.manifestDigest} HTTP/1.1`, `Host: ${ctx.host}`, `User-Agent: ${ctx.inner}`, "");
  const smuggledGet = (ctx: CaseContext) => crlf(`GET /v2/smuggled/x/manifests/latest HTTP/1.1`, `Host: ${ctx.host}`, `User-Agent: ${ctx.inner}`, "");
  const hiddenRequests = (ctx: CaseContext) => smuggledDelete(ctx) + smuggledGet(ctx);
  const chunk = (text: string) => `${Buffer.byteLength(text).toString(16)}\r\n${text}\r\n`;
  const manifestGet = (ctx: CaseContext, i = 0, extra: string[] = []) =>
    crlf(`GET /v2/public/app/manifests/latest HTTP/1.1`, `Host: ${ctx.host}`, `User-Agent: ${ctx.ua(i)}`, `Accept: ${OCI_MANIFEST}`, ...extra, "");

  const CASES: Case[] = [
    {
      name: "cl-te",
      methods: ["POST"],
      bytes: (c) => {
        const body = `0\r\n\r\n${hiddenRequests(c)}`;
        return crlf("POST /v2/public/app/blobs/uploads/ HTTP/1.1", `Host: ${c.host}`, `User-Agent: ${c.ua(0)}`, `Content-Length: ${Buffer.byteLength(body)}`, "Transfer-Encoding: chunked", "") + body;
      },
      expect: { refused: [400] },
    },
    {
      name: "te-cl",
      methods: ["POST"],
      bytes: (c) => crlf("POST /v2/public/app/blobs/uploads/ HTTP/1.1", `Host: ${c.host}`, `User-Agent: ${c.ua(0)}`, "Transfer-Encoding: chunked", "Content-Length: 3", "") + `0\r\n\r\n${hiddenRequests(c)}`,
      expect: { refused: [400] },
    },
    {
      name: "chunked-get-body-is-a-request",
      methods: ["GET"],
      bytes: (c) => manifestGet(c, 0, ["Transfer-Encoding: chunked"]) + `${chunk(hiddenRequests(c))}0\r\n\r\n`,
      expect: { refused: [400] },
    },
    {
      name: "chunked-get-then-request-after-last-chunk",
      methods: ["GET"],
      bytes: (c) => manifestGet(c, 0, ["Transfer-Encoding: chunked"]) + `0\r\n\r\n${hiddenRequests(c)}`,
      expect: { refused: [400] },
    },
    {
      name: "get-with-content-length-body",
      methods: ["GET"],
      bytes: (c) => manifestGet(c, 0, [`Content-Length: ${Buffer.byteLength(hiddenRequests(c))}`]) + hiddenRequests(c),
      expect: { refused: [400] },
    },
    {
      name: "head-with-content-length-body",
      methods: ["HEAD"],
      bytes: (c) =>
        crlf("HEAD /v2/public/app/manifests/latest HTTP/1.1", `Host: ${c.host}`, `User-Agent: ${c.ua(0)}`, `Content-Length: ${Buffer.byteLength(hiddenRequests(c))}`, "") + hiddenRequests(c),
      expect: { refused: [400] },
    },
    {
      name: "delete-with-chunked-body",
      methods: ["DELETE"],
      bytes: (c) =>
        crlf(`DELETE /v2/public/app/manifests/sha256:${"0".repeat(64)} HTTP/1.1`, `Host: ${c.host}`, `User-Agent: ${c.ua(0)}`, "Transfer-Encoding: chunked", "") + `${chunk(smuggledGet(c))}0\r\n\r\n`,
      expect: { refused: [400] },
    },
    {
      name: "options-with-content-length-body",
      methods: ["OPTIONS"],
      bytes: (c) => crlf("OPTIONS /v2/ HTTP/1.1", `Host: ${c.host}`, `User-Agent: ${c.ua(0)}`, `Content-Length: ${Buffer.byteLength(smuggledGet(c))}`, "") + smuggledGet(c),
      expect: { refused: [400, 405] },
    },
    {
      name: "duplicate-content-length-same",
      methods: ["POST"],
      bytes: (c) => crlf("POST /v2/public/app/blobs/uploads/ HTTP/1.1", `Host: ${c.host}`, `User-Agent: ${c.ua(0)}`, "Content-Length: 5", "Content-Length: 5", "") + `abcde${hiddenRequests(c)}`,
      expect: { refused: [400] },
    },
    {
      name: "duplicate-content-length-different",
      methods: ["POST"],
      bytes: (c) => {
        const hidden = hiddenRequests(c);
        return crlf("POST /v2/public/app/blobs/uploads/ HTTP/1.1", `Host: ${c.host}`, `User-Agent: ${c.ua(0)}`, "Content-Length: 0", `Content-Length: ${Buffer.byteLength(hidden)}`, "") + hidden;
      },
      expect: { refused: [400] },
    },
    {
      name: "content-length-list",
      methods: ["POST"],
      bytes: (c) => crlf("POST /v2/public/app/blobs/uploads/ HTTP/1.1", `Host: ${c.host}`, `User-Agent: ${c.ua(0)}`, "Content-Length: 0, 5", "") + `abcde${smuggledGet(c)}`,
      expect: { refused: [400] },
    },
    ...["+5", "0x5", "-1", "5 5", "05a"].map(
      (value, i): Case => ({
        name: `content-length-odd-${i}`,
        methods: ["POST"],
        bytes: (c) => crlf("POST /v2/public/app/blobs/uploads/ HTTP/1.1", `Host: ${c.host}`, `User-Agent: ${c.ua(0)}`, `Content-Length: ${value}`, "") + `abcde${smuggledGet(c)}`,
        expect: { refused: [400] },
      }),
    ),
    ...["xchunked", "chunked, identity", "identity, chunked", "chunked, chunked", "gzip, chunked", "chunked;q=1", '"chunked"', "chunked\x0b", "identity"].map(
      (value, i): Case => ({
        name: `obfuscated-te-${i} (${JSON.stringify(value)})`,
        methods: ["POST"],
        bytes: (c) =>
          crlf("POST /v2/public/app/blobs/uploads/ HTTP/1.1", `Host: ${c.host}`, `User-Agent: ${c.ua(0)}`, `Transfer-Encoding: ${value}`, "Content-Length: 5", "") + `0\r\n\r\n${hiddenRequests(c)}`,
        expect: { refused: [400, 501] },
      }),
    ),
    {
      name: "obfuscated-te-without-content-length",
      methods: ["GET"],
      bytes: (c) => manifestGet(c, 0, ["Transfer-Encoding: xchunked"]) + `${chunk(hiddenRequests(c))}0\r\n\r\n`,
      expect: { refused: [400, 501] },
    },
    {
      name: "two-transfer-encoding-headers",
      methods: ["POST"],
      bytes: (c) => crlf("POST /v2/public/app/blobs/uploads/ HTTP/1.1", `Host: ${c.host}`, `User-Agent: ${c.ua(0)}`, "Transfer-Encoding: chunked", "Transfer-Encoding: identity", "") + `0\r\n\r\n${hiddenRequests(c)}`,
      expect: { refused: [400, 501] },
    },
    {
      name: "te-tab-before-colon",
      methods: ["GET"],
      bytes: (c) => manifestGet(c, 0, ["Transfer-Encoding\t: chunked"]) + `${chunk(hiddenRequests(c))}0\r\n\r\n`,
      expect: { refused: [400] },
    },
    {
      name: "te-space-before-colon",
      methods: ["POST"],
      bytes: (c) => crlf("POST /v2/public/app/blobs/uploads/ HTTP/1.1", `Host: ${c.host}`, `User-Agent: ${c.ua(0)}`, "Transfer-Encoding : chunked", "Content-Length: 5", "") + `0\r\n\r\n${hiddenRequests(c)}`,
      expect: { refused: [400] },
    },
    {
      name: "te-obs-fold",
      methods: ["POST"],
      bytes: (c) => crlf("POST /v2/public/app/blobs/uploads/ HTTP/1.1", `Host: ${c.host}`, `User-Agent: ${c.ua(0)}`, "Transfer-Encoding:", " chunked", "Content-Length: 5", "") + `0\r\n\r\n${hiddenRequests(c)}`,
      expect: { refused: [400] },
    },
    {
      name: "bare-lf-in-header-block",
      methods: ["GET"],
      bytes: (c) => `GET /v2/public/app/tags/list HTTP/1.1\r\nHost: ${c.host}\r\nUser-Agent: ${c.ua(0)}\nTransfer-Encoding: chunked\r\n\r\n${chunk(smuggledGet(c))}0\r\n\r\n`,
      expect: { refused: [400] },
    },
    {
      name: "bare-cr-in-header",
      methods: ["GET"],
      bytes: (c) => `GET /v2/public/app/tags/list HTTP/1.1\r\nHost: ${c.host}\r\nUser-Agent: ${c.ua(0)}\rContent-Length: 40\r\n\r\n${smuggledGet(c)}`,
      expect: { refused: [400] },
    },
    {
      name: "chunk-size-overflow",
      methods: ["PATCH"],
      bytes: (c) =>
        crlf(`PATCH /v2/public/app/blobs/uploads/x HTTP/1.1`, `Host: ${c.host}`, `User-Agent: ${c.ua(0)}`, "Transfer-Encoding: chunked", "") + `10000000000000005\r\nhello\r\n0\r\n\r\n${smuggledGet(c)}`,
      // The gateway may forward the start of this upload (the backend refuses the upload id); what matters is
      // that the hidden request never reaches the backend.
      forwards: () => [["PATCH", "/v2/public/app/blobs/uploads/x", 0]],
      expect: { either: [400, 404] },
    },
    {
      name: "duplicate-host",
      methods: ["GET"],
      bytes: (c) => crlf("GET /v2/public/app/tags/list HTTP/1.1", `Host: ${c.host}`, `Host: ${TEAM}:${gateway.port}`, `User-Agent: ${c.ua(0)}`, ""),
      expect: { refused: [400] },
    },
    {
      name: "host-of-another-site-than-sni",
      methods: ["GET"],
      bytes: (c) => crlf("GET /v2/public/app/tags/list HTTP/1.1", `Host: ${TEAM}:${gateway.port}`, `User-Agent: ${c.ua(0)}`, ""),
      expect: { refused: [421] },
      keepAlive: true,
    },
    {
      name: "absolute-form-target",
      methods: ["GET"],
      bytes: (c) => crlf(`GET https://${c.host}/v2/public/app/tags/list HTTP/1.1`, `Host: ${c.host}`, `User-Agent: ${c.ua(0)}`, ""),
      expect: { refused: [400] },
      keepAlive: true,
    },
    {
      name: "absolute-form-to-the-backend",
      methods: ["GET"],
      bytes: (c) => crlf(`GET http://${c.backendHost}/v2/public/app/tags/list HTTP/1.1`, `Host: ${c.host}`, `User-Agent: ${c.ua(0)}`, ""),
      expect: { refused: [400] },
      keepAlive: true,
    },
    {
      name: "asterisk-form",
      methods: ["OPTIONS"],
      bytes: (c) => crlf("OPTIONS * HTTP/1.1", `Host: ${c.host}`, `User-Agent: ${c.ua(0)}`, ""),
      expect: { refused: [400, 405] },
      keepAlive: true,
    },
    {
      name: "http-2.0-request-line",
      methods: ["GET"],
      bytes: (c) => manifestGet(c).replace("HTTP/1.1", "HTTP/2.0"),
      expect: { refused: [400, 505] },
    },
    {
      name: "http-1.2-request-line",
      methods: ["GET"],
      bytes: (c) => manifestGet(c).replace("HTTP/1.1", "HTTP/1.2"),
      expect: { refused: [400, 505] },
    },
    {
      name: "http-0.9-request",
      methods: ["GET"],
      bytes: () => "GET /v2/public/app/manifests/latest\r\n\r\n",
      expect: { refused: [400, 505] },
    },
    {
      name: "h2-preface",
      methods: ["PRI"],
      bytes: () => "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
      expect: { refused: [400, 505] },
    },
    {
      name: "http-1.0-without-host",
      methods: ["GET"],
      bytes: (c) => crlf("GET /v2/public/app/tags/list HTTP/1.0", `User-Agent: ${c.ua(0)}`, ""),
      expect: { refused: [400] },
    },
    {
      name: "http-1.0-with-host-is-served",
      methods: ["GET"],
      bytes: (c) => manifestGet(c).replace("HTTP/1.1", "HTTP/1.0"),
      forwards: () => [["GET", "/v2/public/app/manifests/latest", 0]],
      expect: { served: [200] },
      check: (responses, c) => assert.equal(sha256Digest(responses[0]!.body), c.image.manifestDigest),
    },
    {
      name: "upgrade-h2c-with-body",
      methods: ["GET"],
      bytes: (c) => manifestGet(c, 0, ["Connection: Upgrade, HTTP2-Settings", "Upgrade: h2c", "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA"]) + hiddenRequests(c),
      forwards: () => [["GET", "/v2/public/app/manifests/latest", 0]],
      expect: { either: [200, 400, 426, 501] },
    },
    {
      // The refusal says Connection: close; a request pipelined behind it must not be processed at all.
      name: "pipelined-delete-after-duplicate-host-refusal",
      methods: ["GET", "DELETE"],
      bytes: (c) => crlf("GET /v2/public/app/tags/list HTTP/1.1", `Host: ${c.host}`, `Host: ${c.host}`, `User-Agent: ${c.ua(0)}`, "") + smuggledDelete(c),
      expect: { refused: [400] },
    },
    {
      name: "pipelined-delete-after-get-with-body-refusal",
      methods: ["GET", "DELETE"],
      bytes: (c) => manifestGet(c, 0, ["Content-Length: 5"]) + "hello" + smuggledDelete(c),
      expect: { refused: [400] },
    },
    {
      name: "pipelined-get-after-target-refusal-is-served",
      methods: ["GET", "GET"],
      bytes: (c) =>
        crlf("GET /v2/public/%61pp/tags/list HTTP/1.1", `Host: ${c.host}`, `User-Agent: ${c.ua(0)}`, "") +
        crlf("GET /v2/public/app/tags/list HTTP/1.1", `Host: ${c.host}`, `User-Agent: ${c.ua(1)}`, ""),
      // A refused target leaves the framing clear: the connection carries on with the next request.
      forwards: () => [["GET", "/v2/public/app/tags/list", 1]],
      expect: { served: [400, 200] },
    },
    {
      name: "pipelined-pair",
      methods: ["GET", "GET"],
      bytes: (c) => manifestGet(c, 0) + crlf("GET /v2/public/app/tags/list HTTP/1.1", `Host: ${c.host}`, `User-Agent: ${c.ua(1)}`, ""),
      forwards: () => [
        ["GET", "/v2/public/app/manifests/latest", 0],
        ["GET", "/v2/public/app/tags/list", 1],
      ],
      expect: { served: [200, 200] },
      check: (responses, c) => {
        assert.equal(sha256Digest(responses[0]!.body), c.image.manifestDigest, "first answer: the manifest");
        assert.deepEqual(responses[1]!.json(), { name: "public/app", tags: ["latest"] }, "second answer: the tags");
      },
    },
    {
      name: "pipelined-head-get-with-zero-length",
      methods: ["HEAD", "GET", "GET"],
      bytes: (c) =>
        crlf("HEAD /v2/public/app/manifests/latest HTTP/1.1", `Host: ${c.host}`, `User-Agent: ${c.ua(0)}`, `Accept: ${OCI_MANIFEST}`, "") +
        crlf(`GET /v2/public/app/blobs/${c.image.layerDigest} HTTP/1.1`, `Host: ${c.host}`, `User-Agent: ${c.ua(1)}`, "Content-Length: 0", "") +
        crlf("GET /v2/public/app/tags/list HTTP/1.1", `Host: ${c.host}`, `User-Agent: ${c.ua(2)}`, ""),
      forwards: (c) => [
        ["HEAD", "/v2/public/app/manifests/latest", 0],
        ["GET", `/v2/public/app/blobs/${c.image.layerDigest}`, 1],
        ["GET", "/v2/public/app/tags/list", 2],
      ],
      expect: { served: [200, 200, 200] },
      check: (responses, c) => {
        assert.equal(responses[0]!.headers["docker-content-digest"], c.image.manifestDigest);
        assert.equal(sha256Digest(responses[1]!.body), c.image.layerDigest);
        assert.equal(responses[2]!.json().name, "public/app");
      },
    },
    {
      name: "pipelined-form-mount-then-get",
      methods: ["POST", "GET"],
      bytes: (c) => {
        const form = `mount=${c.image.configDigest}&from=public/app`;
        return (
          crlf("POST /v2/public/copy/blobs/uploads/ HTTP/1.1", `Host: ${c.host}`, `User-Agent: ${c.ua(0)}`, "Content-Type: application/x-www-form-urlencoded", `Content-Length: ${form.length}`, "") +
          form +
          crlf("GET /v2/public/app/tags/list HTTP/1.1", `Host: ${c.host}`, `User-Agent: ${c.ua(1)}`, "")
        );
      },
      forwards: () => [
        ["POST", "/v2/public/copy/blobs/uploads/", 0],
        ["GET", "/v2/public/app/tags/list", 1],
      ],
      expect: { served: [201, 200] },
      check: (responses) => assert.equal(responses[1]!.json().name, "public/app"),
    },
    {
      name: "pipelined-chunked-form-then-get",
      methods: ["POST", "GET"],
      bytes: (c) =>
        crlf("POST /v2/public/copy2/blobs/uploads/ HTTP/1.1", `Host: ${c.host}`, `User-Agent: ${c.ua(0)}`, "Content-Type: application/x-www-form-urlencoded", "Transfer-Encoding: chunked", "") +
        chunk(`mount=${c.image.configDigest}&`) +
        chunk("from=public/app") +
        "0\r\n\r\n" +
        crlf("GET /v2/public/app/tags/list HTTP/1.1", `Host: ${c.host}`, `User-Agent: ${c.ua(1)}`, ""),
      forwards: () => [
        ["POST", "/v2/public/copy2/blobs/uploads/", 0],
        ["GET", "/v2/public/app/tags/list", 1],
      ],
      expect: { served: [201, 200] },
    },
  ];

  /** The `Chunked` spellings that are legal: a whole upload through the gateway must work. */
  const UPLOAD_CASES: { name: string; te: string }[] = [
    { name: "te-Chunked-upload", te: "Transfer-Encoding: Chunked" },
    { name: "te-tab-ows-upload", te: "Transfer-Encoding:\tchunked" },
    { name: "te-CHUNKED-trailing-space-upload", te: "Transfer-Encoding: CHUNKED " },
  ];
  const uploads = new Map<string, { data: Buffer; digest: string; patch: RawExchange; put: RawExchange; get: RawExchange; uas: string[] }>();

  before(async () => {
    registry = await startRegistry({ accessLog: true });
    [image, victim] = await Promise.all([pushTinyImage(registry.url, "public/app", "latest", "seed/0"), pushTinyImage(registry.url, "public/victim", "latest", "seed/1")]);
    gateway = await startTestGateway({
      sites: [
        { name: "hub", hosts: [HUB], backend: registry.url, default: true },
        { name: "team", hosts: [TEAM], backend: registry.url },
      ],
    });
    const host = `${HUB}:${gateway.port}`;
    const tlsTarget = (servername = HUB) => ({ port: gateway.port, tls: { ca: gateway.caPem, servername } });

    await pool(CASES, 8, async (kase) => {
      const ctx: CaseContext = { host, ua: (i) => `smug/${kase.name}/${i}`, inner: `inner/${kase.name}`, image, victim: victim!, backendHost: registry.host };
      const expected = "served" in kase.expect ? kase.expect.served.length : 1;
      const exchange = await rawExchange(tlsTarget(kase.servername), kase.bytes(ctx), { methods: kase.methods, expectResponses: expected, settleMs: 300, idleMs: 2000 });
      results.set(kase.name, { exchange, ctx, kase });
    });

    // Legal chunked spellings: POST, PATCH (chunked, in three chunks), PUT ?digest=, then GET the blob back.
    await pool(UPLOAD_CASES, 3, async ({ name, te }) => {
      const uas = [0, 1, 2, 3].map((i) => `smug/${name}/${i}`);
      const start = await rawExchange(tlsTarget(), crlf("POST /v2/public/app/blobs/uploads/ HTTP/1.1", `Host: ${host}`, `User-Agent: ${uas[0]}`, "Content-Length: 0", "Connection: close", ""), { methods: ["POST"] });
      assert.equal(start.responses[0]?.status, 202, `${name}: upload start ${start.raw.toString()}`);
      const location = new URL(start.responses[0]!.headers.location!);
      const path = `${location.pathname}${location.search}`;
      const data = randomBytes(3000);
      const digest = `sha256:${createHash("sha256").update(data).digest("hex")}`;
      const body = [data.subarray(0, 1000), data.subarray(1000, 2500), data.subarray(2500)].map((part) => Buffer.concat([Buffer.from(`${part.length.toString(16)}\r\n`), part, Buffer.from("\r\n")]));
      const patch = await rawExchange(
        tlsTarget(),
        Buffer.concat([Buffer.from(crlf(`PATCH ${path} HTTP/1.1`, `Host: ${host}`, `User-Agent: ${uas[1]}`, "Content-Type: application/octet-stream", te, "Connection: close", "")), ...body, Buffer.from("0\r\n\r\n")]),
        { methods: ["PATCH"] },
      );
      const next = patch.responses[0]?.headers.location ? new URL(patch.responses[0].headers.location) : location;
      const put = await rawExchange(
        tlsTarget(),
        crlf(`PUT ${next.pathname}${next.search}&digest=${digest} HTTP/1.1`, `Host: ${host}`, `User-Agent: ${uas[2]}`, "Content-Length: 0", "Connection: close", ""),
        { methods: ["PUT"] },
      );
      const get = await rawExchange(tlsTarget(), crlf(`GET /v2/public/app/blobs/${digest} HTTP/1.1`, `Host: ${host}`, `User-Agent: ${uas[3]}`, "Connection: close", ""), { methods: ["GET"] });
      uploads.set(name, { data, digest, patch, put, get, uas });
    });

    const sentinel = "smug/sentinel/0";
    await (await fetch(`${registry.url}/v2/`, { headers: { "user-agent": sentinel } })).arrayBuffer();
    await waitFor(() => accessLog(registry).some((line) => line.userAgent === sentinel), { timeoutMs: 5000, what: "the sentinel's access-log line" });
    await sleep(200);
    log = accessLog(registry);
    if (process.env.SMUGGLING_DUMP) {
      const rows = [...results.values()].map(({ exchange, kase, ctx }) => {
        const lines = log.filter((l) => l.userAgent.startsWith(`smug/${kase.name}/`) || l.userAgent === ctx.inner).map((l) => `${l.method} ${l.uri} ${l.status} (${l.userAgent})`);
        return `${kase.name}\t→ ${exchange.responses.map((r) => r.status).join(",") || "-"}${exchange.closed ? " closed" : " open"}\tbackend: ${lines.join("; ") || "-"}`;
      });
      await writeFile(process.env.SMUGGLING_DUMP, `${rows.join("\n")}\n`);
    }
  });

  after(async () => {
    await gateway?.stop();
    await registry?.stop();
  });

  const backendLinesOf = (name: string) => log.filter((line) => line.userAgent.startsWith(`smug/${name}/`));

  it("nothing hidden in a body ever reached the backend, and no DELETE at all", () => {
    const smuggled = log.filter((line) => line.userAgent.startsWith("inner/") || /smuggled/.test(line.uri) || line.method === "DELETE");
    assert.deepEqual(smuggled.map((line) => line.line), []);
    const unknown = log.filter((line) => !/^(smug|seed)\//.test(line.userAgent) && line.userAgent !== "node");
    assert.deepEqual(unknown.map((line) => line.line), [], "backend requests nobody sent through the front");
  });

  for (const kase of CASES) {
    it(`${kase.name}: ${"refused" in kase.expect ? `refused (${kase.expect.refused.join("/")})` : "served" in kase.expect ? `served in order (${kase.expect.served.join(", ")})` : "refused or served, nothing smuggled"}`, () => {
      const { exchange, ctx } = results.get(kase.name)!;
      const lines = backendLinesOf(kase.name);
      const where = `\n--- sent ---\n${JSON.stringify(kase.bytes(ctx).toString())}\n--- received ---\n${JSON.stringify(exchange.raw.toString("latin1").slice(0, 2000))}\n--- backend log ---\n${log.filter((l) => l.userAgent.endsWith(`/${kase.name}`) || l.userAgent.startsWith(`smug/${kase.name}/`)).map((l) => l.line).join("\n")}`;
      const hidden = log.filter((line) => line.userAgent === ctx.inner);
      assert.deepEqual(hidden.map((l) => l.line), [], `a request the gateway was not to process reached the backend:${where}`);
      for (const response of exchange.responses) {
        if (response.status >= 400) assertRegistryError(response, kase.methods[0] === "HEAD", where);
      }
      if ("refused" in kase.expect) {
        assert.deepEqual(lines, [], `the backend saw a request the gateway should have refused:${where}`);
        assert.ok(exchange.responses.length <= 1, `more than one answer on a refused connection:${where}`);
        if (exchange.responses.length === 1) {
          assert.ok(kase.expect.refused.includes(exchange.responses[0]!.status), `status ${exchange.responses[0]!.status}:${where}`);
          // Framing the gateway did not trust: the connection must not carry on.
          if (!kase.keepAlive) assert.ok(exchange.closed, `the connection stayed open after a framing refusal:${where}`);
        } else {
          assert.ok(exchange.closed, `neither an answer nor a close:${where}`);
        }
        return;
      }
      const forwards = kase.forwards!(ctx);
      if ("served" in kase.expect) {
        assert.deepEqual(exchange.responses.map((r) => r.status), [...kase.expect.served], `answers:${where}`);
        // Once each. Node hands pipelined requests to the gateway as they are parsed and the gateway forwards
        // them concurrently, so the backend may see them in another order; the answers must be in order.
        const key = ([method, uri, ua]: readonly [string, string, string]) => `${ua} ${method} ${uri}`;
        assert.deepEqual(
          lines.map((l) => key([l.method, l.uri, l.userAgent])).sort(),
          forwards.map(([method, uri, i]) => key([method, uri, ctx.ua(i)])).sort(),
          `backend requests:${where}`,
        );
        kase.check?.(exchange.responses, ctx);
        return;
      }
      assert.ok(exchange.responses.length <= 1, `more than one answer:${where}`);
      if (exchange.responses[0]) assert.ok(kase.expect.either.includes(exchange.responses[0].status), `status ${exchange.responses[0].status}:${where}`);
      for (const line of lines) {
        assert.ok(forwards.some(([m, u, i]) => m === line.method && u === line.uri && line.userAgent === ctx.ua(i)), `unexpected backend request ${line.line}:${where}`);
      }
    });
  }

  for (const { name } of UPLOAD_CASES) {
    it(`${name}: a legal chunked spelling uploads a blob through the gateway`, () => {
      const { data, digest, patch, put, get, uas } = uploads.get(name)!;
      assert.equal(patch.responses[0]?.status, 202, `PATCH: ${patch.raw.toString()}`);
      assert.equal(patch.responses[0]?.headers.range, `0-${data.length - 1}`);
      assert.equal(put.responses[0]?.status, 201, `PUT: ${put.raw.toString()}`);
      assert.equal(get.responses[0]?.status, 200);
      assert.ok(get.responses[0]!.body.equals(data), "the blob came back byte for byte");
      assert.equal(sha256Digest(get.responses[0]!.body), digest);
      assert.deepEqual(
        backendLinesOf(name).map((l) => [l.userAgent, l.method, l.status]),
        [
          [uas[0], "POST", 202],
          [uas[1], "PATCH", 202],
          [uas[2], "PUT", 201],
          [uas[3], "GET", 200],
        ],
      );
    });
  }

  it("no request is left in flight once every connection is closed (each one answered or ended)", async () => {
    // A request the gateway handles but never answers keeps its slot: it is never logged and holds up a drain.
    await waitFor(() => gateway.inFlight() === 0, { timeoutMs: 3000, what: "no requests in flight" }).catch(() => undefined);
    assert.equal(gateway.inFlight(), 0, "requests still in flight with every client connection closed");
  });

  it("the manifests nobody asked the front to delete are still there", async () => {
    for (const { repository, manifestDigest } of [image, victim]) {
      const res = await fetch(`${registry.url}/v2/${repository}/manifests/${manifestDigest}`, { headers: { accept: OCI_MANIFEST, "user-agent": "seed/check" } });
      assert.equal(res.status, 200, `${repository}@${manifestDigest}`);
      assert.equal(sha256Digest(Buffer.from(await res.arrayBuffer())), manifestDigest);
    }
  });
});

function assertRegistryError(response: RawResponse, head: boolean, where: string): void {
  assert.equal(response.headers["docker-distribution-api-version"], "registry/2.0", `no API version header:${where}`);
  assert.equal(response.headers["content-type"], "application/json; charset=utf-8", `not registry JSON:${where}`);
  if (head) return;
  const code = response.json().errors?.[0]?.code;
  assert.equal(typeof code, "string", `no error code:${where}`);
}
