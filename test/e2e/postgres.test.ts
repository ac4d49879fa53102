// The command line on PostgreSQL (API.md §12): migrate and create the first admin with
// --database-url, run two masters on one database as one cluster, and lose one to kill -9.
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { createTestDatabase, dropTestDatabase } from "../helpers/postgres.js";
import { writeHandlers } from "../helpers/handlers.js";
import { eventually, runGaffer, spawnMaster, spawnWorker, stopAll } from "../helpers/processes.js";
import { dialects } from "../helpers/store.js";
import { http } from "../helpers/master.js";
import { removeTempDirs, tempDir } from "../helpers/temp.js";

const havePostgres = dialects.some((dialect) => dialect.name === "postgres");

describe.runIf(havePostgres)("gaffer on PostgreSQL", () => {
  const databases: string[] = [];
  afterEach(async () => {
    await stopAll();
    removeTempDirs();
  });
  afterAll(async () => {
    for (const url of databases) await dropTestDatabase(url);
  });

  it("migrates, makes the first admin, and runs two masters that take over from each other", async () => {
    const url = await createTestDatabase();
    databases.push(url);
    const migrated = await runGaffer(["migrate", "--database-url", url]);
    expect(migrated.code, migrated.output).toBe(0);
    expect(migrated.output).toContain("applied 0001_init");
    const status = await runGaffer(["migrate", "--database-url", url, "--status", "--json"]);
    expect(JSON.parse(status.output)).toEqual([
      expect.objectContaining({ version: 1, name: "init", state: "applied" }),
      expect.objectContaining({ version: 2, name: "rate_limits", state: "applied" }),
      expect.objectContaining({ version: 3, name: "fair_share", state: "applied" }),
      expect.objectContaining({ version: 4, name: "count_per_statement", state: "applied" }),
      expect.objectContaining({ version: 5, name: "claim_without_row_checks", state: "applied" }),
      expect.objectContaining({ version: 6, name: "truncate_jobs", state: "applied" }),
      expect.objectContaining({ version: 7, name: "triggers_without_nested_loops", state: "applied" }),
      expect.objectContaining({ version: 8, name: "schedule_skips", state: "applied" }),
      expect.objectContaining({ version: 9, name: "running_jobs_index", state: "applied" }),
    ]);

    const made = await runGaffer(["clients", "create", "--database-url", url, "--name", "admin", "--role", "admin", "--json"]);
    expect(made.code, made.output).toBe(0);
    const admin = JSON.parse(made.output) as { id: string; client_secret: string };

    const env = { GAFFER_AUTH: "on", GAFFER_SWEEP_INTERVAL_S: "0.5" };
    const unused = join(tempDir(), "unused.db");
    const masters = [await spawnMaster(unused, env, ["--database-url", url]), await spawnMaster(unused, env, ["--database-url", url])];
    // The start line names the database, never its password.
    expect(masters[0]?.output()).toMatch(/"database":"postgres(ql)?:\/\/[^"]*\/gaffer_t_/);
    const login = await http<{ access_token: string }>(masters[0]?.url ?? "", "POST", "/api/v1/auth/token", { client_id: admin.id, client_secret: admin.client_secret });
    expect(login.status).toBe(200);
    const headers = { authorization: `Bearer ${login.body.access_token}` };

    // The token the first master issued works on the second; a job submitted on one is seen on the other.
    const job = await http<{ id: string }>(masters[1]?.url ?? "", "POST", "/api/v1/jobs", { type: "echo" }, headers);
    expect(job.status).toBe(201);
    expect((await http<{ status: string }>(masters[0]?.url ?? "", "GET", `/api/v1/jobs/${job.body.id}`, undefined, headers)).body.status).toBe("pending");

    // One master runs the sweepers; when it is killed, the other takes over within a sweep interval or two.
    const standby = async (index: number) => {
      const state = await http<{ sweepers: Record<string, { standby: boolean; runs: number } | undefined> }>(masters[index]?.url ?? "", "GET", "/api/v1/state", undefined, headers);
      return state.body.sweepers.dead_nodes?.standby;
    };
    let leader = -1;
    for (const deadline = Date.now() + 10_000; leader < 0 && Date.now() < deadline; ) {
      const [first, second] = [await standby(0), await standby(1)];
      if (first === false && second === true) leader = 0;
      else if (first === true && second === false) leader = 1;
      else await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(leader).toBeGreaterThanOrEqual(0);
    const other = 1 - leader;
    masters[leader]?.proc.kill("SIGKILL");
    await masters[leader]?.exited;
    let tookOver = false;
    for (const deadline = Date.now() + 10_000; !tookOver && Date.now() < deadline; ) {
      tookOver = (await standby(other)) === false;
      if (!tookOver) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(tookOver).toBe(true);
  });

  it("keeps a worker given both masters' URLs running jobs when the one it used is killed", async () => {
    const url = await createTestDatabase();
    databases.push(url);
    const dir = tempDir();
    const unused = join(dir, "unused.db");
    const env = { GAFFER_AUTH: "on", GAFFER_NODE_TIMEOUT_S: "6" };
    const first = await spawnMaster(unused, env, ["--database-url", url]);
    const second = await spawnMaster(unused, env, ["--database-url", url]);
    const made = (role: string) => runGaffer(["clients", "create", "--database-url", url, "--name", role, "--role", role, "--json"]);
    const worker = JSON.parse((await made("worker")).output) as { id: string; client_secret: string };
    const client = JSON.parse((await made("client")).output) as { id: string; client_secret: string };
    await spawnWorker(`${first.url},${second.url}`, {
      name: "w1",
      handlers: writeHandlers(dir),
      stateDir: join(dir, "state"),
      env: { GAFFER_CLIENT_ID: worker.id, GAFFER_CLIENT_SECRET: worker.client_secret },
    });
    const login = await http<{ access_token: string }>(second.url, "POST", "/api/v1/auth/token", { client_id: client.id, client_secret: client.client_secret });
    const headers = { authorization: `Bearer ${login.body.access_token}` };
    const run = async () => {
      const job = await http<{ id: string }>(second.url, "POST", "/api/v1/jobs", { type: "echo", payload: { n: 1 } }, headers);
      expect(job.status).toBe(201);
      return eventually(async () => {
        const seen = await http<{ status: string }>(second.url, "GET", `/api/v1/jobs/${job.body.id}`, undefined, headers);
        return seen.body.status === "completed" && seen.body;
      }, 30_000, `job ${job.body.id} completed`);
    };
    await run();
    first.proc.kill("SIGKILL");
    await first.exited;
    // The worker's next calls to the first master fail; it moves to the second and goes on.
    await run();
  });
});
