// The command line loads what a command needs and no more: a command that talks to a master
// over HTTP (most of them) starts without the master's code (Express, the stores, zod, pino),
// whose loading took most of each command's time. Packages are traced with a module hook.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { runGaffer, stopAll } from "../helpers/processes.js";
import { removeTempDirs, tempDir } from "../helpers/temp.js";

const HOOK = pathToFileURL(join(import.meta.dirname, "..", "helpers", "trace-imports.mjs")).href;

afterAll(async () => {
  await stopAll();
  removeTempDirs();
});

/** The packages a gaffer command imported, sorted, each once. */
async function packagesOf(args: string[], env: Record<string, string> = {}): Promise<{ code: number | string; packages: string[] }> {
  const file = join(tempDir(), "imports.txt");
  const { code } = await runGaffer(args, { ...env, NODE_OPTIONS: `--import=${HOOK}`, GAFFER_TEST_IMPORTS: file });
  let names: string[] = [];
  try {
    names = readFileSync(file, "utf8").split("\n").filter(Boolean);
  } catch {
    // no package imported at all
  }
  return { code, packages: [...new Set(names.map((name) => name.split("/")[0] ?? name))].sort() };
}

describe("the command line's start", () => {
  const remote = { GAFFER_MASTER_URL: "http://127.0.0.1:9", GAFFER_CLIENT_ID: "nobody", GAFFER_CLIENT_SECRET: "nothing" };

  it.each([
    [["--version"]],
    [["--help"]],
    [["master", "start", "--help"]],
    [["dev", "--help"]],
    [["migrate", "--help"]],
    [["backup", "--help"]],
    [["jobs", "list"]],
    [["jobs", "submit", "--type", "x"]],
    [["nodes", "list"]],
    [["schedules", "list"]],
    [["types", "list"]],
    [["clients", "list"]],
    [["stats"]],
    [["worker", "start", "--help"]],
  ])("gaffer %j imports commander and nothing of the master's", async (args) => {
    expect((await packagesOf(args, remote)).packages).toEqual(["commander"]);
  });

  it("loads the store for a command that opens the database (the trace sees what is imported)", async () => {
    const db = join(tempDir(), "startup.db");
    const migrate = await packagesOf(["migrate", "--db", db, "--json"]);
    expect(migrate.code).toBe(0);
    expect(migrate.packages).toEqual(expect.arrayContaining(["better-sqlite3", "commander", "kysely", "zod"]));
  });
});
