// Replacing a file so that a reader sees the old content or the new, never a partial write, and a crash
// right after leaves the new content on disk (fsync before the rename). The temporary file is created
// exclusively (O_EXCL) next to the target: a file someone planted under that name is never written through,
// and it gets exactly `mode` (open's mode is filtered by the umask), so a secret is never readable by others.
import { randomBytes } from "node:crypto";
import { open, rename, rm } from "node:fs/promises";

export async function writeFileAtomically(file: string, content: string, mode: number): Promise<void> {
  const temporary = `${file}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`;
  try {
    const handle = await open(temporary, "wx", mode);
    try {
      await handle.writeFile(content);
      await handle.chmod(mode);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temporary, file);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
}
