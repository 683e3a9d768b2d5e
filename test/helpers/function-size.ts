// The functions of a TypeScript source and how many lines each spans (function-size.test.ts).
import ts from "typescript";

export interface FunctionSize {
  /** `name` for declarations and methods, `name (arrow)` for a function assigned to a name, else `<anonymous>`. */
  name: string;
  /** 1-based line of the function's first line. */
  line: number;
  /** Lines from the first to the last, both included (with the comments and blank lines inside). */
  lines: number;
}

function nameOf(node: ts.FunctionLikeDeclaration): string {
  if (ts.isConstructorDeclaration(node)) return "constructor";
  if (node.name) return node.name.getText();
  const parent = node.parent;
  if ((ts.isVariableDeclaration(parent) || ts.isPropertyDeclaration(parent) || ts.isPropertyAssignment(parent)) && parent.name) {
    return parent.name.getText();
  }
  return "<anonymous>";
}

/** Every function, method, accessor, constructor and arrow in `text`, nested ones too. */
export function functionSizes(file: string, text: string): FunctionSize[] {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const sizes: FunctionSize[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isFunctionLike(node) && "body" in node && node.body) {
      const first = source.getLineAndCharacterOfPosition(node.getStart(source)).line;
      const last = source.getLineAndCharacterOfPosition(node.getEnd()).line;
      sizes.push({ name: nameOf(node as ts.FunctionLikeDeclaration), line: first + 1, lines: last - first + 1 });
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return sizes;
}
