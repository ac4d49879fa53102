// Every statement the SQLite store runs on a hot path or in a sweep reads an
// index range, never a whole table: record each SQL text the store prepares
// while every verb runs, then ask SQLite for its plan.
import Database from "better-sqlite3";
import { pino } from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DeadNodeSweeper } from "../../../master/sweepers/dead-nodes.js";
import { claim, dialects, register, submit, type TestStore } from "../../helpers/store.js";
import { removeTempDirs } from "../../helpers/temp.js";

/** Statements allowed to walk a table: lists read newest first and stop at their limit; stats count. */
const SCANS_ALLOWED = [
  /order by "seq" desc/i, // job lists: the rowid b-tree backwards, LIMIT n
  /order by nodes\.rowid desc/i,
  /order by "id" desc/i, // audit lists
  /\(SELECT count\(\*\) FROM jobs\) AS total/, // stats: every job, counted through the smallest index; each state through its own
  /from "nodes" group by "status"/i, // stats of nodes (a covering index)
  /group by "effective_priority"/i,
  /min\("ready_at"\)/i,
  /from "lanes"/i, // one row per job type and label set, read once at start
  /from "schema_migrations"/i,
];

function planOf(db: Database.Database, source: string): string[] {
  const nulls = Array.from({ length: (source.match(/\?/g) ?? []).length }, () => null);
  return (db.prepare(`EXPLAIN QUERY PLAN ${source}`).all(nulls) as { detail: string }[]).map((row) => row.detail);
}

/** A scan of a partial index reads only the rows in that state (say, the scheduled ones). */
const PARTIAL_INDEX = /USING (COVERING )?INDEX jobs_(scheduled|aging|running|dispatch)\b/;

