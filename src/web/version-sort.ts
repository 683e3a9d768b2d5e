// Stand-in ordering for tag lists until the real version comparator is merged: numeric-aware, newest first.
const collator = new Intl.Collator("en", { numeric: true });

export function compareVersionsNewestFirst(a: string, b: string): number {
  return collator.compare(b, a);
}
