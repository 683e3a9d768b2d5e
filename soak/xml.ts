// Text that goes into SVG/XML: fault names and details come from the run (process ids, signal names, file
// paths), so every character with meaning in markup is escaped before it is written.

const entities: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&apos;" };

/** Escapes text for XML element content and attribute values alike. Control characters XML 1.0 forbids are
 *  dropped, since a single one makes the whole file unreadable. */
export function escapeXml(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f]/g, "").replace(/[&<>"']/g, (c) => entities[c] ?? c);
}
