// Configuration loading, in the order the README documents:
//   YAML (with positions) → ${NAME} interpolation → GATEWAY_* overrides (sorted) → zod → resolve paths → freeze.
// Every problem becomes a ConfigIssue that names file:line:column and the dotted key, and all of them are
// reported together, so one edit fixes a whole file instead of one error per run.
import { constants } from "node:fs";
import { access, readFile, stat } from "node:fs/promises";
import path from "node:path";
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseDocument, type Document, type Scalar } from "yaml";
import { z } from "zod";
import { deepFreeze, siteBackends } from "./helpers.js";
import { gatewayConfig, type GatewayConfig } from "./schema.js";

export interface ConfigIssue {
  file: string;
  line: number;
  column: number;
  key: string;
  message: string;
}

export class ConfigError extends Error {
  readonly issues: ConfigIssue[];

  constructor(issues: ConfigIssue[]) {
    super(issues.map(formatIssue).join("\n"));
    this.name = "ConfigError";
    this.issues = issues;
  }
}

export function formatIssue(issue: ConfigIssue): string {
  return `${issue.file}:${issue.line}:${issue.column} ${issue.key}: ${issue.message}`;
}

/** Parses and validates a configuration text. Relative paths are resolved against process.cwd(). */
export function parseConfig(text: string, file: string, env: NodeJS.ProcessEnv = process.env): Readonly<GatewayConfig> {
  return deepFreeze(parseLocated(text, file, env).config);
}

/** Like parseConfig, and also checks that certificate and key files named by the config are readable. */
export async function loadConfig(file: string, env: NodeJS.ProcessEnv = process.env): Promise<Readonly<GatewayConfig>> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? String(error);
    throw new ConfigError([{ file, line: 0, column: 0, key: "(file)", message: `cannot read the file (${reason})` }]);
  }
  const { config, locate } = parseLocated(text, file, env);
  const issues = [...(await unreadableTlsFiles(config, locate)), ...(await unreadableAuthFiles(config, locate))];
  if (issues.length > 0) throw new ConfigError(issues);
  return deepFreeze(config);
}

// ---------------------------------------------------------------------------------------------------------
// The pipeline

type KeyPath = (string | number)[];
type Schema = z.core.$ZodType;

/** Builds the issue for a key path, pointing at the YAML node or at the environment variable that set it. */
type Locate = (keyPath: KeyPath, message: string) => ConfigIssue;

interface Override {
  variable: string;
  keyPath: KeyPath;
}

const ENV_PREFIX = "GATEWAY_";
const ENVIRONMENT = "environment";

function parseLocated(text: string, file: string, env: NodeJS.ProcessEnv): { config: GatewayConfig; locate: Locate } {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false });
  const syntaxError = doc.errors[0];
  if (syntaxError) {
    // A broken document has no trustworthy structure, and the parser's errors after the first are mostly
    // echoes of it: report that one alone.
    const { line, col } = lineCounter.linePos(syntaxError.pos[0]);
    throw new ConfigError([{ file, line, column: col, key: "(yaml)", message: syntaxError.message.split("\n")[0]! }]);
  }
  const overrides: Override[] = [];
  const locate = locator(doc, lineCounter, file, overrides);
  const unresolved = interpolateDocument(doc, env);
  const data = doc.toJS() ?? {};
  const issues = applyOverrides(data, env, overrides);
  // A value replaced by a GATEWAY_* variable no longer needs its ${NAME}.
  for (const { keyPath, message } of unresolved) {
    if (!overrides.some((o) => startsWith(keyPath, o.keyPath))) issues.push(locate(keyPath, message));
  }

  const result = gatewayConfig.safeParse(data, { reportInput: true });
  if (!result.success) {
    const alreadyReported = new Set(issues.map((issue) => issue.key));
    for (const zodIssue of result.error.issues) {
      for (const issue of fromZodIssue(zodIssue, data, locate)) {
        // An unset ${NAME} also makes its value invalid; the variable is the one thing to fix.
        if (!alreadyReported.has(issue.key)) issues.push(issue);
      }
    }
  }
  if (issues.length > 0) throw new ConfigError(sortByPosition(issues));
  return { config: resolvePaths(result.data!), locate };
}

function sortByPosition(issues: ConfigIssue[]): ConfigIssue[] {
  const rank = (issue: ConfigIssue) => (issue.file === ENVIRONMENT ? 1 : 0);
  return issues.sort((a, b) => rank(a) - rank(b) || a.line - b.line || a.column - b.column);
}

