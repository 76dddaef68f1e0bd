// Parses an AsyncAPI document with the official parser (@asyncapi/parser, the one the AsyncAPI
// CLI and Studio use) and prints its diagnostics as one JSON array on stdout:
//   [{"severity": "error", "code": "...", "message": "...", "path": ["channels", ...]}, ...]
// Exit status: 0 when the parser returned a document (there may still be warnings), 1 when it
// did not (at least one error), 2 on a usage or I/O problem.
//
//   node tests/tools/asyncapi/validate.mjs path/to/asyncapi.yaml
import { readFile } from "node:fs/promises";
import { Parser } from "@asyncapi/parser";

// Spectral's DiagnosticSeverity: Error 0, Warning 1, Information 2, Hint 3.
const SEVERITY = ["error", "warning", "information", "hint"];

const path = process.argv[2];
if (!path) {
  process.stderr.write("usage: node validate.mjs ASYNCAPI_FILE\n");
  process.exit(2);
}
let text;
try {
  text = await readFile(path, "utf8");
} catch (error) {
  process.stderr.write(`cannot read ${path}: ${error.message}\n`);
  process.exit(2);
}

const { document, diagnostics } = await new Parser().parse(text, { source: path });
const report = diagnostics.map((diagnostic) => ({
  severity: SEVERITY[diagnostic.severity] ?? String(diagnostic.severity),
  code: String(diagnostic.code),
  message: diagnostic.message,
  path: diagnostic.path,
}));
process.stdout.write(JSON.stringify(report) + "\n");
process.exit(document === undefined ? 1 : 0);
