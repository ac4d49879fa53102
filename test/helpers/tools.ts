// Programs some tests drive (Debian's chromium, the sqlite3 CLI). On a fresh machine with only
// Node and npm those tests are skipped with one loud line each, so that `npm test` passes;
// CI (.ci/run) installs the programs and sets GAFFER_REQUIRE_TOOLS=1, and there a missing
// program fails the run instead.
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";

function present(program: string): boolean {
  if (program.includes("/")) return existsSync(program);
  try {
    execFileSync(program, ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/** Whether `program` (a path or a command on PATH) is here; says loudly what is skipped if not. */
export function haveTool(program: string, skipped: string, install: string): boolean {
  if (present(program)) return true;
  const message = `no ${program}: ${install}`;
  if (process.env.GAFFER_REQUIRE_TOOLS === "1") throw new Error(`${message} (GAFFER_REQUIRE_TOOLS=1 makes it required)`);
  process.stderr.write(`\n*** SKIPPED ${skipped}: ${message} ***\n\n`);
  return false;
}

export const HAVE_SQLITE3 = (skipped: string) => haveTool("sqlite3", skipped, "install Debian's sqlite3 (apt-get install sqlite3)");