// ---------------------------------------------------------------------------------------------------------
// Positions

function locator(doc: Document, lineCounter: LineCounter, file: string, overrides: Override[]): Locate {
  return (keyPath, message) => {
    const key = dottedKey(keyPath);
    const { depth, offset } = nearestNode(doc, keyPath);
    // Blame the environment when a variable set this key, an ancestor of it, or created its missing parent.
    const override = overrides.find(
      (o) =>
        startsWith(keyPath, o.keyPath) ||
        (depth < keyPath.length && startsWith(o.keyPath, keyPath.slice(0, depth + 1))),
    );
    if (override) {
      return { file: ENVIRONMENT, line: 0, column: 0, key, message: `${message} (set by ${override.variable})` };
    }
    const { line, col } = lineCounter.linePos(offset);
    return { file, line, column: col, key, message };
  };
}

/** The deepest YAML node along keyPath: how many segments exist, and where that node (or its key) starts. */
function nearestNode(doc: Document, keyPath: KeyPath): { depth: number; offset: number } {
  let node: unknown = doc.contents;
  let offset = doc.contents?.range?.[0] ?? 0;
  let depth = 0;
  for (const segment of keyPath) {
    if (isAlias(node)) node = node.resolve(doc);
    if (isMap(node)) {
      const pair = node.items.find((p) => keyName(p.key) === String(segment));
      if (!pair) break;
      // Point at the key, not the value: a block value starts on the next line.
      offset = (isScalar(pair.key) ? pair.key.range?.[0] : undefined) ?? offset;
      node = pair.value;
    } else if (isSeq(node) && typeof segment === "number") {
      const item: unknown = node.items[segment];
      if (!item) break;
      offset = (item as { range?: [number] }).range?.[0] ?? offset;
      node = item;
    } else break;
    depth++;
  }
  return { depth, offset };
}

function keyName(key: unknown): string {
  return isScalar(key) ? String(key.value) : String(key);
}

function dottedKey(keyPath: KeyPath): string {
  if (keyPath.length === 0) return "(root)";
  return keyPath.map((s, i) => (typeof s === "number" ? `[${s}]` : i === 0 ? s : `.${s}`)).join("");
}

function startsWith(keyPath: KeyPath, prefix: KeyPath): boolean {
  return prefix.length <= keyPath.length && prefix.every((segment, i) => keyPath[i] === segment);
}

// ---------------------------------------------------------------------------------------------------------
// ${NAME} and ${NAME:-default}

