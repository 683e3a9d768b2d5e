// A strict reader of the HTML the registry browser's views write: it accepts only what those views mean to
// produce (every attribute quoted, every non-void element closed in order, entities well formed), so an
// escaping slip or a broken template shows up as an error instead of being repaired the way browsers do.

export interface Element {
  name: string;
  attrs: Map<string, string>;
  /** The decoded text inside the element (descendants included). */
  text: string;
}

export interface ParsedHtml {
  errors: string[];
  elements: Element[];
}

const VOID = new Set(["area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"]);
const ENTITIES: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', "#39": "'" };
const START_TAG = /^<([a-zA-Z][a-zA-Z0-9-]*)((?:\s+[a-zA-Z_:][-a-zA-Z0-9_:.]*(?:="[^"]*")?)*)\s*(\/?)>/;
const END_TAG = /^<\/([a-zA-Z][a-zA-Z0-9-]*)\s*>/;
const ATTR = /\s+([a-zA-Z_:][-a-zA-Z0-9_:.]*)(?:="([^"]*)")?/g;

export function decodeEntities(text: string): string {
  return text.replace(/&(#?\w+);/g, (whole, name: string) => ENTITIES[name] ?? whole);
}

function parseAttrs(source: string, errors: string[], where: number): Map<string, string> {
  const attrs = new Map<string, string>();
  for (const [, name, value] of source.matchAll(ATTR)) {
    const key = (name as string).toLowerCase();
    if (attrs.has(key)) errors.push(`duplicate attribute ${key} at ${where}`);
    if (value !== undefined && /[<>]/.test(value)) errors.push(`unescaped < or > in attribute ${key} at ${where}`);
    attrs.set(key, decodeEntities(value ?? ""));
  }
  return attrs;
}

function checkText(text: string, at: number, errors: string[]): void {
  for (const match of text.matchAll(/&/g)) {
    const rest = text.slice(match.index);
    if (!/^&(amp|lt|gt|quot|#39|#\d+|#x[0-9a-fA-F]+);/.test(rest)) errors.push(`bare & at ${at + match.index}`);
  }
  if (text.includes(">")) errors.push(`bare > in text at ${at}`);
}

interface Open {
  element: Element;
  start: number;
}

/** Reads a whole document; `errors` is empty when it is well formed. */
export function parseHtml(source: string): ParsedHtml {
  const errors: string[] = [];
  const elements: Element[] = [];
  const stack: Open[] = [];
  const ids = new Set<string>();
  let i = 0;
  if (!/^<!doctype html>/i.test(source)) errors.push("no <!doctype html> first");
  else i = "<!doctype html>".length;
  const addText = (text: string) => {
    const decoded = decodeEntities(text);
    for (const open of stack) open.element.text += decoded;
  };
  while (i < source.length) {
    const lt = source.indexOf("<", i);
    const text = source.slice(i, lt < 0 ? source.length : lt);
    checkText(text, i, errors);
    addText(text);
    if (lt < 0) break;
    const rest = source.slice(lt);
    const end = END_TAG.exec(rest);
    const start = end ? null : START_TAG.exec(rest);
    if (end) {
      const name = (end[1] as string).toLowerCase();
      const open = stack.pop();
      if (!open || open.element.name !== name) errors.push(`</${name}> at ${lt} closes <${open?.element.name ?? "nothing"}>`);
      i = lt + end[0].length;
    } else if (start) {
      const name = (start[1] as string).toLowerCase();
      const element: Element = { name, attrs: parseAttrs(start[2] as string, errors, lt), text: "" };
      elements.push(element);
      const id = element.attrs.get("id");
      if (id !== undefined) {
        if (ids.has(id)) errors.push(`duplicate id ${id}`);
        ids.add(id);
      }
      const inSvg = stack.some((open) => open.element.name === "svg");
      if (name === "form" && stack.some((open) => open.element.name === "form")) errors.push(`nested form at ${lt}`);
      if (start[3] === "/" && !inSvg && !VOID.has(name)) errors.push(`self-closed <${name}> at ${lt}`);
      if (!VOID.has(name) && start[3] !== "/") stack.push({ element, start: lt });
      i = lt + start[0].length;
    } else {
      errors.push(`stray < at ${lt}: ${JSON.stringify(rest.slice(0, 30))}`);
      addText("<");
      i = lt + 1;
    }
  }
  for (const open of stack) errors.push(`<${open.element.name}> at ${open.start} never closed`);
  return { errors, elements };
}

export function elementsNamed(parsed: ParsedHtml, name: string): Element[] {
  return parsed.elements.filter((element) => element.name === name);
}
