// The reads of running jobs and the lists by status on PostgreSQL go through the partial
// indexes (migration 0009), on a table of many completed jobs, a backlog and a full cluster:
// record the statements the store sends while its verbs run, then EXPLAIN them with the same
// values after ANALYZE.
import pg from "pg";
import { describe, expect, it } from "vitest";
import { dialects, register, storePerTest, submit, type TestStore } from "../../helpers/store.js";

const postgres = dialects.find((dialect) => dialect.name === "postgres");

interface Sent {
  text: string;
  values: unknown[];
}

/** The statements the store sends to the server while `run` runs. */
async function recorded(run: () => Promise<unknown>): Promise<Sent[]> {
  const sent: Sent[] = [];
  const query = pg.Client.prototype.query as (...args: unknown[]) => unknown;
  pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
    const [first, second] = args as [string | { text: string; values?: unknown[] }, unknown];
    if (typeof first === "string") sent.push({ text: first, values: Array.isArray(second) ? second : [] });
    else if (first !== null && typeof first === "object" && typeof first.text === "string") sent.push({ text: first.text, values: first.values ?? [] });
    return query.apply(this, args);
  } as typeof pg.Client.prototype.query;
  try {
    await run();
  } finally {
    pg.Client.prototype.query = query as typeof pg.Client.prototype.query;
  }
  return sent;
}

describe.runIf(postgres)("PostgreSQL query plans (postgres)", () => {
  let t: TestStore;
  if (postgres) storePerTest(postgres, (opened) => (t = opened));

  /** The plan of the one statement sent that matches `pattern`, one line a node. */
  async function planOf(sent: Sent[], pattern: RegExp): Promise<string> {
    const matching = sent.filter((statement) => pattern.test(statement.text));
    expect(matching.map((statement) => statement.text)).toHaveLength(1);
    const [statement] = matching as [Sent];
    const rows = await t.query(`EXPLAIN (COSTS OFF) ${statement.text}`, statement.values);
    return rows.map((row) => row["QUERY PLAN"]).join("\n");
  }

  it("reads running jobs from jobs_running and waiting or failed ones from jobs_by_status, never walking the table", async () => {
    const node = await register(t.store, "n1", [], 100);
    await submit(t.store);
    // 100,000 completed, 1,000 running (on 20 nodes, n1's among them), 10,000 pending, newest last, and a few failed.
    await t.query(`
      INSERT INTO jobs (id, client_id, type, lane, payload, priority, effective_priority, status, node_id, max_retries, timeout_s,
                        ready_at, stall_at, lease_expires_at, created_at, updated_at, started_at, finished_at, attempt)
      SELECT 'j' || i, 'c' || (i % 10), 'test', (SELECT min(lane) FROM jobs), '{}', 2, 2, s.status,
             CASE WHEN s.status = 'pending' THEN NULL WHEN i % 20 = 0 THEN ? ELSE 'node' || (i % 20) END, 3, 60,
             now(), CASE WHEN s.status = 'running' THEN now() + interval '1 hour' END, CASE WHEN s.status = 'running' THEN now() + interval '1 minute' END,
             now(), now(), CASE WHEN s.status <> 'pending' THEN now() END, CASE WHEN s.status IN ('completed', 'failed') THEN now() END,
             CASE WHEN s.status = 'pending' THEN 0 ELSE 1 END
      FROM generate_series(1, 111100) i
      CROSS JOIN LATERAL (SELECT CASE WHEN i <= 100000 THEN (CASE WHEN i % 1000 = 0 THEN 'failed' ELSE 'completed' END)
                                      WHEN i <= 101000 THEN 'running' ELSE 'pending' END AS status) s`,
      [node.id],
    );
    await t.query("ANALYZE jobs");

    const sent = await recorded(async () => {
      await t.store.jobs.cancelMatching({ filter: { status: "running" }, max: 100, actor: null, shownFilter: { status: "running" }, dryRun: true });
      await t.store.jobs.list({ limit: 50, status: "running" });
      await t.store.jobs.list({ limit: 50, status: "pending" });
      await t.store.jobs.list({ limit: 50, status: "failed" });
      await t.store.jobs.rescueStalled({ limit: 100 });
      await t.store.jobs.expireLeases({ limit: 100 });
      await t.store.nodes.get(node.id);
    });
    const listPlan = (status: string) =>
      planOf(sent.filter((statement) => statement.values.includes(status)), /ORDER BY seq DESC/);
    const running = await listPlan("running");
    expect(running).toMatch(/jobs_running/);
    expect(running).not.toMatch(/jobs_pkey|Seq Scan/);
    expect(await listPlan("pending")).toMatch(/Index Scan Backward using jobs_by_status/);
    expect(await listPlan("failed")).toMatch(/Index Scan Backward using jobs_by_status/);
    for (const sweep of [/stall_at <= /, /lease_expires_at < /]) {
      const plan = await planOf(sent, sweep);
      expect(plan).toMatch(/jobs_running/);
      expect(plan).not.toMatch(/Seq Scan on jobs/);
    }
    // A bulk action on running jobs: from jobs_running, not a walk of jobs_pkey from the oldest job.
    const bulk = await planOf(sent, /FROM jobs\s+WHERE status = \$1 AND seq = ANY/);
    expect(bulk).toMatch(/jobs_running/);
    expect(bulk).toMatch(/Index Scan using jobs_pkey on jobs\n\s+Index Cond: \(seq = ANY/);
    expect(bulk).not.toMatch(/Seq Scan on jobs/);
    const count = await planOf(sent, /count\(\*\) FROM jobs j WHERE j\.node_id = n\.id/);
    expect(count).toMatch(/(Index (Only )?Scan using jobs_running on jobs j|Bitmap Index Scan on jobs_running)\n\s+Index Cond: \(node_id = n\.id\)/);
  });
});
