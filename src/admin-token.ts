// The credential of the admin listener's actions (POST /reload, /cert/rotate): a bearer token. Every local
// process can connect to a loopback port, so the port alone would let any local user reload the gateway or
// make it order certificates from the CA at every call.
//
// Where it comes from: admin.token (GATEWAY_ADMIN_TOKEN in the environment sets it like any key), else the
// file admin.tokenFile, else a random one the gateway writes at start into DATADIR/admin/token (directory
// 0700, file 0600), so a fresh install is safe. The CLI reads the same configuration, environment and file,
// so `reload` and `cert rotate` run as the gateway's user need nothing more.
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { readFile, stat } from "node:fs/promises";
import path from "node:path";
import { parseAuthorization } from "./auth/credentials.js";
import { ADMIN_TOKEN_PATTERN } from "./config/rules.js";
import type { GatewayConfig } from "./config/schema.js";
import type { Logger } from "./observe/log.js";
import { ensurePrivateDir, withDataDirLock } from "./tls/selfsigned.js";
import { writeFileAtomically } from "./util/atomic-write.js";

const PRIVATE_FILE = 0o600;

type AdminConfig = Pick<GatewayConfig, "admin" | "dataDir">;

export function generatedAdminTokenPath(dataDir: string): string {
  return path.join(dataDir, "admin", "token");
}

/** Where the token is read from, for messages: never the token itself. */
export function adminTokenSource(config: AdminConfig): string {
  if (config.admin.token !== undefined) return "admin.token (or GATEWAY_ADMIN_TOKEN)";
  return config.admin.tokenFile ?? generatedAdminTokenPath(config.dataDir);
}

/** The token the admin listener demands; generated when none is configured. Throws what stops the start. */
export async function loadAdminToken(config: AdminConfig, logger: Logger): Promise<AdminCredential> {
  const { token, tokenFile } = config.admin;
  if (token !== undefined) return new AdminCredential(token);
  if (tokenFile !== undefined) {
    const info = await stat(tokenFile);
    // Operators may hand the file over through a secret mount whose mode they do not choose: say it, go on.
    if ((info.mode & 0o077) !== 0) logger.warn({ tokenFile }, "the admin token file is readable by other users: chmod 600 it");
    return new AdminCredential(parseTokenFile(await readFile(tokenFile, "utf8"), tokenFile));
  }
  const file = generatedAdminTokenPath(config.dataDir);
  const generated = await withDataDirLock(config.dataDir, async () => {
    await ensurePrivateDir(path.dirname(file));
    const kept = await ownPrivateToken(file);
    if (kept !== null) return kept;
    const fresh = randomBytes(32).toString("base64url");
    await writeFileAtomically(file, `${fresh}\n`, PRIVATE_FILE);
    return fresh;
  });
  logger.info({ tokenFile: file }, "admin actions (POST) need the bearer token in tokenFile; `reload` and `cert rotate` read it themselves");
  return new AdminCredential(generated);
}

/**
 * The token a client should send, or why it has none. Never creates one: a gateway that never started with
 * this data directory has none to match.
 */
export async function readAdminToken(config: AdminConfig): Promise<{ token: string } | { problem: string }> {
  if (config.admin.token !== undefined) return { token: config.admin.token };
  const file = adminTokenSource(config);
  try {
    return { token: parseTokenFile(await readFile(file, "utf8"), file) };
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return { problem: `${file} does not exist: no gateway has started with this configuration` };
    if (code === "EACCES") return { problem: `${file} is not readable by this user (run the command as the gateway's user, or set admin.tokenFile or GATEWAY_ADMIN_TOKEN)` };
    return { problem: (error as Error).message };
  }
}

/** The expected token, compared in constant time: only its digest is kept, so lengths never leak either. */
export class AdminCredential {
  readonly #digest: Buffer;

  constructor(token: string) {
    this.#digest = digest(token);
  }

  /** Whether the Authorization header carries the token as a Bearer credential. */
  accepts(authorization: string | undefined): boolean {
    const credentials = parseAuthorization(authorization);
    // Digest anyway, so a missing or malformed credential costs what a wrong one does.
    const given = digest(credentials.kind === "bearer" ? credentials.token : "");
    return timingSafeEqual(given, this.#digest) && credentials.kind === "bearer";
  }
}

function digest(token: string): Buffer {
  return createHash("sha256").update(token).digest();
}

function parseTokenFile(text: string, file: string): string {
  const token = text.trim();
  if (!ADMIN_TOKEN_PATTERN.test(token)) throw new Error(`${file}: expected one line of at least 16 characters of A-Z a-z 0-9 - . _ ~ + /`);
  return token;
}

/**
 * The generated token of an earlier start, when only this user could ever have read it. A file another user
 * owns, or one readable by others, is replaced: its token may be known.
 */
async function ownPrivateToken(file: string): Promise<string | null> {
  try {
    const info = await stat(file);
    if (!info.isFile() || (info.mode & 0o077) !== 0 || info.uid !== process.getuid?.()) return null;
    return parseTokenFile(await readFile(file, "utf8"), file);
  } catch {
    return null;
  }
}
