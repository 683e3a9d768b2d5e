// Tags in the order people look for them: `latest`, then versions newest first (v1.10 before v1.9, a
// release before its release candidates), then every other tag by name.

interface Version {
  /** Numeric parts without leading zeros, compared as digit strings so no length overflows a number. */
  numbers: string[];
  /** What follows a '-' (`rc1`, `beta.2`), "" for a release. */
  prerelease: string;
}

/** `1`, `v1.2`, `1.2.3-rc.1`, `2024.01.05`; null for a tag that is not a version (`main`, `sha-1f2e`). */
function parseVersion(tag: string): Version | null {
  const match = /^[vV]?(\d+(?:\.\d+)*)(?:-([0-9A-Za-z][0-9A-Za-z.-]*))?$/.exec(tag);
  if (!match) return null;
  const numbers = (match[1] as string).split(".").map((n) => n.replace(/^0+(?=\d)/, ""));
  return { numbers, prerelease: match[2] ?? "" };
}

function compareDigits(a: string, b: string): number {
  return a.length !== b.length ? a.length - b.length : a < b ? -1 : a > b ? 1 : 0;
}

/** Ascending natural order: runs of digits compare as numbers (rc9 < rc10), the rest as text. */
function compareNatural(a: string, b: string): number {
  const partsA = a.match(/\d+|\D+/g) ?? [];
  const partsB = b.match(/\d+|\D+/g) ?? [];
  for (let i = 0; i < Math.min(partsA.length, partsB.length); i++) {
    const x = partsA[i] as string;
    const y = partsB[i] as string;
    const numeric = /^\d/.test(x) && /^\d/.test(y);
    const order = numeric ? compareDigits(x.replace(/^0+(?=\d)/, ""), y.replace(/^0+(?=\d)/, "")) : x < y ? -1 : x > y ? 1 : 0;
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
  if (a.prerelease === "" || b.prerelease === "") return (a.prerelease === "" ? 1 : 0) - (b.prerelease === "" ? 1 : 0);
  return compareNatural(a.prerelease, b.prerelease);
}

/** For `Array.prototype.sort`: `latest`, versions newest first, then other tags by name. */
export function compareVersionsNewestFirst(a: string, b: string): number {
  if (a === b) return 0;
  if (a === "latest" || b === "latest") return a === "latest" ? -1 : 1;
  const va = parseVersion(a);
  const vb = parseVersion(b);
  if (va && vb) {
    const order = compareVersions(vb, va);
    // Equal versions spelt differently (v1.0, 1.0, 1.0.0) still need one order, or sorting is unstable.
    return order !== 0 ? order : compareNatural(a, b) || (a < b ? -1 : 1);
  }
  if (va || vb) return va ? -1 : 1;
  return compareNatural(a, b) || (a < b ? -1 : 1);
}
