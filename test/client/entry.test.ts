// The ./client entry of the package: declared in `exports`, and light: at run time it loads
// only Node's own modules and its own files (types from the master's zod schemas, no zod).
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

describe("gaffer/client entry", () => {
  it("is the package's ./client export, with its own types", () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { exports: Record<string, unknown> };
    expect(pkg.exports["./client"]).toEqual({ types: "./dist/client/index.d.ts", default: "./dist/client/index.js" });
  });

  it("imports nothing at run time but node: modules and client/ files", () => {
    const dir = join(ROOT, "client");
    const runtime: string[] = [];
    for (const file of readdirSync(dir).filter((name) => name.endsWith(".ts"))) {
      const source = readFileSync(join(dir, file), "utf8");
      for (const match of source.matchAll(/^(import|export)(?! type)[^;]*? from "([^"]+)";/gms)) {
        const from = match[2] ?? "";
        if (!from.startsWith("node:") && !from.startsWith("./")) runtime.push(`${file}: ${from}`);
      }
    }
    expect(runtime).toEqual([]);
  });
});
