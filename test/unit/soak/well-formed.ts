// A strict-enough XML well-formedness check for the SVG the report writes (no XML parser is among the
// project's dependencies): tags nest and close, attributes are quoted, and text holds no raw `<` or a `&`
// that does not start an entity.

const entity = /&(?:amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);/y;

function checkText(text: string, where: string): void {
  for (let i = text.indexOf("&"); i !== -1; i = text.indexOf("&", i + 1)) {
    entity.lastIndex = i;
    if (!entity.test(text)) throw new Error(`bare & in ${where}: ${text.slice(i, i + 20)}`);
  }
  if (text.includes("<") || text.includes(">")) throw new Error(`raw < or > in ${where}: ${text}`);
}

function checkAttributes(source: string, tag: string): void {
  const attribute = /\s+([A-Za-z_:][-\w:.]*)="([^"]*)"/gy;
  let end = 0;
  for (let match = attribute.exec(source); match; match = attribute.exec(source)) {
    checkText(match[2]!, `attribute ${match[1]} of <${tag}>`);
    end = attribute.lastIndex;
  }
  if (source.slice(end).trim() !== "") throw new Error(`malformed attributes in <${tag}>: ${source}`);
}

/** Throws with the first problem found; returns the root element's name. */
export function assertWellFormedXml(xml: string): string {
  const tag = /<(\/?)([A-Za-z_][-\w:.]*)([^>]*?)(\/?)>/g;
  const open: string[] = [];
  let root = "";
  let last = 0;
  for (let match = tag.exec(xml); match; match = tag.exec(xml)) {
    checkText(xml.slice(last, match.index), "text");
    last = tag.lastIndex;
    const [, closing, name, attributes, selfClosing] = match as unknown as [string, string, string, string, string];
    if (closing) {
      if (open.pop() !== name) throw new Error(`</${name}> closes nothing open`);
      continue;
    }
    checkAttributes(attributes, name);
    if (open.length === 0 && root !== "") throw new Error(`second root element <${name}>`);
    if (root === "") root = name;
    if (!selfClosing) open.push(name);
  }
  checkText(xml.slice(last), "trailing text");
  if (open.length > 0) throw new Error(`unclosed <${open.join(">, <")}>`);
  if (root === "") throw new Error("no element");
  return root;
}
