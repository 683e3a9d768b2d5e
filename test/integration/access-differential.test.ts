// The differential test: "the access boundary holds however a request is spelled or framed".
//
// A real distribution registry (access log on) holds public/app, public/other, secret/app and
// secret/app/manifests, seeded directly. Two gateway sites front it: hub (htpasswd: admin, ci, reader, and
// anonymous) and team (token auth: anonymous, reader and ci tokens). A corpus of hostile request targets
// goes through the gateway over raw TLS sockets, as every identity, with the identity and a serial number
// in the User-Agent. The ORACLE is the backend's own access log: every request distribution SERVED (2xx,
// 3xx) is routed with an independent model of distribution (test/helpers/distribution.ts) to the
// repository and rights it used, and the sender must hold those rights under the site's rules. Controls
// make sure the corpus reached the backend (the allowed requests were served), and the same spellings sent
// straight to the backend show that they are live: forwarded as they are, they would reach secret/app.
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { after, before, describe, it } from "node:test";
import type { AccessRuleConfig } from "../../src/config/schema.js";
import { distributionAccesses, distributionHandles, distributionRoute, goForm, type ModelAccess } from "../helpers/distribution.js";
import { startTestGateway, type TestGateway } from "../helpers/gateway.js";
import { OCI_MANIFEST, sha256Digest } from "../helpers/oci.js";
import { run, waitFor } from "../helpers/process.js";
import { pool, rawExchange, type RawExchange } from "../helpers/raw-http.js";
import { accessLog, startRegistry, type AccessLogLine, type Registry } from "../helpers/registry.js";
import { pushTinyImage, type TinyImage } from "../helpers/seed.js";

const HUB = "hub.registry.test"; // htpasswd
const TEAM = "team.registry.test"; // token
const ISSUER = "registry-gateway";
const ACCEPT = `${OCI_MANIFEST}, application/vnd.docker.distribution.manifest.v2+json`;
const PASSWORDS = { admin: "Admin123", reader: "Reader123", ci: "Ci123456" } as const;

const RULES: AccessRuleConfig[] = [
  { who: ["admin"], repositories: ["**"], actions: ["pull", "push", "delete", "catalog"] },
  { who: ["ci"], repositories: ["public/**"], actions: ["pull", "push"] },
  { who: ["reader"], repositories: ["public/**"], actions: ["pull"] },
  { who: "*", repositories: ["public/**"], actions: ["pull"] },
];

const basic = (user: keyof typeof PASSWORDS) => `Basic ${Buffer.from(`${user}:${PASSWORDS[user]}`).toString("base64")}`;

// ---------------------------------------------------------------- who may do what (the oracle's rules)

interface Identity {
  /** In the User-Agent: difftest/NAME/SERIAL. */
  name: string;
  /** Gateway site host; undefined: straight to the backend. */
  host?: string;
  authorization?: string;
  /** The rights the rules give this identity on a repository. */
  actions(repository: string): ReadonlySet<string>;
  catalog: boolean;
}

const ALL = new Set(["pull", "push", "delete"]);
const NONE: ReadonlySet<string> = new Set();
const onPublic = (actions: string[]) => {
  const set = new Set(actions);
  return (repository: string) => (repository.startsWith("public/") ? set : NONE);
};

function may(identity: Identity, access: ModelAccess): boolean {
  if (access.type === "registry") return access.name === "catalog" && identity.catalog;
  return identity.actions(access.name).has(access.action);
}

// ---------------------------------------------------------------- the corpus

interface Spec {
  method: string;
  target: string;
  headers?: [string, string][];
  body?: string;
  /** Also send it straight to the backend (safe: reads only). */
  direct?: boolean;
}

const hexOf = (digest: string) => digest.slice("sha256:".length);
const FORM = "application/x-www-form-urlencoded";

