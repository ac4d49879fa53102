// The resolve hook of trace-imports.mjs: bare specifiers (packages), not files or node: builtins.
import { appendFileSync } from "node:fs";

export async function resolve(specifier, context, next) {
  const file = process.env.GAFFER_TEST_IMPORTS;
  const bare = !specifier.startsWith(".") && !specifier.startsWith("/") && !/^[a-z]+:/.test(specifier);
  if (file && bare) appendFileSync(file, `${specifier}\n`);
  return next(specifier, context);
}