// `$${` is a literal `${`; a `${` that is not a well-formed reference is reported rather than kept silently.
const REFERENCE = /\$\$\{|\$\{(?:([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\})?/g;

/** Replaces references in every string value (never in keys), in place on the YAML nodes. */
function interpolateDocument(doc: Document, env: NodeJS.ProcessEnv): { keyPath: KeyPath; message: string }[] {
  const unresolved: { keyPath: KeyPath; message: string }[] = [];
  forEachValueScalar(doc.contents, [], (scalar, keyPath) => {
    if (typeof scalar.value !== "string" || !scalar.value.includes("$")) return;
    const { text, problems } = interpolate(scalar.value, env);
    if (problems.length > 0) {
      unresolved.push(...problems.map((message) => ({ keyPath, message })));
      return;
    }
    // An unquoted `port: ${PORT}` should give a number, as if the value had been written there.
    scalar.value = scalar.type === "PLAIN" && text !== scalar.value ? typedValue(text, schemaAt(keyPath)) : text;
  });
  return unresolved;
}

function interpolate(value: string, env: NodeJS.ProcessEnv): { text: string; problems: string[] } {
  const problems: string[] = [];
  const text = value.replace(REFERENCE, (match, name: string | undefined, fallback: string | undefined) => {
    if (match === "$${") return "${";
    if (name === undefined) {
      problems.push('malformed reference: write ${NAME} or ${NAME:-default}, or $${ for a literal "${"');
      return match;
    }
    const set = env[name];
    if (fallback !== undefined) return set ? set : fallback; // like the shell: empty counts as unset
    if (set === undefined) {
      problems.push(`environment variable ${name} is not set (write \${${name}:-default} to give a default)`);
    }
    return set ?? match;
  });
  return { text, problems };
}

function forEachValueScalar(node: unknown, keyPath: KeyPath, visit: (scalar: Scalar, keyPath: KeyPath) => void): void {
  if (isMap(node)) for (const pair of node.items) forEachValueScalar(pair.value, [...keyPath, keyName(pair.key)], visit);
  else if (isSeq(node)) node.items.forEach((item, index) => forEachValueScalar(item, [...keyPath, index], visit));
  else if (isScalar(node)) visit(node, keyPath);
}

// ---------------------------------------------------------------------------------------------------------
// GATEWAY_* overrides

/** GATEWAY_* variables that are not keys: a secret read where it is used, so the configuration never holds it. */
const NOT_OVERRIDES = new Set(["GATEWAY_TLS_STORE_KEY"]);

function applyOverrides(data: unknown, env: NodeJS.ProcessEnv, applied: Override[]): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  const variables = Object.keys(env)
    .filter((name) => name.startsWith(ENV_PREFIX) && env[name] !== undefined && !NOT_OVERRIDES.has(name))
    .sort();
  for (const variable of variables) {
    const problem = applyOverride(data, variable, env[variable]!, applied);
    if (problem) issues.push({ file: ENVIRONMENT, line: 0, column: 0, key: variable, message: problem });
  }
  return issues;
}

/** Applies one variable; returns what is wrong with it, if anything. */
function applyOverride(data: unknown, variable: string, raw: string, applied: Override[]): string | undefined {
  const resolved = keyPathFromVariable(variable.slice(ENV_PREFIX.length).split("_"));
  if (typeof resolved === "string") return resolved;
  const problem = setAt(data, resolved, typedValue(raw, schemaAt(resolved)));
  if (!problem) applied.push({ variable, keyPath: resolved });
  return problem;
}

/** Maps ["SITES", "0", "BACKEND"] to ["sites", 0, "backend"] through the schema; a string is the error. */
function keyPathFromVariable(segments: string[]): KeyPath | string {
  const keyPath: KeyPath = [];
  let schema: Schema | undefined = gatewayConfig;
  for (const segment of segments) {
    const node: Schema = unwrap(schema!);
    if (node instanceof z.ZodArray) {
      if (!/^\d+$/.test(segment)) return `expected an index into ${dottedKey(keyPath)}, got "${segment}"`;
      keyPath.push(Number(segment));
      schema = node.element;
      continue;
    }
    const keys = objectShapes(node, undefined).flatMap((shape) => Object.keys(shape));
    const key = keys.find((k) => k.toLowerCase() === segment.toLowerCase());
    if (key === undefined) {
      const where = keyPath.length === 0 ? "the top level" : dottedKey(keyPath);
      return keys.length === 0
        ? `${dottedKey(keyPath)} has no keys inside it, got "${segment}"`
        : `unknown key "${segment}" at ${where} (expected one of: ${[...new Set(keys)].join(", ")})`;
    }
    keyPath.push(key);
    schema = childSchema(node, key, undefined);
  }
  return keyPath.length > 0 ? keyPath : "names no key: write GATEWAY_<KEY>_<KEY>…";
}

/** Sets a value, creating missing parents; an array may only grow by its next element. */
function setAt(data: unknown, keyPath: KeyPath, value: unknown): string | undefined {
  let container = data;
  for (let i = 0; i < keyPath.length; i++) {
    const segment = keyPath[i]!;
    const last = i === keyPath.length - 1;
    if (Array.isArray(container) && typeof segment === "number") {
      if (segment > container.length) {
        const list = dottedKey(keyPath.slice(0, i));
        return `${list} has ${container.length} element(s); an override can add only index ${container.length}`;
      }
    } else if (!isPlainObject(container)) {
      return `${dottedKey(keyPath.slice(0, i))} is not a mapping or list in the file, so it cannot be overridden inside`;
    }
    const parent = container as Record<string | number, unknown>;
    if (last) parent[segment] = value;
    else parent[segment] ??= typeof keyPath[i + 1] === "number" ? [] : {};
    container = parent[segment];
  }
  return undefined;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Reads a value the way YAML would read it in flow style (`true`, `5`, `[a, b]`), except where the schema
 * wants text: then `DATA_DIR=123` stays the string "123" instead of failing as a number.
 */
function typedValue(raw: string, schema: Schema | undefined): unknown {
  const doc = parseDocument(raw);
  if (raw.trim() === "" || doc.errors.length > 0) return raw;
  const typed: unknown = doc.toJS();
  if (typeof typed === "string" || !schema) return typed;
  return !z.safeParse(schema, typed).success && z.safeParse(schema, raw).success ? raw : typed;
}

// ---------------------------------------------------------------------------------------------------------
// Walking the schema: only the wrappers this schema uses (default, prefault, optional, nullable, pipe/transform).

function unwrap(schema: Schema): Schema {
  if (
    schema instanceof z.ZodDefault ||
    schema instanceof z.ZodPrefault ||
    schema instanceof z.ZodOptional ||
    schema instanceof z.ZodNullable
  ) {
    return unwrap(schema.unwrap() as Schema);
  }
  if (schema instanceof z.ZodPipe) return unwrap(schema.in as Schema);
  return schema;
}

/** The object shapes a node may take: a union offers each option, narrowed by the value's discriminator. */
function objectShapes(schema: Schema, value: unknown): Record<string, Schema>[] {
  const node = unwrap(schema);
  if (node instanceof z.ZodObject) return [node.shape as Record<string, Schema>];
  if (!(node instanceof z.ZodUnion)) return [];
  const shapes = (node.options as Schema[]).flatMap((option) => objectShapes(option, value));
  const discriminator = node instanceof z.ZodDiscriminatedUnion ? node.def.discriminator : undefined;
  if (discriminator === undefined || !isPlainObject(value)) return shapes;
  const chosen = shapes.filter(
    (shape) => shape[discriminator] && z.safeParse(shape[discriminator], value[discriminator]).success,
  );
  return chosen.length > 0 ? chosen : shapes;
}

function childSchema(schema: Schema, segment: string | number, value: unknown): Schema | undefined {
  const node = unwrap(schema);
  if (typeof segment === "number") return node instanceof z.ZodArray ? (node.element as Schema) : undefined;
  return objectShapes(node, value).find((shape) => Object.hasOwn(shape, segment))?.[segment];
}

/** The schema for a key path; `data` (the whole document) narrows unions such as tls.source. */
function schemaAt(keyPath: KeyPath, data?: unknown): Schema | undefined {
  let schema: Schema | undefined = gatewayConfig;
  let value = data;
  for (const segment of keyPath) {
    if (!schema) return undefined;
    schema = childSchema(schema, segment, value);
    value = isPlainObject(value) || Array.isArray(value) ? (value as Record<string | number, unknown>)[segment] : undefined;
  }
  return schema;
}

// ---------------------------------------------------------------------------------------------------------
// zod issues → ConfigIssues

function fromZodIssue(issue: z.core.$ZodIssue, data: unknown, locate: Locate): ConfigIssue[] {
  const keyPath = issue.path.filter((s): s is string | number => typeof s !== "symbol");
  if (issue.code === "unrecognized_keys") {
    const expected = objectShapes(schemaAt(keyPath, data) ?? gatewayConfig, valueAt(data, keyPath)).flatMap(Object.keys);
    return issue.keys.map((key) =>
      locate([...keyPath, key], `unknown key "${key}" (expected one of: ${[...new Set(expected)].join(", ")})`),
    );
  }
  if (issue.code === "invalid_union" && issue.discriminator === undefined) {
    // A union of different kinds (sites[].backend: a URL string or { managed: … }): the one option of the
    // value's kind says what is wrong with it.
    const fitting = issue.errors.filter(
      (errors) => !errors.some((e) => (e.code === "invalid_type" || e.code === "invalid_value") && e.path.length === 0),
    );
    if (fitting.length === 1) {
      return fitting[0]!.flatMap((inner) => fromZodIssue({ ...inner, path: [...issue.path, ...inner.path] }, data, locate));
    }
  }
  return [locate(keyPath, describe(issue))];
}

function valueAt(data: unknown, keyPath: KeyPath): unknown {
  let value = data;
  for (const segment of keyPath) value = (value as Record<string | number, unknown> | undefined)?.[segment];
  return value;
}

/** zod's message, reworded to say what is expected and what was found. */
function describe(issue: z.core.$ZodIssue): string {
  const input = (issue as { input?: unknown }).input;
  switch (issue.code) {
    case "invalid_type":
      if (input === undefined) return `required key is missing (expected ${issue.expected})`;
      return `expected ${issue.expected}, got ${shown(input)}`;
    case "invalid_value":
      return `expected one of ${issue.values.map(shown).join(", ")}, got ${shown(input)}`;
    case "invalid_union": {
      if (issue.discriminator !== undefined && "options" in issue && issue.options) {
        const found = isPlainObject(input) ? input[issue.discriminator] : undefined;
        const expected = `one of ${issue.options.map(shown).join(", ")}`;
        if (found === undefined) return `required key is missing (expected ${expected})`;
        return `expected ${expected}, got ${shown(found)}`;
      }
      // A union whose schema says what it takes (sites[].backend), given a value of none of its kinds.
      if (issue.message.startsWith("expected")) {
        return input === undefined ? `required key is missing (${issue.message})` : `${issue.message}, got ${shown(input)}`;
      }
      return issue.message;
    }
    default:
      // Drop zod's "Too small: " style prefix; the schema's own messages already start with "expected".
      return issue.message.replace(/^[A-Z][A-Za-z ]*: /, "");
  }
}

function shown(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "a list";
  if (typeof value === "object") return "a mapping";
  return JSON.stringify(value) ?? String(value);
}

// ---------------------------------------------------------------------------------------------------------
// After validation

/** Relative paths are taken from the working directory, so the returned config holds absolute paths only. */
function resolvePaths(config: GatewayConfig): GatewayConfig {
  config.dataDir = path.resolve(config.dataDir);
  for (const site of config.sites) {
    if (site.tls.source === "files") {
      site.tls.cert = path.resolve(site.tls.cert);
      site.tls.key = path.resolve(site.tls.key);
    }
    if (site.auth.type !== "none") site.auth.htpasswd = path.resolve(site.auth.htpasswd);
    for (const backend of siteBackends(site)) {
      if (!(backend instanceof URL) && backend.managed.storage !== undefined) backend.managed.storage = path.resolve(backend.managed.storage);
    }
  }
  if (config.admin.tokenFile !== undefined) config.admin.tokenFile = path.resolve(config.admin.tokenFile);
  if (config.tokens.key !== undefined) config.tokens.key = path.resolve(config.tokens.key);
  if (config.tokens.cert !== undefined) config.tokens.cert = path.resolve(config.tokens.cert);
  return config;
}

/** The htpasswd files, token key and admin token file named by the config; their content is checked when auth is built. */
async function unreadableAuthFiles(config: GatewayConfig, locate: Locate): Promise<ConfigIssue[]> {
  const named: { keyPath: KeyPath; file: string }[] = [];
  config.sites.forEach((site, index) => {
    if (site.auth.type !== "none") named.push({ keyPath: ["sites", index, "auth", "htpasswd"], file: site.auth.htpasswd });
  });
  if (config.admin.tokenFile !== undefined) named.push({ keyPath: ["admin", "tokenFile"], file: config.admin.tokenFile });
  for (const key of ["key", "cert"] as const) {
    const file = config.tokens[key];
    if (file !== undefined) named.push({ keyPath: ["tokens", key], file });
  }
  const issues = await Promise.all(named.map(async ({ keyPath, file }) => {
    const problem = await fileProblem(file);
    return problem ? locate(keyPath, problem) : undefined;
  }));
  return issues.filter((issue): issue is ConfigIssue => issue !== undefined);
}

async function unreadableTlsFiles(config: GatewayConfig, locate: Locate): Promise<ConfigIssue[]> {
  const checks: Promise<ConfigIssue | undefined>[] = [];
  config.sites.forEach((site, index) => {
    const tls = site.tls;
    if (tls.source === "acme" && tls.caFile !== undefined) {
      const keyPath = ["sites", index, "tls", "caFile"];
      checks.push(fileProblem(tls.caFile).then((problem) => (problem ? locate(keyPath, problem) : undefined)));
    }
    if (tls.source !== "files") return;
    for (const key of ["cert", "key"] as const) {
      const keyPath = ["sites", index, "tls", key];
      checks.push(fileProblem(tls[key]).then((problem) => (problem ? locate(keyPath, problem) : undefined)));
    }
  });
  const issues = await Promise.all(checks);
  return sortByPosition(issues.filter((issue): issue is ConfigIssue => issue !== undefined));
}

async function fileProblem(file: string): Promise<string | undefined> {
  try {
    if (!(await stat(file)).isFile()) return `not a file: ${file}`;
    await access(file, constants.R_OK);
    return undefined;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return code === "ENOENT" ? `file not found: ${file}` : `file not readable (${code ?? String(error)}): ${file}`;
  }
}
