// `gaffer master start` and `gaffer migrate` as real processes: ready line, graceful stop, kill -9.
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { http } from "../helpers/master.js";
import { runGaffer, spawnMaster, stopAll, waitForOutput } from "../helpers/processes.js";
import { removeTempDirs, tempDir } from "../helpers/temp.js";

afterEach(async () => {
  await stopAll();
  removeTempDirs();
});

describe("gaffer master start", () => {
  it("prints where it listens, serves, and stops cleanly on SIGTERM", async () => {
    const master = await spawnMaster(join(tempDir(), "m.db"));
    expect((await http(master.url, "GET", "/health")).body).toMatchObject({ status: "ok" });
    master.proc.kill("SIGTERM");
    expect(await master.exited).toBe(0);
    expect(master.output()).toMatch(/"event":"master.stopped"/);
  });

  it("with auth on and no admin yet, says how to make one; stopping says a second signal stops at once", async () => {
    const db = join(tempDir(), "m.db");
    const master = await spawnMaster(db, { GAFFER_AUTH: "on" });
    await waitForOutput(master, /no admin client yet: make one with {2}gaffer clients create --db \S+ --name admin --role admin/);
    master.proc.kill("SIGTERM");
    await waitForOutput(master, /SIGTERM: stopping \(again to stop at once\)/);
  });

  it("keeps every job that got a 201 and every accepted result through kill -9", async () => {
    const db = join(tempDir(), "m.db");
    const first = await spawnMaster(db);
    const ids: string[] = [];
    await Promise.all(
      Array.from({ length: 8 }, async (_, worker) => {
        for (let i = 0; i < 25; i++) {
          const result = await http(first.url, "POST", "/api/v1/jobs", { type: "durable", payload: { worker, i } });
          expect(result.status).toBe(201);
          ids.push(String(result.body.id));
        }
      }),
    );
    const node = await http(first.url, "POST", "/api/v1/nodes", { name: "n", capacity: 10 });
    const claimed = await http<{ items: { id: string; attempt: number }[] }>(first.url, "POST", `/api/v1/nodes/${String(node.body.id)}/claim`, { max: 10 });
    const results = await http<{ items: { accepted: boolean }[] }>(first.url, "POST", `/api/v1/nodes/${String(node.body.id)}/results`, {
      results: claimed.body.items.map((job) => ({ job_id: job.id, attempt: job.attempt, status: "completed", result: { done: job.id } })),
    });
    expect(results.body.items.every((item) => item.accepted)).toBe(true);
    first.proc.kill("SIGKILL");
    expect(await first.exited).toBe("SIGKILL");

    const second = await spawnMaster(db);
    const stats = await http<{ jobs: Record<string, number> }>(second.url, "GET", "/api/v1/queue/stats");
    expect(stats.body.jobs.completed).toBe(10);
    expect(stats.body.jobs.pending).toBe(190);
    for (const id of ids) {
      const job = await http(second.url, "GET", `/api/v1/jobs/${id}`);
      expect(job.status).toBe(200);
    }
    for (const job of claimed.body.items) {
      expect((await http(second.url, "GET", `/api/v1/jobs/${job.id}`)).body).toMatchObject({ status: "completed", result: { done: job.id } });
    }
  });

  it("refuses a bad setting with exit code 2 and says which", async () => {
    const result = await runGaffer(["master", "start", "--db", join(tempDir(), "m.db"), "--port", "seventy"]);
    expect(result.code).toBe(2);
    expect(result.output).toMatch(/port \(GAFFER_PORT\)/);
  });

  it("with auth off, refuses to listen beyond loopback with exit code 2 and says why", async () => {
    for (const [args, env] of [
      [["--host", "0.0.0.0"], { GAFFER_AUTH: "off" }],
      [["--profile", "dev", "--host", "0.0.0.0"], {}],
    ] as const) {
      const result = await runGaffer(["master", "start", "--db", join(tempDir(), "m.db"), "--port", "0", ...args], env);
      expect(result.code, args.join(" ")).toBe(2);
      expect(result.output).toMatch(/host \(GAFFER_HOST\): with auth off .* listens only on loopback/);
    }
  });

  it("refuses a port already in use with a clear message", async () => {
    const db = join(tempDir(), "m.db");
    const master = await spawnMaster(db);
    const port = new URL(master.url).port;
    const result = await runGaffer(["master", "start", "--db", join(tempDir(), "n.db"), "--port", port], { GAFFER_AUTH: "off" });
    expect(result.code).toBe(1);
    expect(result.output).toMatch(/EADDRINUSE/);
  });
});

describe("gaffer migrate", () => {
  it("applies migrations to a new file, then reports them applied", async () => {
    const db = join(tempDir(), "m.db");
    const applied = await runGaffer(["migrate", "--db", db]);
    expect(applied.code).toBe(0);
    expect(applied.output).toMatch(/applied 0001_init, 0002_node_types, 0003_job_attempts, 0004_job_types, 0005_drop_job_reported, 0006_client_job_counts/);
    const status = await runGaffer(["migrate", "--db", db, "--status", "--json"]);
    expect(JSON.parse(status.output)).toEqual([
      expect.objectContaining({ version: 1, name: "init", state: "applied" }),
      expect.objectContaining({ version: 2, name: "node_types", state: "applied" }),
      expect.objectContaining({ version: 3, name: "job_attempts", state: "applied" }),
      expect.objectContaining({ version: 4, name: "job_types", state: "applied" }),
      expect.objectContaining({ version: 5, name: "drop_job_reported", state: "applied" }),
      expect.objectContaining({ version: 6, name: "client_job_counts", state: "applied" }),
      expect.objectContaining({ version: 7, name: "fair_share", state: "applied" }),
      expect.objectContaining({ version: 8, name: "schedule_skips", state: "applied" }),
      expect.objectContaining({ version: 9, name: "running_jobs_index", state: "applied" }),
    ]);
  });
});

describe("the ready line", () => {
  it("is printed even when info logs are off", async () => {
    const quiet = await spawnMaster(join(tempDir(), "q.db"), { GAFFER_LOG_LEVEL: "warn" });
    expect(quiet.output()).toMatch(/^listening on http:\/\/127\.0\.0\.1:\d+$/m);
  });
});
