// `registry-gateway passwd FILE USER`: adds or updates one bcrypt line, so nobody needs apache2-utils or a
// registry image to manage users. Other lines (users, comments, even ones the gateway would refuse) are
// kept byte for byte; the file is replaced atomically (the running gateway sees one consistent edit) with
// mode 0600.
import { readFile } from "node:fs/promises";
import bcrypt from "bcryptjs";
import { writeFileAtomically } from "../util/atomic-write.js";

export const DEFAULT_BCRYPT_COST = 10;

export function userNameProblem(user: string): string | null {
  if (user === "") return "the user name is empty";
  if (user.includes(":")) return "the user name must not contain ':'";
  if (/\s/.test(user)) return "the user name must not contain white space";
  return null;
}

/** Returns whether the user was added (true) or updated (false). */
export async function setPassword(file: string, user: string, password: string, cost = DEFAULT_BCRYPT_COST): Promise<boolean> {
  const problem = userNameProblem(user);
  if (problem) throw new Error(problem);
  if (password === "") throw new Error("the password is empty");
  // bcryptjs writes $2b$; htpasswd -B writes $2y$. Same algorithm: $2y$ is what every reader of htpasswd files knows.
  const hash = (await bcrypt.hash(password, cost)).replace(/^\$2b\$/, "$2y$");
  const existing = await readFile(file, "utf8").catch((err: NodeJS.ErrnoException) => {
    if (err.code === "ENOENT") return "";
    throw err;
  });
  const lines = existing === "" ? [] : existing.replace(/\r?\n$/, "").split(/\n/);
  const index = lines.findIndex((line) => line.startsWith(`${user}:`));
  const entry = `${user}:${hash}`;
  if (index >= 0) lines[index] = entry;
  else lines.push(entry);
  await writeFileAtomically(file, `${lines.join("\n")}\n`, 0o600);
  return index < 0;
}

/** Reads a password from stdin: everything, minus one final line break (`echo pw | … --password-stdin`). */
export async function passwordFromStdin(stdin: NodeJS.ReadableStream): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stdin) chunks.push(typeof chunk === "string" ? Buffer.from(chunk) : (chunk as Buffer));
  return Buffer.concat(chunks).toString("utf8").replace(/\r?\n$/, "");
}

/** Prompts on stderr and reads a line from a terminal without echoing it. */
export function promptHidden(prompt: string, stdin: NodeJS.ReadStream, stderr: NodeJS.WriteStream): Promise<string> {
  return new Promise((resolve, reject) => {
    stderr.write(prompt);
    let value = "";
    stdin.setRawMode(true);
    stdin.resume();
    stdin.setEncoding("utf8");
    const done = (error?: Error) => {
      stdin.setRawMode(false);
      stdin.pause();
      stdin.removeListener("data", onData);
      stderr.write("\n");
      if (error) reject(error);
      else resolve(value);
    };
    const onData = (text: string) => {
      for (const char of text) {
        if (char === "\r" || char === "\n") return done();
        if (char === "\u0003") return done(new Error("interrupted"));
        if (char === "\u0004") return done(value === "" ? new Error("no password given") : undefined);
        if (char === "\u007f" || char === "\b") value = value.slice(0, -1);
        else value += char;
      }
    };
    stdin.on("data", onData);
  });
}