function corpus(img: Record<"pub" | "other" | "secret" | "secretManifests", TinyImage>): Spec[] {
  const S = img.secret;
  const SM = img.secretManifests;
  const P = img.pub;
  const O = img.other;
  const get = (target: string): Spec => ({ method: "GET", target, direct: true });
  const head = (target: string): Spec => ({ method: "HEAD", target, direct: true });
  const form = (target: string, body: string, contentType = FORM): Spec => ({ method: "POST", target, body, headers: [["Content-Type", contentType]] });
  const upload = "/v2/public/app/blobs/uploads/";
  const boundary = "XyZ";
  const multipart = (fields: [string, string][]) =>
    fields.map(([k, v]) => `--${boundary}\r\nContent-Disposition: form-data; name="${k}"\r\n\r\n${v}\r\n`).join("") + `--${boundary}--\r\n`;

  return [
    // Plain spellings: the controls (allowed ones must be served, secret ones refused).
    get("/v2/"),
    get("/v2/public/app/manifests/latest"),
    head("/v2/public/app/manifests/latest"),
    get(`/v2/public/app/manifests/${P.manifestDigest}`),
    get(`/v2/public/app/blobs/${P.layerDigest}`),
    get("/v2/public/app/tags/list"),
    get("/v2/secret/app/manifests/latest"),
    get("/v2/secret/app/manifests/manifests/latest"),
    get(`/v2/secret/app/blobs/${S.layerDigest}`),
    get("/v2/secret/app/tags/list"),
    get("/v2/_catalog"),

    // Percent-encoded letters, slashes, colons.
    get("/v2/secr%65t/app/manifests/latest"),
    get("/v2/%73ecret/app/manifests/latest"),
    get("/v2/%73%65%63%72%65%74/%61%70%70/%6d%61%6e%69%66%65%73%74%73/%6c%61%74%65%73%74"),
    get("/v2/secret%2Fapp/manifests/latest"),
    get("/v2/secret%2fapp/tags/list"),
    get("/v2/secret/app%2Fmanifests/manifests/latest"),
    get("/v2/secret/app/manifests%2Flatest"),
    get("/v2/secret/app/manifests/lat%65st"),
    get(`/v2/secret/app/manifests/sha256%3A${hexOf(S.manifestDigest)}`),
    get(`/v2/secret/app/blobs/sha256%3A${hexOf(S.layerDigest)}`),
    get(`/v2/secret/app/blobs/sha256%3a${hexOf(S.layerDigest)}`),
    head(`/v2/secret/app/blobs/sha256%3A${hexOf(S.layerDigest)}`),
    get("/v2/secret/app/tags/lis%74"),
    get("/v2/secret/app/tags%2Flist"),
    get("/v2/%5Fcatalog"),
    get("/v2/%5fcatalog"),
    get("/v2/_c%61talog"),
    get("/v2/public%2F..%2Fsecret%2Fapp/manifests/latest"),
    get("/v2/public/%2e%2e/secret/app/manifests/latest"),
    get("/v2/public/app/%2E%2E/%2E%2E/secret/app/manifests/latest"),
    get("/v2/public/app/.%2E/.%2E/secret/app/manifests/latest"),
    get("/v2/public/app%2F..%2F..%2Fsecret%2Fapp/manifests/latest"),
    get("/v2/secr%2565t/app/manifests/latest"),
    get("/v2/secr%u0065t/app/manifests/latest"),
    get("/v2/secret/app/manifests/latest%00"),
    get("/v2/secret/app/manifests/latest%3Fx=1"),
    get("/v2/secret/app/manifests/latest%23x"),
    get("/v2/public/app/%5C..%5C..%5Csecret/app/manifests/latest"),
    get("/v2/public/app/manifests/%2e%2e/%2e%2e/%2e%2e/secret/app/manifests/latest"),

    // Fragments.
    get("/v2/public/app/manifests/latest#/../../../secret/app/manifests/latest"),
    get("/v2/secret/app/manifests/latest#public"),
    get("/v2/public/app/tags/list#/../../../../secret/app/tags/list"),
    get("/v2/public/app/manifests/latest#"),
    get("/v2/secret/app#/../../public/app/manifests/latest"),
    get("/v2/secret/app/manifests/latest#?x"),

    // Backslashes.
    get("/v2/public/app/blobs/uploads/..\\..\\..\\..\\secret\\app\\manifests\\latest"),
    get("/v2/public\\..\\secret\\app\\manifests\\latest"),
    get("/v2/public/app/..\\..\\secret/app/manifests/latest"),
    get("/v2/secret\\app/manifests/latest"),
    get("\\v2\\secret\\app\\manifests\\latest"),

    // Dot segments.
    get("/v2/public/app/../../secret/app/manifests/latest"),
    get("/v2/public/../secret/app/manifests/latest"),
    get("/v2/./secret/app/manifests/latest"),
    get("/v2/public/app/manifests/../../../secret/app/manifests/latest"),
    get("/v2/public/app/manifests/../../../secret/app/manifests/manifests/latest"),
    get("/v2/secret/app/manifests/latest/."),
    get("/v2/secret/./app/manifests/latest"),
    get("/v2/public/app/manifests/latest/../../../../secret/app/manifests/latest"),
    get("/v2/public/app/tags/list/../../../../secret/app/tags/list"),
    get(`/v2/public/app/blobs/../../../secret/app/blobs/${S.layerDigest}`),
    get(`/v2/public/app/manifests/latest/${"../".repeat(40)}v2/secret/app/manifests/latest`),
    get("/v2/public/app/manifests/latest/.."),

    // Empty segments.
    get("//v2/secret/app/manifests/latest"),
    get("/v2//secret/app/manifests/latest"),
    get("/v2/secret//app/manifests/latest"),
    get("/v2/public/app//manifests/latest"),
    get("/v2/public//../secret/app/manifests/latest"),

    // Case.
    get("/V2/secret/app/manifests/latest"),
    get("/v2/Secret/app/manifests/latest"),
    get("/v2/SECRET/APP/manifests/latest"),
    get("/v2/secret/app/Manifests/latest"),
    get("/v2/secret/app/TAGS/LIST"),
    get("/v2/_CATALOG"),
    get("/v2/Public/app/manifests/latest"),

    // ; parameters.
    get("/v2/secret/app/manifests/latest;x=y"),
    get("/v2/public/app;/../../secret/app/manifests/latest"),
    get("/v2/secret;public/app/manifests/latest"),
    get("/v2/public;/../secret/app/manifests/latest"),
    get("/v2/_catalog;x"),

    // Trailing junk, queries.
    get("/v2/secret/app/manifests/latest/"),
    get("/v2/secret/app/tags/list/"),
    get("/v2/secret/app/manifests/latest%20"),
    get("/v2/secret/app/manifests/latest%09"),
    get("/v2/secret/app/manifests/latest?"),
    get("/v2/secret/app/manifests/latest?/../../../public/app/manifests/latest"),
    get("/v2/public/app/manifests/latest?/../../../secret/app/manifests/latest"),
    get("/v2/public/app/manifests/latest?a=%zz"),
    get("/v2/public/app/manifests/latest?a=b#frag"),
    { method: "GET", target: "/v2/public/app/manifests/latest x" },
    get("/v2/_catalog?n=1000&last=a"),
    get("/v2"),

    // Names with the `domain[:port]/` prefix distribution's router accepts.
    get("/v2/localhost:5000/secret/app/manifests/latest"),
    get("/v2/secret:443/app/manifests/latest"),
    get("/v2/Secret.example/app/manifests/latest"),

    // Over-long names, tags and paths.
    get(`/v2/${"a/".repeat(130)}secret/app/manifests/latest`),
    get(`/v2/public/${"a".repeat(300)}/manifests/latest`),
    get(`/v2/secret/app/manifests/${"a".repeat(129)}`),
    get(`/v2/${"x".repeat(8000)}`),

    // Unicode (sent as UTF-8) and overlong UTF-8 escapes.
    get("/v2/secrét/app/manifests/latest"),
    get("/v2/ſecret/app/manifests/latest"),
    get("/v2/ｓecret/app/manifests/latest"),
    get("/v2/secret/app/manifests/latest\u200b"),
    get("/v2/secret/app/manifests/latest\u212a"),
    get("/v2/secret/app/manifests/%C0%AE%C0%AE"),
    get("/v2/public/app/%C0%AE%C0%AE/%C0%AE%C0%AE/secret/app/manifests/latest"),
    head("/v2/secr%65t/app/manifests/latest"),
    head("/v2/public/app/../../secret/app/manifests/latest"),

    // Writes on secret repositories (and deletes nobody but admin may do).
    { method: "POST", target: "/v2/secret/app/blobs/uploads/" },
    { method: "POST", target: "/v2/secr%65t/app/blobs/uploads/" },
    { method: "POST", target: "/v2/public/app/../../secret/app/blobs/uploads/" },
    { method: "POST", target: "/v2/secret/app/blobs/uploads" },
    { method: "POST", target: "/v2/secret/app/manifests/blobs/uploads/" },
    { method: "PUT", target: "/v2/secret/app/manifests/latest", body: P.manifest.toString(), headers: [["Content-Type", OCI_MANIFEST]] },
    { method: "PUT", target: "/v2/secr%65t/app/manifests/evil", body: P.manifest.toString(), headers: [["Content-Type", OCI_MANIFEST]] },
    { method: "PUT", target: "/v2/public/app/../../secret/app/manifests/evil", body: P.manifest.toString(), headers: [["Content-Type", OCI_MANIFEST]] },
    { method: "DELETE", target: `/v2/secret/app/manifests/${S.manifestDigest}` },
    { method: "DELETE", target: `/v2/secr%65t/app/manifests/${S.manifestDigest}` },
    { method: "DELETE", target: `/v2/public/app/../../secret/app/manifests/${S.manifestDigest}` },
    { method: "DELETE", target: `/v2/secret/app/manifests/sha256%3A${hexOf(S.manifestDigest)}` },
    { method: "DELETE", target: `/v2/secret/app/blobs/${S.layerDigest}` },
    { method: "DELETE", target: `/v2/secret/app/manifests/manifests/${SM.manifestDigest}` },
    { method: "DELETE", target: `/v2/public/app/manifests/${P.manifestDigest}` },
    { method: "DELETE", target: `/v2/public/app/blobs/${P.layerDigest}` },
    { method: "PATCH", target: "/v2/secret/app/blobs/uploads/0b1c-uuid?_state=x", body: "abc", headers: [["Content-Type", "application/octet-stream"]] },
    { method: "PUT", target: `/v2/secret/app/blobs/uploads/0b1c-uuid?digest=${S.layerDigest}` },
    { method: "DELETE", target: "/v2/secret/app/blobs/uploads/0b1c-uuid" },

    // Cross-repository mounts. Allowed source first (ci may: the backend must answer 201), then secret ones.
    { method: "POST", target: `${upload}?mount=${O.layerDigest}&from=public/other` },
    form(upload, `mount=${O.layerDigest}&from=public/other`),
    { method: "POST", target: `${upload}?mount=${S.layerDigest}&from=secret/app` },
    { method: "POST", target: `${upload}?mount=${S.layerDigest}&from=secret%2Fapp` },
    { method: "POST", target: `${upload}?mount=${S.layerDigest}&fr%6Fm=secret/app` },
    { method: "POST", target: `${upload}?mount=${S.layerDigest}&from=secret/app&from=public/other` },
    { method: "POST", target: `${upload}?mount=${S.layerDigest}&from=public/other;from=secret/app` },
    { method: "POST", target: `${upload}?from=secret/app&mount=${S.layerDigest}` },
    { method: "POST", target: `${upload}?mount=${SM.layerDigest}&from=secret/app/manifests` },
    { method: "POST", target: `${upload}?mount=${S.layerDigest}&from=public/../secret/app` },
    { method: "POST", target: `${upload}?mount=${S.layerDigest}&from=Secret/app` },
    { method: "POST", target: `${upload}?mount=${S.layerDigest}&from=secret/app#` },
    { method: "POST", target: `/v2/public/app/blobs/uploads/0b1c-uuid?mount=${S.layerDigest}&from=secret/app` },
    { method: "POST", target: `/v2/public/app/blobs/uploads?mount=${S.layerDigest}&from=secret/app` },
    form(upload, `mount=${S.layerDigest}&from=secret/app`),
    form(upload, `mount=${S.layerDigest}&from=secret%2Fapp`),
    form(upload, `mount=${S.layerDigest}&fr%6Fm=secret/app`),
    form(upload, `mount=${S.layerDigest}&%66rom=secret/app`),
    form(upload, `from=secret/app&from=public/other&mount=${S.layerDigest}`),
    form(upload, `mount=${S.layerDigest}&from=public/other&from=secret/app`),
    form(upload, `mount=${S.layerDigest};from=secret/app`),
    form(`${upload}?from=public/other`, `mount=${S.layerDigest}&from=secret/app`),
    form(`${upload}?mount=${S.layerDigest}`, "from=secret/app"),
    form(upload, `mount=${S.layerDigest}&from=secret/app`, `${FORM}; charset=utf-8`),
    form(upload, `mount=${S.layerDigest}&from=secret/app`, FORM.toUpperCase()),
    form(upload, `mount=${S.layerDigest}&from=secret/app`, `${FORM};;`),
    form(upload, `mount=${S.layerDigest}&from=secret/app`, `${FORM}, text/plain`),
    form(upload, `mount=${S.layerDigest}&from=secret/app`, "text/plain"),
    form(upload, `mount=${S.layerDigest}&from=secret/app`, "application/octet-stream"),
    form(upload, multipart([["mount", S.layerDigest], ["from", "secret/app"]]), `multipart/form-data; boundary=${boundary}`),
    {
      method: "POST",
      target: upload,
      headers: [
        ["Content-Type", FORM],
        ["Transfer-Encoding", "chunked"],
      ],
      body: chunked(`mount=${S.layerDigest}&from=secret/app`),
    },
    {
      method: "POST",
      target: upload,
      headers: [
        ["Content-Type", FORM],
        ["Content-Type", "text/plain"],
      ],
      body: `mount=${S.layerDigest}&from=secret/app`,
    },

    // Methods nobody routes, and methods a route does not take.
    { method: "PROPFIND", target: "/v2/secret/app/manifests/latest" },
    { method: "OPTIONS", target: "/v2/secret/app/manifests/latest" },
    { method: "TRACE", target: "/v2/secret/app/manifests/latest" },
    { method: "FOO", target: "/v2/secret/app/manifests/latest" },
    { method: "get", target: "/v2/secret/app/manifests/latest" },
    { method: "MOVE", target: "/v2/secret/app/manifests/latest" },
    { method: "COPY", target: "/v2/secret/app/manifests/latest" },
    { method: "PURGE", target: "/v2/secret/app/manifests/latest" },
    { method: "SEARCH", target: "/v2/secret/app/manifests/latest" },
    { method: "OPTIONS", target: "*" },
    { method: "GET", target: "*" },
    { method: "HEAD", target: "/v2/_catalog" },
    { method: "POST", target: "/v2/_catalog" },
    { method: "DELETE", target: "/v2/_catalog" },
    { method: "DELETE", target: "/v2/" },
    { method: "POST", target: "/v2/public/app/tags/list" },
    { method: "PUT", target: `/v2/public/app/blobs/${P.layerDigest}` },
    { method: "POST", target: "/v2/public/app/manifests/latest" },
  ];
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

function chunked(text: string): string {
  return `${Buffer.byteLength(text).toString(16)}\r\n${text}\r\n0\r\n\r\n`;
}

/** The admin's requests: plain spellings that must be served, including a mount of a secret blob. */
function adminControls(img: Record<"secret", TinyImage>): Spec[] {
  return [
    { method: "GET", target: "/v2/secret/app/manifests/latest" },
    { method: "GET", target: "/v2/secret/app/manifests/manifests/latest" },
    { method: "GET", target: "/v2/_catalog" },
    { method: "POST", target: `/v2/scratch/app/blobs/uploads/?mount=${img.secret.layerDigest}&from=secret/app` },
  ];
}

// ---------------------------------------------------------------- sending

interface Sent {
  ua: string;
  identity: Identity;
  spec: Spec;
  exchange?: RawExchange;
}

function requestBytes(spec: Spec, hostHeader: string, ua: string, authorization: string | undefined): Buffer {
  const lines = [`${spec.method} ${spec.target} HTTP/1.1`, `Host: ${hostHeader}`, `User-Agent: ${ua}`, `Accept: ${ACCEPT}`];
  if (authorization) lines.push(`Authorization: ${authorization}`);
  for (const [name, value] of spec.headers ?? []) lines.push(`${name}: ${value}`);
  const framed = spec.headers?.some(([name]) => /^(content-length|transfer-encoding)$/i.test(name));
  if (!framed && spec.body !== undefined) lines.push(`Content-Length: ${Buffer.byteLength(spec.body)}`);
  else if (!framed && ["POST", "PUT", "PATCH"].includes(spec.method)) lines.push("Content-Length: 0");
  lines.push("Connection: close");
  return Buffer.concat([Buffer.from(`${lines.join("\r\n")}\r\n\r\n`, "utf8"), Buffer.from(spec.body ?? "", "utf8")]);
}

describe("access differential: the backend serves only what the sender may have, however the request is spelled", () => {
  let workDir: string;
  let registry: Registry;
  let gateway: TestGateway;
  let images: Record<"pub" | "other" | "secret" | "secretManifests", TinyImage>;
  const sent = new Map<string, Sent>();
  let serial = 0;
  let log: AccessLogLine[] = [];
  let claims: Record<string, { type: string; name: string; actions: string[] }[]> = {};
  const identities: Record<string, Identity> = {};

  const nextUa = (identity: Identity) => `difftest/${identity.name}/${++serial}`;

  async function send(identity: Identity, spec: Spec): Promise<Sent> {
    const ua = nextUa(identity);
    const entry: Sent = { ua, identity, spec };
    sent.set(ua, entry);
    const direct = identity.host === undefined;
    const hostHeader = direct ? registry.host : `${identity.host}:${gateway.port}`;
    const target = direct ? { port: registry.port } : { port: gateway.port, tls: { ca: gateway.caPem, servername: identity.host } };
    entry.exchange = await rawExchange(target, requestBytes(spec, hostHeader, ua, identity.authorization), { methods: [spec.method], idleMs: 10_000 });
    return entry;
  }

  /** Straight to the backend, for seeding and checks, attributed like everything else. */
  const backendUa = () => nextUa(identities.backend!);

  before(async () => {
    workDir = await mkdtemp(join(tmpdir(), "rg-diff-"));
    const htpasswd = join(workDir, "htpasswd");
    const lines: string[] = [];
    for (const [user, password] of Object.entries(PASSWORDS)) {
      const made = await run("htpasswd", ["-nbB", "-C", "4", user, password]);
      assert.equal(made.code, 0, made.stderr);
      lines.push(made.stdout.trim());
    }
    await writeFile(htpasswd, `${lines.join("\n")}\n`);

    registry = await startRegistry({ accessLog: true });
    identities.backend = { name: "backend", actions: () => ALL, catalog: true };
    const [pub, other, secret, secretManifests] = await Promise.all([
      pushTinyImage(registry.url, "public/app", "latest", backendUa()),
      pushTinyImage(registry.url, "public/other", "latest", backendUa()),
      pushTinyImage(registry.url, "secret/app", "latest", backendUa()),
      pushTinyImage(registry.url, "secret/app/manifests", "latest", backendUa()),
    ]);
    images = { pub: pub!, other: other!, secret: secret!, secretManifests: secretManifests! };
    for (const ua of [...Array(serial).keys()].map((i) => `difftest/backend/${i + 1}`)) sent.set(ua, { ua, identity: identities.backend, spec: { method: "SEED", target: "" } });

    gateway = await startTestGateway({
      tokens: { issuer: ISSUER },
      sites: [
        { name: "hub", hosts: [HUB], backend: registry.url, default: true, auth: { type: "htpasswd", htpasswd, rules: RULES } },
        { name: "team", hosts: [TEAM], backend: registry.url, auth: { type: "token", htpasswd, rules: RULES } },
      ],
    });

    // Tokens: ask for everything, including names spelled to slip past the rules; get what the rules give.
    const scopes = [
      "repository:public/app:pull,push,delete",
      "repository:public/other:pull,push",
      "repository:secret/app:pull,push,delete",
      "repository:secret/app/manifests:*",
      "registry:catalog:*",
      "repository:public/app/../../secret/app:pull",
      "repository:public/../secret/app:pull,push",
      "repository:secret%2Fapp:pull",
      "repository:Secret/app:pull",
      "repository:public/**:pull,push",
      "repository:public/app/%2e%2e/%2e%2e/secret/app:pull",
    ];
    const tokenQuery = `/token?service=team&${scopes.map((s) => `scope=${encodeURIComponent(s)}`).join("&")}`;
    const tokenFor = async (who: string, authorization?: string) => {
      const res = await gateway.request(TEAM, { path: tokenQuery, headers: authorization ? { authorization } : {} });
      assert.equal(res.status, 200, res.body.toString());
      const token = res.json().token as string;
      claims[who] = JSON.parse(Buffer.from(token.split(".")[1]!, "base64url").toString()).access;
      return `Bearer ${token}`;
    };
    const pullPublic = onPublic(["pull"]);
    const pushPublic = onPublic(["pull", "push"]);
    Object.assign(identities, {
      anon: { name: "anon", host: HUB, actions: pullPublic, catalog: false },
      reader: { name: "reader", host: HUB, authorization: basic("reader"), actions: pullPublic, catalog: false },
      ci: { name: "ci", host: HUB, authorization: basic("ci"), actions: pushPublic, catalog: false },
      admin: { name: "admin", host: HUB, authorization: basic("admin"), actions: () => ALL, catalog: true },
      "team-none": { name: "team-none", host: TEAM, actions: pullPublic, catalog: false },
      "anon-token": { name: "anon-token", host: TEAM, authorization: await tokenFor("anon-token"), actions: pullPublic, catalog: false },
      "reader-token": { name: "reader-token", host: TEAM, authorization: await tokenFor("reader-token", basic("reader")), actions: pullPublic, catalog: false },
      "ci-token": { name: "ci-token", host: TEAM, authorization: await tokenFor("ci-token", basic("ci")), actions: pushPublic, catalog: false },
      direct: { name: "direct", actions: () => ALL, catalog: true },
    } satisfies Record<string, Identity>);

    const specs = corpus(images);
    const senders = ["anon", "reader", "ci", "team-none", "anon-token", "reader-token", "ci-token"].map((n) => identities[n]!);
    const jobs: [Identity, Spec][] = [
      ...senders.flatMap((identity) => specs.map((spec): [Identity, Spec] => [identity, spec])),
      ...adminControls(images).map((spec): [Identity, Spec] => [identities.admin!, spec]),
      // Read-only spellings straight to the backend: which of them are live, and does the model agree.
      ...specs.filter((spec) => spec.direct).map((spec): [Identity, Spec] => [identities.direct!, spec]),
    ];
    await pool(jobs, 12, ([identity, spec]) => send(identity, spec));

    // The access log is written after each response: wait for a last request's line, then read it.
    const sentinel = backendUa();
    sent.set(sentinel, { ua: sentinel, identity: identities.backend, spec: { method: "GET", target: "/v2/" } });
    const res = await fetch(`${registry.url}/v2/`, { headers: { "user-agent": sentinel } });
    await res.arrayBuffer();
    await waitFor(() => accessLog(registry).some((line) => line.userAgent === sentinel), { timeoutMs: 5000, what: "the sentinel's access-log line" });
    await sleep(200);
    log = accessLog(registry);
    if (process.env.DIFFTEST_DUMP) {
      const rows = [...sent.values()].filter((e) => e.exchange).map((e) => {
        const line = log.find((l) => l.userAgent === e.ua);
        return `${e.identity.name}\t${e.spec.method} ${JSON.stringify(e.spec.target).slice(0, 120)}${e.spec.body ? ` [${e.spec.headers?.map((h) => h.join(": ")).join("; ")}] ${JSON.stringify(e.spec.body).slice(0, 80)}` : ""}\t→ gateway ${e.exchange!.responses[0]?.status ?? (e.exchange!.closed ? "closed" : "none")}\tbackend ${line?.status ?? "-"}`;
      });
      await writeFile(process.env.DIFFTEST_DUMP, `${rows.join("\n")}\n`);
    }
  });

  after(async () => {
    await gateway?.stop();
    await registry?.stop();
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  const linesOf = (identityName: string) => log.filter((line) => sent.get(line.userAgent)?.identity.name === identityName);
  const served = (line: AccessLogLine) => line.status >= 200 && line.status < 400;
  const describeLine = (line: AccessLogLine) => {
    const entry = sent.get(line.userAgent);
    return `${line.line}\n  sent as ${entry?.identity.name}: ${entry?.spec.method} ${JSON.stringify(entry?.spec.target)}${entry?.spec.body ? ` body ${JSON.stringify(entry.spec.body)}` : ""}`;
  };
  /** The rights distribution used to serve a line, by the model; a string when the model cannot explain it. */
  function rightsUsed(line: AccessLogLine): ModelAccess[] | string {
    const routing = distributionRoute(line.uri);
    if (routing.outcome === "badRequest") return "Go would refuse this target, yet it was served";
    if (routing.outcome === "redirect") return line.status === 301 ? [] : `expected a 301 redirect, got ${line.status}`;
    if (routing.outcome === "notFound") return "no distribution route has this path, yet it was served";
    if (line.method === "OPTIONS") return [];
    if (!distributionHandles(routing.route.name, line.method)) return `route ${routing.route.name} has no ${line.method} handler, yet it was served`;
    const entry = sent.get(line.userAgent)!;
    const contentType = entry.spec.headers?.find(([name]) => name.toLowerCase() === "content-type")?.[1];
    const body = entry.spec.headers?.some(([name, value]) => name.toLowerCase() === "transfer-encoding" && /chunked/i.test(value))
      ? entry.spec.body?.split("\r\n")[1]
      : entry.spec.body;
    return distributionAccesses(routing.route, line.method, goForm(line.method, routing.rawQuery, contentType, body));
  }

  it("every backend request is one that was sent, and reached the backend at most once", () => {
    const first = log.findIndex((line) => line.userAgent.startsWith("difftest/"));
    assert.ok(first >= 0, "the access log has the test's requests");
    const seen = new Map<string, number>();
    for (const line of log.slice(first)) {
      assert.ok(sent.has(line.userAgent), `a backend request nobody sent: ${line.line}`);
      // The seeding and checking requests share a User-Agent per image; every other one is unique.
      if (sent.get(line.userAgent)!.identity.name !== "backend") seen.set(line.userAgent, (seen.get(line.userAgent) ?? 0) + 1);
    }
    const twice = [...seen].filter(([, n]) => n > 1).map(([ua]) => ua);
    assert.deepEqual(twice, [], `requests that reached the backend more than once:\n${twice.join("\n")}`);
  });

  it("the corpus reached the backend: every identity's allowed plain requests were served", () => {
    const servedPlain = (identity: string, method: string, target: string, status: number) => {
      const line = linesOf(identity).find((l) => l.method === method && l.uri === target);
      assert.ok(line, `${identity}: ${method} ${target} never reached the backend`);
      assert.equal(line.status, status, describeLine(line));
    };
    for (const identity of ["anon", "reader", "ci", "anon-token", "reader-token", "ci-token"]) {
      servedPlain(identity, "GET", "/v2/public/app/manifests/latest", 200);
      servedPlain(identity, "HEAD", "/v2/public/app/manifests/latest", 200);
      servedPlain(identity, "GET", `/v2/public/app/blobs/${images.pub.layerDigest}`, 200);
      servedPlain(identity, "GET", "/v2/public/app/tags/list", 200);
      // A query the backend ignores on a manifest GET: the gateway forwards it byte for byte.
      servedPlain(identity, "GET", "/v2/public/app/manifests/latest?/../../../secret/app/manifests/latest", 200);
    }
    for (const identity of ["ci", "ci-token"]) {
      servedPlain(identity, "POST", `/v2/public/app/blobs/uploads/?mount=${images.other.layerDigest}&from=public/other`, 201);
      // The urlencoded body is forwarded, and the backend reads `from` from it: a mount, 201.
      const formMount = linesOf(identity).find((l) => sent.get(l.userAgent)!.spec.body === `mount=${images.other.layerDigest}&from=public/other`);
      assert.ok(formMount, `${identity}: the form-body mount from public/other never reached the backend`);
      assert.equal(formMount.status, 201, describeLine(formMount));
    }
    servedPlain("admin", "GET", "/v2/secret/app/manifests/latest", 200);
    servedPlain("admin", "GET", "/v2/secret/app/manifests/manifests/latest", 200);
    servedPlain("admin", "GET", "/v2/_catalog", 200);
    servedPlain("admin", "POST", `/v2/scratch/app/blobs/uploads/?mount=${images.secret.layerDigest}&from=secret/app`, 201);
    // And through the gateway the client got what the backend served.
    const reader = [...sent.values()].find((s) => s.identity.name === "reader" && s.spec.method === "GET" && s.spec.target === "/v2/public/app/manifests/latest")!;
    assert.equal(reader.exchange?.responses[0]?.status, 200);
    assert.equal(sha256Digest(reader.exchange!.responses[0]!.body), images.pub.manifestDigest);
  });

  it("ORACLE: for every request the backend served, the sender holds the rights distribution used", () => {
    const violations: string[] = [];
    let judged = 0;
    for (const line of log) {
      const entry = sent.get(line.userAgent);
      if (!entry || !served(line)) continue;
      judged++;
      const used = rightsUsed(line);
      if (typeof used === "string") {
        violations.push(`${used}:\n${describeLine(line)}`);
        continue;
      }
      const lacking = used.filter((access) => !may(entry.identity, access));
      if (lacking.length > 0) violations.push(`${entry.identity.name} lacks ${lacking.map((a) => `${a.type}:${a.name}:${a.action}`).join(", ")}:\n${describeLine(line)}`);
    }
    assert.ok(judged > 100, `only ${judged} served lines were judged`);
    assert.deepEqual(violations, [], violations.join("\n\n"));
  });

  it("nothing under secret/ was served to anyone but admin, under any spelling", () => {
    const leaks = log.filter((line) => {
      const who = sent.get(line.userAgent)?.identity.name;
      if (!who || ["admin", "direct", "backend"].includes(who) || !served(line)) return false;
      return /secr|ecret/i.test(safeDecode(line.uri.split("?")[0]!));
    });
    assert.deepEqual(leaks.map(describeLine), []);
  });

  it("the hostile spellings are live: straight to the backend they reach secret/app, and the model reads them as distribution does", () => {
    const direct = linesOf("direct");
    const status = (target: string) => direct.find((line) => line.uri === target)?.status;
    const S = images.secret;
    for (const target of [
      "/v2/secr%65t/app/manifests/latest",
      "/v2/%73%65%63%72%65%74/%61%70%70/%6d%61%6e%69%66%65%73%74%73/%6c%61%74%65%73%74",
      "/v2/secret%2Fapp/manifests/latest",
      "/v2/secret/app/manifests/lat%65st",
      `/v2/secret/app/blobs/sha256%3A${hexOf(S.layerDigest)}`,
      "/v2/secret/app/tags/lis%74",
      "/v2/%5Fcatalog",
      "/v2/secret/app/manifests/latest",
    ]) {
      assert.equal(status(target), 200, `straight to the backend ${target} should be served`);
    }
    // The redirect spellings: distribution 301s them to the clean path (a client following it is served).
    for (const target of ["/v2/public/app/../../secret/app/manifests/latest", "//v2/secret/app/manifests/latest", "/v2/public/%2e%2e/secret/app/manifests/latest"]) {
      assert.equal(status(target), 301, target);
    }
    // The oracle can fail: the direct probes, judged as if reader had sent them, are violations.
    const reader = identities.reader!;
    const flagged = direct.filter((line) => served(line) && (() => {
      const used = rightsUsed(line);
      return typeof used !== "string" && used.some((access) => !may(reader, access));
    })());
    for (const target of ["/v2/secr%65t/app/manifests/latest", "/v2/secret%2Fapp/manifests/latest", "/v2/secret/app/tags/lis%74", "/v2/%5Fcatalog"]) {
      assert.ok(flagged.some((line) => line.uri === target), `the oracle would flag reader being served ${target}`);
    }
    // The model agrees with the real backend on every direct probe.
    const disagreements: string[] = [];
    for (const entry of [...sent.values()].filter((s) => s.identity.name === "direct")) {
      const line = direct.find((l) => l.userAgent === entry.ua);
      const routing = distributionRoute(Buffer.from(entry.spec.target, "utf8").toString("latin1"));
      const got = line ? line.status : `no log line (HTTP ${entry.exchange?.responses[0]?.status ?? "none"})`;
      const ok =
        routing.outcome === "badRequest"
          ? line === undefined
          : routing.outcome === "redirect"
            ? line?.status === 301
            : routing.outcome === "notFound"
              ? line?.status === 404
              : line !== undefined && line.status !== 301 && (line.status !== 404 || !/404 page not found/.test(entry.exchange?.responses[0]?.body.toString() ?? ""));
      if (!ok) disagreements.push(`${entry.spec.method} ${JSON.stringify(entry.spec.target)}: model ${JSON.stringify(routing)}, backend ${got}`);
    }
    assert.deepEqual(disagreements, []);
  });

  it("a secret blob was never mounted into public/app, and secret repositories are intact", async () => {
    const mounts = log.filter((line) => line.status === 201 && line.method === "POST" && !["admin", "backend"].includes(sent.get(line.userAgent)?.identity.name ?? ""));
    for (const line of mounts) assert.ok(!/secret/i.test(safeDecode(line.uri)) && !/secret/i.test(sent.get(line.userAgent)?.spec.body ?? ""), describeLine(line));
    const headBlob = async (repository: string, digest: string) => {
      const ua = backendUa();
      sent.set(ua, { ua, identity: identities.backend!, spec: { method: "HEAD", target: `/v2/${repository}/blobs/${digest}` } });
      const res = await fetch(`${registry.url}/v2/${repository}/blobs/${digest}`, { method: "HEAD", headers: { "user-agent": ua } });
      return res.status;
    };
    assert.equal(await headBlob("public/app", images.secret.layerDigest), 404, "secret/app's layer is not in public/app");
    assert.equal(await headBlob("public/app", images.secretManifests.layerDigest), 404, "secret/app/manifests' layer is not in public/app");
    assert.equal(await headBlob("public/app", images.other.layerDigest), 200, "control: ci's allowed mount from public/other did land");
    assert.equal(await headBlob("scratch/app", images.secret.layerDigest), 200, "control: admin's mount of the secret layer did land");
    assert.equal(await headBlob("secret/app", images.secret.layerDigest), 200, "secret/app's layer is still there");
    for (const repository of ["secret/app", "secret/app/manifests", "public/app"]) {
      const res = await fetch(`${registry.url}/v2/${repository}/manifests/latest`, { headers: { accept: ACCEPT, "user-agent": backendUa() } });
      await res.arrayBuffer();
      assert.equal(res.status, 200, `${repository}:latest is still there`);
    }
    const tags = (await (await fetch(`${registry.url}/v2/secret/app/tags/list`, { headers: { "user-agent": backendUa() } })).json()) as { tags: string[] };
    assert.deepEqual(tags.tags, ["latest"], "no tag was pushed into secret/app");
  });

  it("every gateway answer is the backend's or a registry JSON error; never a 5xx", () => {
    const bad: string[] = [];
    let closedWithoutAnswer = 0;
    for (const entry of sent.values()) {
      if (!entry.exchange || entry.identity.host === undefined) continue;
      const response = entry.exchange.responses[0];
      const what = `${entry.identity.name} ${entry.spec.method} ${JSON.stringify(entry.spec.target)}`;
      if (!response) {
        closedWithoutAnswer++;
        if (!entry.exchange.closed) bad.push(`${what}: no answer and the connection stayed open`);
        continue;
      }
      if (response.status >= 500) bad.push(`${what}: ${response.statusLine} ${response.body.toString().slice(0, 200)}`);
      // A HEAD answer has the headers of the error but no body.
      if (response.status >= 400 && entry.spec.method === "HEAD") {
        if (response.headers["docker-distribution-api-version"] !== "registry/2.0") bad.push(`${what}: ${response.statusLine} ${JSON.stringify(response.headers)}`);
      } else if (response.status >= 400) {
        const json = response.headers["content-type"] === "application/json; charset=utf-8" && response.headers["docker-distribution-api-version"] === "registry/2.0";
        let code: unknown;
        try {
          code = response.json().errors[0].code;
        } catch {
          code = undefined;
        }
        if (!json || typeof code !== "string") bad.push(`${what}: ${response.statusLine} ${JSON.stringify(response.headers)} ${response.body.toString().slice(0, 200)}`);
      }
    }
    assert.deepEqual(bad, []);
    assert.ok(closedWithoutAnswer < 20, `${closedWithoutAnswer} requests were closed without an answer`);
  });

  it("tokens carry only rights the rules give, on names that are repository names", () => {
    const NAME = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$/;
    for (const [who, access] of Object.entries(claims)) {
      const identity = identities[who]!;
      for (const claim of access) {
        if (claim.type === "registry") {
          assert.ok(identity.catalog, `${who} got ${JSON.stringify(claim)}`);
          continue;
        }
        assert.match(claim.name, NAME, `${who} got a claim on a name no repository can have: ${JSON.stringify(claim)}`);
        for (const action of claim.actions) assert.ok(identity.actions(claim.name).has(action), `${who} got ${JSON.stringify(claim)}`);
      }
    }
    assert.deepEqual(claims["reader-token"], [
      { type: "repository", name: "public/app", actions: ["pull"] },
      { type: "repository", name: "public/other", actions: ["pull"] },
    ]);
  });
});
