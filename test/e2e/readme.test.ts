// The README never lies: every sqlite3 query in it runs against a real master's database.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { MasterInternals } from "../../master/index.js";
import { http, startTestMaster } from "../helpers/master.js";
import { removeTempDirs, tempDir } from "../helpers/temp.js";
import { HAVE_SQLITE3 } from "../helpers/tools.js";

const README = readFileSync(join(fileURLToPath(new URL("../..", import.meta.url)), "README.md"), "utf8");

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
