// HTML built only through the `html` tagged template: every interpolated value is escaped unless it is
// already Html (the output of another `html` call). Repository names, tags, labels and history lines come
// from whoever pushed the image, so a value that reached a page unescaped would be script on this origin.

const HTML_BRAND = Symbol("html");

/** Markup that is safe to emit as is: only `html` (and `join` of Html) make these. */
export interface Html {
  readonly [HTML_BRAND]: true;
  readonly text: string;
}

/** What a template may interpolate: strings and numbers are escaped, null/undefined/false render nothing. */
export type HtmlValue = Html | string | number | null | undefined | false | readonly HtmlValue[];

const ESCAPES: Record<string, string> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&#39;",
};

/** Escapes text for element content and for quoted attribute values alike. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c] as string);
}

function trusted(text: string): Html {
  return { [HTML_BRAND]: true, text };
}

function isHtml(value: unknown): value is Html {
  return typeof value === "object" && value !== null && HTML_BRAND in value;
}

function render(value: HtmlValue): string {
  if (value === null || value === undefined || value === false) return "";
  if (isHtml(value)) return value.text;
  if (Array.isArray(value)) return value.map(render).join("");
  return escapeHtml(String(value));
}

/** The tagged template: literal parts are markup written here, interpolations are data. */
export function html(strings: TemplateStringsArray, ...values: HtmlValue[]): Html {
  let out = strings[0] ?? "";
  values.forEach((value, i) => {
    out += render(value) + (strings[i + 1] ?? "");
  });
  return trusted(out);
}

/** Several fragments as one, with an optional separator (itself escaped unless Html). */
export function join(parts: readonly HtmlValue[], separator: HtmlValue = ""): Html {
  return trusted(parts.map(render).join(render(separator)));
}
