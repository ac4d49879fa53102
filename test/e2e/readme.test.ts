// The README never lies: every sqlite3 query in it runs against a real master's database, and
// its "From code" program runs against a real master and worker (gaffer dev).
import { execFile, execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { MasterInternals } from "../../master/index.js";
import { http, startTestMaster } from "../helpers/master.js";
import { spawnGaffer, stopAll, waitForOutput } from "../helpers/processes.js";
import { removeTempDirs, tempDir } from "../helpers/temp.js";
import { HAVE_SQLITE3 } from "../helpers/tools.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const README = readFileSync(join(ROOT, "README.md"), "utf8");

/** The `sqlite3 data/gaffer.db "…"` lines of the README. */
const queries = [...README.matchAll(/^sqlite3 data\/gaffer\.db "(.+)"$/gm)].map((match) => match[1] ?? "");

let master: MasterInternals;
let db: string;

beforeAll(async () => {
  db = join(tempDir(), "gaffer.db");
  master = await startTestMaster({ db, maxRetries: 1, retryDelayS: 0 });
  // Some state for every query to show: a node, jobs that ran, failed, were retried and wait.
  const node = await http(master.url, "POST", "/api/v1/nodes", { name: "readme-node", capacity: 5 });
  const nodeId = String(node.body.id);
  await http(master.url, "POST", "/api/v1/jobs/batch", { jobs: [{ type: "a" }, { type: "b", priority: "live" }, { type: "c" }] });
  const claimed = await http<{ items: { id: string; attempt: number }[] }>(master.url, "POST", `/api/v1/nodes/${nodeId}/claim`, { max: 2 });
  const [first, second] = claimed.body.items;
  if (!first || !second) throw new Error("claimed too few");
  await http(master.url, "POST", `/api/v1/jobs/${first.id}/fail`, { node_id: nodeId, attempt: first.attempt, error: { message: "disk full" } });
  await http(master.url, "POST", `/api/v1/jobs/${second.id}/complete`, { node_id: nodeId, attempt: second.attempt, result: {} });
  await http(master.url, "POST", "/api/v1/jobs", { type: "waiting" });
});

afterAll(async () => {
  await master.close();
  removeTempDirs();
});

describe("README: Debugging with sqlite3", () => {
  it("has the queries of the contract", () => {
    expect(queries).toContain("SELECT name, status, last_heartbeat FROM nodes;");
    expect(queries).toContain("SELECT id, status, retry_count FROM jobs WHERE retry_count > 0;");
    expect(queries).toContain("SELECT client_id, expires_at FROM auth_tokens;");
    expect(queries).toContain("SELECT event_type, entity_id, created_at FROM audit_log ORDER BY created_at DESC LIMIT 10;");
    expect(queries.length).toBeGreaterThanOrEqual(8);
  });

  const cli = HAVE_SQLITE3("the README's sqlite3 queries");
  it.runIf(cli).each(queries)("runs with the sqlite3 CLI while the master runs: %s", (query) => {
    const output = execFileSync("sqlite3", ["-bail", db, query], { encoding: "utf8" });
    if (/FROM (nodes|audit_log|schema_migrations|client_job_counts)|retry_count > 0|status = 'pending'/.test(query)) {
      expect(output.trim().length).toBeGreaterThan(0);
    }
    expect(output).not.toMatch(/Error/);
  });

  it.runIf(cli)("shows readable words and timestamps", () => {
    const output = execFileSync("sqlite3", [db, "SELECT name, status, last_heartbeat FROM nodes;"], { encoding: "utf8" });
    expect(output).toMatch(/^readme-node\|online\|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/m);
  });
});

describe("README: From code", () => {
  const section = README.slice(README.indexOf("## From code"), README.indexOf("\n## ", README.indexOf("## From code") + 1));
  /** Its ```js blocks: the program, then the list loop that goes on from it. */
  const blocks = [...section.matchAll(/^```js\n([\s\S]*?)^```$/gm)].map((match) => match[1] ?? "");

  it("runs its program with node against gaffer dev: submits, waits for the result, catches a GafferError", async () => {
    expect(blocks).toHaveLength(2);
    expect(blocks[0]).toContain('from "gaffer/client"');
    const dir = tempDir();
    const dev = spawnGaffer(["dev", "--db", join(dir, "gaffer.db"), "--port", "0"]);
    // Inside the repository, so that "gaffer/client" resolves to its own dist/ as the README says.
    const scriptDir = join(ROOT, "test-output", `readme-${process.pid}`);
    try {
      await waitForOutput(dev, /"event":"dev.ready"/);
      const env = Object.fromEntries(
        readFileSync(join(dir, "credentials.env"), "utf8")
          .split("\n")
          .filter((line) => /^[A-Z_]+=/.test(line))
          .map((line) => [line.slice(0, line.indexOf("=")), line.slice(line.indexOf("=") + 1)]),
      );
      mkdirSync(scriptDir, { recursive: true });
      writeFileSync(join(scriptDir, "submit.mjs"), blocks.join("\n"));
      const output = await new Promise<string>((resolve, reject) =>
        execFile(process.execPath, ["submit.mjs"], { cwd: scriptDir, env: { PATH: process.env.PATH, ...env }, timeout: 30_000 }, (error, stdout, stderr) =>
          error ? reject(new Error(`${error.message}\n${stdout}${stderr}`)) : resolve(stdout),
        ),
      );
      expect(output).toMatch(/^submitted \S+ \(pending\)$/m);
      expect(output).toMatch(/^completed: \{"echo":\{"hello":"code"\}.*\}$/m);
      expect(output).toMatch(/^refused: 404 not_found: /m);
    } finally {
      rmSync(scriptDir, { recursive: true, force: true });
      await stopAll();
    }
  });
});
