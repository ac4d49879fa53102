// How the PostgreSQL store talks to the server: timestamps read back as the API shows them,
// prepared statements that outlive a change of their tables.
import { describe, expect, it } from "vitest";
import { isoFromPg } from "../../../master/store/postgres/database.js";
import pg from "pg";
import { claim, dialects, jobParams, register, storePerTest, submit, type Dialect, type TestStore } from "../../helpers/store.js";

/** The old way, through Date, as the reference. */
function throughDate(text: string): string {
  return new Date(text.replace(" ", "T").replace(/([+-]\d\d)$/, "$1:00")).toISOString();
}

describe("isoFromPg", () => {
  it("writes a UTC timestamp as ISO-8601 with milliseconds, as Date would, whatever its fraction", () => {
    for (const text of [
      "2026-12-06 19:30:00+00",
      "2026-12-06 19:30:00.1+00",
      "2026-12-06 19:30:00.12+00",
      "2026-12-06 19:30:00.123+00",
      "2026-12-06 19:30:00.1239+00",
      "2026-12-06 19:30:00.999999+00",
      "2000-02-29 00:00:00.000001+00",
      "1999-12-31 23:59:59.9995+00",
    ]) {
      expect(isoFromPg(text), text).toBe(throughDate(text));
    }
    expect(isoFromPg("2026-12-06 19:30:00.123456+00")).toBe("2026-12-06T19:30:00.123Z");
  });

  it("leaves any other offset to Date", () => {
    expect(isoFromPg("2026-12-06 21:30:00.5+02")).toBe("2026-12-06T19:30:00.500Z");
    expect(isoFromPg("2026-12-06 14:00:00-05")).toBe("2026-12-06T19:00:00.000Z");
  });
});

describe.skipIf(!dialects.some((dialect) => dialect.name === "postgres"))("prepared statements (postgres)", () => {
  const postgres = dialects.find((dialect) => dialect.name === "postgres") as Dialect;
  let t: TestStore;
  storePerTest(postgres, (opened) => (t = opened));

  it("drops a connection whose prepared claim no longer fits the tables, and claims on another", async () => {
    const node = await register(t.store);
    // The claim prepared on every pooled connection: four claims at once.
    await Promise.all([1, 2, 3, 4].map(() => submit(t.store)));
    const others = await Promise.all([1, 2, 3].map(async (i) => register(t.store, `other-${i}`)));
    await Promise.all([node, ...others].map((n) => claim(t.store, n.id, 1)));
    // What a migration by a newer master can do under a running one: a column the claim returns changes type.
    await t.query("ALTER TABLE jobs ALTER COLUMN timeout_s TYPE numeric");
    for (let i = 0; i < 4; i++) {
      const job = await submit(t.store);
      expect((await claim(t.store, node.id, 1)).map((item) => item.id)).toEqual([job.id]);
    }
  });

  it("fails thousands of dependents in one statement with their quota counts kept, on a connection that ran small statements first", async () => {
    // Small claims and results first: each pooled connection plans the quota trigger's join
    // for a few rows, and keeps that plan for the big statement below.
    const node = await register(t.store, "small-first", [], 100);
    for (let i = 0; i < 8; i++) {
      await submit(t.store);
      const jobs = await claim(t.store, node.id, 1);
      await t.store.jobs.report({ nodeId: node.id, reports: jobs.map((job) => ({ jobId: job.id, attempt: job.attempt, status: "completed" as const, result: null })) });
    }
    const root = await submit(t.store, { maxRetries: 0 });
    const dependents = 3_000;
    for (let i = 0; i < dependents; i += 1000) {
      await t.store.jobs.submit(Array.from({ length: Math.min(1000, dependents - i) }, () => jobParams({ dependsOn: [root.id] })), { batch: true });
    }
    const [taken] = await claim(t.store, node.id, 1);
    expect(taken?.id).toBe(root.id);
    const outcome = await t.store.jobs.report({ nodeId: node.id, reports: [{ jobId: root.id, attempt: taken?.attempt ?? 1, status: "failed", error: { message: "no", retryable: false } }] });
    expect(outcome.items.map((item) => item.verdict)).toEqual(["accepted"]);
    expect(await t.query("SELECT status, count(*)::integer AS n FROM jobs WHERE status IN ('blocked', 'failed') GROUP BY status")).toEqual([{ status: "failed", n: dependents + 1 }]);
    expect(await t.query("SELECT sum(unfinished)::integer AS n FROM client_job_counts")).toEqual([{ n: 0 }]);
    // The triggers' joins are planned without nested loops (migration 0007): with one, this
    // statement's trigger time grows with the square of its rows.
    expect(await t.query("SELECT proname, proconfig FROM pg_proc WHERE proname IN ('gaffer_count_changed', 'gaffer_fair_share') AND pronamespace = current_schema()::regnamespace ORDER BY proname")).toEqual([
      { proname: "gaffer_count_changed", proconfig: expect.arrayContaining(["enable_nestloop=off"]) },
      { proname: "gaffer_fair_share", proconfig: expect.arrayContaining(["enable_nestloop=off"]) },
    ]);
  });

  it("plans the finishing statement of a result batch once a connection, not at each call", async () => {
    await t.store.jobs.submit(Array.from({ length: 600 }, () => jobParams()), { batch: true });
    // The pooled connections that ran a prepared statement, to ask them what they planned.
    const clients = new Set<pg.Client>();
    const query = pg.Client.prototype.query as (...args: unknown[]) => unknown;
    pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
      if ((args[0] as { name?: string } | undefined)?.name?.startsWith("gaffer_")) clients.add(this);
      return query.apply(this, args);
    } as typeof pg.Client.prototype.query;
    try {
      const node = await register(t.store, "planned", [], 1000);
      for (let round = 0; round < 40; round++) {
        const jobs = await claim(t.store, node.id, 5 + (round % 7));
        await t.store.jobs.report({ nodeId: node.id, reports: jobs.map((job) => ({ jobId: job.id, attempt: job.attempt, status: "completed" as const, result: null })) });
      }
    } finally {
      pg.Client.prototype.query = query as typeof pg.Client.prototype.query;
    }
    const planned = new Map<string, { generic: number; custom: number }>();
    for (const client of clients) {
      const { rows } = await client.query<{ statement: string; generic_plans: string; custom_plans: string }>(
        "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements WHERE name LIKE 'gaffer_%'",
      );
      for (const row of rows) {
        const what = /WITH heads AS/.test(row.statement) ? "take" : /WITH attempts AS/.test(row.statement) ? "finish" : /WITH wanted AS/.test(row.statement) ? "leases" : "other";
        const sum = planned.get(what) ?? { generic: 0, custom: 0 };
        planned.set(what, { generic: sum.generic + Number(row.generic_plans), custom: sum.custom + Number(row.custom_plans) });
      }
    }
    // PostgreSQL plans a prepared statement for its first five calls on a connection, then
    // keeps a generic plan if it costs about what the custom ones did: it must for the
    // finishing statement, the biggest. (The take and the lease read are parsed once and
    // planned at each call: their generic plans, key-only too, are costed for ten lanes or
    // ids and a tenth of the pending jobs.)
    for (const what of ["take", "leases"]) expect(planned.get(what)?.custom, what).toBeGreaterThan(0);
    const finish = planned.get("finish");
    expect(finish?.generic).toBeGreaterThan(finish?.custom ?? 0);
  });
});