describe("SQLite query plans", () => {
  const seen = new Set<string>();
  const original = Database.prototype.prepare;
  let t: TestStore;

  beforeAll(async () => {
    Database.prototype.prepare = function (this: Database.Database, source: string) {
      seen.add(source);
      return original.call(this, source);
    } as typeof original;
    const sqlite = dialects.find((d) => d.name === "sqlite");
    if (!sqlite) throw new Error("no sqlite dialect");
    t = await sqlite.open();
    const { store, clock } = t;
    // Exercise every verb so that each statement is prepared at least once.
    const node = await register(store, "n1", ["gpu"]);
    const root = await submit(store, { requires: ["gpu"], idempotencyKey: "k", tags: { a: "b" } });
    const child = await submit(store, { dependsOn: [root.id] });
    await submit(store, { runAt: new Date(clock.now().getTime() + 1000) });
    const other = await submit(store);
    await claim(store, node.id);
    // A node with no labels covers one lane (all jobs here are of one type): its claim reads and takes in one statement.
    await claim(store, (await register(store, "plain")).id);
    await store.nodes.heartbeat({ nodeId: node.id, running: [{ jobId: root.id, attempt: 1, progress: 5 }, { jobId: "x", attempt: 1 }] });
    await store.jobs.report({ nodeId: node.id, reports: [{ jobId: root.id, attempt: 1, status: "completed" }] });
    await store.jobs.report({ nodeId: node.id, reports: [{ jobId: other.id, attempt: 1, status: "failed", error: { message: "x", retryable: true } }] });
    await store.jobs.cancel({ id: child.id, actor: null });
    await store.jobs.retry({ id: child.id, actor: null });
    await store.jobs.setPriority({ id: child.id, priority: "high", actor: null });
    await store.jobs.list({ limit: 5, status: "pending", tag: { key: "a", value: "b" } });
    await store.jobs.events({ jobId: root.id, limit: 5 });
    await store.jobs.stats();
    await store.nodes.list({ limit: 5 });
    await store.audit.list({ limit: 5, entityType: "job" });
    clock.advanceSeconds(3600);
    await store.jobs.promoteScheduled();
    await store.jobs.age({ limit: 10 });
    await store.jobs.rescueStalled({ limit: 10 });
    const sweeper = new DeadNodeSweeper({
      store,
      clock,
      log: pino({ level: "silent" }),
      nodeTimeoutMs: 60_000,
      intervalMs: 1000,
      reportingSince: () => new Date(0),
    });
    await sweeper.runOnce();
    await store.nodes.drain({ id: node.id, actor: null });
    await store.nodes.resume({ id: node.id, actor: null });
    // A running job when its node leaves: its lease ends and it goes back to the queue.
    await submit(store);
    expect((await claim(store, node.id)).length).toBeGreaterThan(0);
    await store.nodes.deregister({ id: node.id, actor: null });
    await store.jobs.purgeFinished({ before: clock.now(), limit: 10 });
    await store.audit.purge({ before: new Date(0), limit: 10 });
  });

  afterAll(async () => {
    Database.prototype.prepare = original;
    await t.store.close();
    removeTempDirs();
  });

  it("recorded the store's statements", () => {
    expect(seen.size).toBeGreaterThan(30);
  });

  it("reads jobs and nodes through an index in every statement but lists and stats", () => {
    const db = new Database(t.path, { readonly: true });
    try {
      const offenders: string[] = [];
      for (const source of seen) {
        if (!/^\s*(select|update|delete|insert)/i.test(source)) continue;
        if (SCANS_ALLOWED.some((pattern) => pattern.test(source))) continue;
        if (process.env.SHOW_PLANS) console.log(source.slice(0, 140), "\n   ->", planOf(db, source).join(" / "));
        const scans = planOf(db, source).filter(
          (detail) => /^SCAN (jobs|nodes|audit_log|job_dependencies)\b/.test(detail) && !PARTIAL_INDEX.test(detail),
        );
        if (scans.length > 0) offenders.push(`${source}\n    ${scans.join("; ")}`);
      }
      expect(offenders).toEqual([]);
    } finally {
      db.close();
    }
  });

  it("claims from the partial dispatch index in priority, then submission order, with no sort", () => {
    const db = new Database(t.path, { readonly: true });
    try {
      const head = [...seen].find((s) => /"lane" = \?/.test(s) && /order by "effective_priority" desc/i.test(s));
      if (!head) throw new Error("claim statement not seen");
      const plan = planOf(db, head);
      // From the index alone: no row of the table is read for the head.
      expect(plan.join("\n")).toMatch(/SEARCH jobs USING COVERING INDEX jobs_dispatch \(lane=\?\)/);
      expect(plan.join("\n")).not.toMatch(/TEMP B-TREE/);
    } finally {
      db.close();
    }
  });

  it("takes the head of one lane by its seq, read from the dispatch index, with no sort", () => {
    const db = new Database(t.path, { readonly: true });
    try {
      const takeHead = [...seen].find((s) => /WHERE seq IN \(\s*SELECT seq FROM jobs WHERE status = 'pending' AND lane = \?/.test(s));
      if (!takeHead) throw new Error("one-lane claim statement not seen");
      const plan = planOf(db, takeHead).join("\n");
      expect(plan).toMatch(/^SEARCH jobs USING INTEGER PRIMARY KEY \(rowid=\?\)/);
      expect(plan).toMatch(/SEARCH jobs USING COVERING INDEX jobs_dispatch \(lane=\?\)/);
      expect(plan).not.toMatch(/TEMP B-TREE/);
    } finally {
      db.close();
    }
  });

  it("plans the claim's statements once: their LIMIT is no bare binding, which SQLite would plan again at each new value", () => {
    const claims = [...seen].filter((s) => /\blane"? = \?/.test(s) && /\blimit\b/i.test(s));
    expect(claims.length).toBeGreaterThanOrEqual(2);
    for (const source of claims) expect(source).not.toMatch(/\blimit \?(?!\s*\+)/i);
  });

  it("finds the dependents of completed jobs from the dependencies, not by walking every blocked job", () => {
    const db = new Database(t.path, { readonly: true });
    try {
      const dependents = [...seen].find((s) => /from "job_dependencies" as "d"/.test(s) && /'blocked'/.test(s));
      if (!dependents) throw new Error("dependents statement not seen");
      const plan = planOf(db, dependents);
      expect(plan[0]).toMatch(/^SEARCH d USING COVERING INDEX job_dependencies_reverse \(depends_on_id=\?\)/);
      expect(plan.join("\n")).toMatch(/SEARCH j USING INDEX \S+ \(id=\?\)/);
    } finally {
      db.close();
    }
  });

  it("updates a claim's or a requeue's set of jobs by primary key and a result batch's by job id, never through a status index", () => {
    const db = new Database(t.path, { readonly: true });
    try {
      const sets = [...seen].filter((s) => /^\s*UPDATE jobs\b/.test(s));
      expect(sets.map((s) => /status = '(\w+)'/.exec(s)?.[1])).toEqual(expect.arrayContaining(["running", "completed", "pending"]));
      // The id's index is SQLite's own for the UNIQUE constraint: its name is not ours to rely on.
      const expected: Record<string, RegExp> = {
        running: /^SEARCH jobs USING INTEGER PRIMARY KEY \(rowid=\?\)$/,
        pending: /^SEARCH jobs USING INTEGER PRIMARY KEY \(rowid=\?\)$/,
        completed: /^SEARCH jobs USING INDEX \S+ \(id=\?\)$/,
      };
      for (const source of sets) {
        // (The one-set claim also reads its queue's head from jobs_dispatch: the test above.)
        const jobsSteps = planOf(db, source).filter((detail) => /\bjobs\b/.test(detail) && !/INDEX jobs_dispatch\b/.test(detail));
        expect(jobsSteps).toHaveLength(1);
        expect(jobsSteps[0]).toMatch(expected[/status = '(\w+)'/.exec(source)?.[1] ?? ""] ?? /^never$/);
      }
    } finally {
      db.close();
    }
  });
  it("lists running jobs from jobs_running and waiting or failed ones by a range of jobs_by_status; counts live jobs by type from both", async () => {
    const before = new Set(seen);
    const filter = { status: "running" as const };
    for (const status of ["running", "pending", "failed"] as const) await t.store.jobs.list({ limit: 5, status });
    await t.store.jobs.cancelMatching({ filter, max: 10, actor: null, shownFilter: filter, dryRun: true });
    await t.store.types.list({ since: new Date(0) });
    const added = [...seen].filter((source) => !before.has(source));
    const db = new Database(t.path, { readonly: true });
    try {
      const plan = (pattern: RegExp) => {
        const sources = added.filter((source) => pattern.test(source));
        expect(sources).toHaveLength(1);
        return planOf(db, sources[0] ?? "").join("\n");
      };
      // Without INDEXED BY SQLite walks back through the whole table (SCAN jobs) for these.
      expect(plan(/"status" = 'running' order by "seq" desc/)).toMatch(/^SEARCH jobs USING INDEX jobs_running|^SCAN jobs USING INDEX jobs_running/);
      expect(plan(/"status" = 'running' order by "seq" asc/)).toMatch(/^SCAN jobs USING INDEX jobs_running/);
      expect(plan(/"status" = 'pending' order by "seq" desc/)).toMatch(/^SEARCH jobs USING INDEX jobs_by_status \(status=\?\)$/);
      expect(plan(/"status" = 'failed' order by "seq" desc/)).toMatch(/^SEARCH jobs USING INDEX jobs_by_status \(status=\?\)$/);
      const live = plan(/UNION ALL/);
      expect(live).toMatch(/SEARCH jobs USING INDEX jobs_by_status \(status=\?\)/);
      expect(live).toMatch(/SCAN jobs USING COVERING INDEX jobs_running/);
      expect(live).not.toMatch(/SCAN jobs$/m);
    } finally {
      db.close();
    }
  });
});
