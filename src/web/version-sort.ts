// Tags in the order people look for them: `latest`, then versions newest first (v1.10 before v1.9, a
// release before its release candidates), then every other tag by name.

interface Version {
  /** Numeric parts without leading zeros, compared as digit strings so no length overflows a number. */
  numbers: string[];
  /** What follows a '-' (`rc1`, `beta.2`), "" for a release, as natural-order parts. */
  prerelease: string[];
}

/** A tag read once for sorting: a list of 100 000 tags is compared about 1.7 million times. */
interface SortKey {
  tag: string;
  version: Version | null;
  natural: string[];
}

/** Runs of digits (leading zeros dropped, so they compare as numbers) and runs of other characters. */
function naturalParts(text: string): string[] {
  return (text.match(/\d+|\D+/g) ?? []).map((part) => part.replace(/^0+(?=\d)/, ""));
}

/** `1`, `v1.2`, `1.2.3-rc.1`, `2024.01.05`; null for a tag that is not a version (`main`, `sha-1f2e`). */
function parseVersion(tag: string): Version | null {
  const match = /^[vV]?(\d+(?:\.\d+)*)(?:-([0-9A-Za-z][0-9A-Za-z.-]*))?$/.exec(tag);
  if (!match) return null;
  const numbers = (match[1] as string).split(".").map((n) => n.replace(/^0+(?=\d)/, ""));
  return { numbers, prerelease: naturalParts(match[2] ?? "") };
}

function keyOf(tag: string): SortKey {
  return { tag, version: parseVersion(tag), natural: naturalParts(tag) };
}

function compareDigits(a: string, b: string): number {
  return a.length !== b.length ? a.length - b.length : a < b ? -1 : a > b ? 1 : 0;
}

const isDigit = (part: string) => part.charCodeAt(0) >= 48 && part.charCodeAt(0) <= 57;

/** Ascending natural order: runs of digits compare as numbers (rc9 < rc10), the rest as text. */
function compareNatural(partsA: readonly string[], partsB: readonly string[]): number {
  for (let i = 0; i < Math.min(partsA.length, partsB.length); i++) {
    const x = partsA[i] as string;
    const y = partsB[i] as string;
    const order = isDigit(x) && isDigit(y) ? compareDigits(x, y) : x < y ? -1 : x > y ? 1 : 0;
    if (order !== 0) return order;
  }
  return partsA.length - partsB.length;
}

/** Ascending: 1.2 = 1.2.0 < 1.2.1; a prerelease before its release. */
function compareVersions(a: Version, b: Version): number {
  for (let i = 0; i < Math.max(a.numbers.length, b.numbers.length); i++) {
    const order = compareDigits(a.numbers[i] ?? "0", b.numbers[i] ?? "0");
    if (order !== 0) return order;
  }
  if (a.prerelease.length === 0 || b.prerelease.length === 0) return (a.prerelease.length === 0 ? 1 : 0) - (b.prerelease.length === 0 ? 1 : 0);
  return compareNatural(a.prerelease, b.prerelease);
}

function compareKeys(a: SortKey, b: SortKey): number {
  if (a.tag === b.tag) return 0;
  if (a.tag === "latest" || b.tag === "latest") return a.tag === "latest" ? -1 : 1;
  const { version: va } = a;
  const { version: vb } = b;
  if (va && vb) {
    const order = compareVersions(vb, va);
    // Equal versions spelt differently (v1.0, 1.0, 1.0.0) still need one order, or sorting is unstable.
    return order !== 0 ? order : compareNatural(a.natural, b.natural) || (a.tag < b.tag ? -1 : 1);
  }
  if (va || vb) return va ? -1 : 1;
  return compareNatural(a.natural, b.natural) || (a.tag < b.tag ? -1 : 1);
}

/** For `Array.prototype.sort`: `latest`, versions newest first, then other tags by name. */
export function compareVersionsNewestFirst(a: string, b: string): number {
  return compareKeys(keyOf(a), keyOf(b));
}

/** `tags` in compareVersionsNewestFirst's order, each tag read once rather than at every comparison. */
export function sortVersionsNewestFirst(tags: readonly string[]): string[] {
  return tags
    .map(keyOf)
    .sort(compareKeys)
    .map((key) => key.tag);
}
