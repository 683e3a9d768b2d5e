// The registry browser's CSS and JavaScript, built at build time under hashed names so they can be cached
// for a year: a new build has new names. This first version serves empty assets; the build step replaces it.

export interface WebAsset {
  body: Buffer;
  contentType: string;
}

export interface WebAssets {
  /** The URLs pages link to, e.g. `/assets/app.3f9a1c2e.css`. */
  urls: { css: string; js: string };
  /** The asset at a URL path (`/assets/…`), or undefined: unknown names are a 404. */
  lookup(path: string): WebAsset | undefined;
}

export function loadWebAssets(): WebAssets {
  const css: WebAsset = { body: Buffer.alloc(0), contentType: "text/css; charset=utf-8" };
  const js: WebAsset = { body: Buffer.alloc(0), contentType: "text/javascript; charset=utf-8" };
  const byPath = new Map([
    ["/assets/app.0.css", css],
    ["/assets/app.0.js", js],
  ]);
  return { urls: { css: "/assets/app.0.css", js: "/assets/app.0.js" }, lookup: (path) => byPath.get(path) };
}
