// Single submits that arrive together share one transaction (PostgreSQL: jobs/submit-group.ts;
// SQLite: its group commit), and each is still answered as if it had been alone: a refused
// one (unknown dependency, quota, a value the database cannot store) fails alone, a repeated
// idempotency key answers the job the first one made, and the order is the order of arrival.
import pg from "pg";
import { describe, expect, it } from "vitest";
import { UnstorableValueError, type SubmitJobParams, type SubmitOptions } from "../../../master/store/types.js";
import { dialects, jobParams, submit, type TestStore, storePerTest, TEST_DATABASE_URL } from "../../helpers/store.js";

describe.each(dialects)("single submits at once ($name)", (dialect) => {
  let t: TestStore;
  storePerTest(dialect, (opened) => (t = opened));

  const single = (overrides: Partial<SubmitJobParams> = {}, options: SubmitOptions = {}) => t.store.jobs.submit([jobParams(overrides)], options);
  /** How many transactions wrote the client's jobs (PostgreSQL: distinct xmin of their rows). */
  const transactions = async () => Number((await t.query("SELECT count(DISTINCT xmin::text) AS n FROM jobs"))[0]?.n);
  const jobIds = async () => (await t.query("SELECT id FROM jobs ORDER BY seq")).map((row) => row.id);

  it("answers each as if alone, in the order they came, from one transaction", async () => {
    const outcomes = await Promise.all(Array.from({ length: 6 }, (_, i) => single({ payload: { i } })));
    const jobs = outcomes.map((outcome) => (outcome.ok ? outcome.items[0] : undefined));
    expect(jobs.map((item) => [item?.created, item?.job.payload])).toEqual(Array.from({ length: 6 }, (_, i) => [true, { i }]));
    // FIFO: the order of the calls is the order of the queue.
    expect(await jobIds()).toEqual(jobs.map((item) => item?.job.id));
    expect((await t.store.audit.list({ limit: 50, eventType: "job.submitted" })).items).toHaveLength(6);
    if (dialect.name === "postgres") expect(await transactions()).toBe(1);
    expect(await t.store.jobs.get(jobs[2]?.job.id ?? "")).toEqual(jobs[2]?.job);
  });

  it("refuses an unknown dependency or a submit past the quota alone, and stores the others", async () => {
    const dependency = await submit(t.store);
    const outcomes = await Promise.all([
      single({ payload: { n: 1 } }, { maxUnfinished: 3 }),
      single({ dependsOn: ["missing"] }, { maxUnfinished: 3 }),
      single({ payload: { n: 2 }, dependsOn: [dependency.id] }, { maxUnfinished: 3 }),
      // The client has 3 unfinished now (the dependency and the two before): one more passes the limit.
      single({ payload: { n: 3 } }, { maxUnfinished: 3 }),
      single({ payload: { n: 4 }, clientId: "client-b" }, { maxUnfinished: 3 }),
      // No quota (an admin's submit): never refused for it.
      single({ payload: { n: 5 } }),
    ]);
    expect(outcomes.map((outcome) => (outcome.ok ? "ok" : outcome.reason))).toEqual(["ok", "unknown_dependency", "ok", "quota_exceeded", "ok", "ok"]);
    expect(outcomes[1]).toEqual({ ok: false, reason: "unknown_dependency", index: 0, dependency: "missing" });
    expect(outcomes[3]).toEqual({ ok: false, reason: "quota_exceeded", unfinished: 3, limit: 3 });
    expect(outcomes[2]).toMatchObject({ ok: true, items: [{ job: { status: "blocked", depends_on: [dependency.id] } }] });
    expect((await t.store.jobs.list({ limit: 50 })).items.map((job) => job.payload).reverse()).toEqual([{}, { n: 1 }, { n: 2 }, { n: 4 }, { n: 5 }]);
    const counts = await t.query("SELECT client_id, unfinished FROM client_job_counts ORDER BY client_id");
    expect(counts.map((row) => [row.client_id, Number(row.unfinished)])).toEqual([
      ["client-a", 4],
      ["client-b", 1],
    ]);
  });

  it("answers the second of two submits with one idempotency key with the first one's job", async () => {
    const [first, second, other] = await Promise.all([
      single({ idempotencyKey: "order-42", payload: { n: 1 } }),
      single({ idempotencyKey: "order-42", payload: { n: 2 } }),
      single({ idempotencyKey: "order-42", clientId: "client-b" }),
    ]);
    expect(first).toMatchObject({ ok: true, items: [{ created: true, job: { payload: { n: 1 } } }] });
    expect(second).toMatchObject({ ok: true, items: [{ created: false, job: { payload: { n: 1 } } }] });
    expect(first?.ok && second?.ok && second.items[0]?.job.id).toBe(first?.ok && first.items[0]?.job.id);
    expect(other).toMatchObject({ ok: true, items: [{ created: true, job: { client_id: "client-b" } }] });
    expect(await jobIds()).toHaveLength(2);
  });

  it("counts a key repeated after a refused submit as new: the refused one stored nothing", async () => {
    const [refused, again] = await Promise.all([
      single({ idempotencyKey: "k", dependsOn: ["missing"] }),
      single({ idempotencyKey: "k" }),
    ]);
    expect(refused).toMatchObject({ ok: false, reason: "unknown_dependency" });
    expect(again).toMatchObject({ ok: true, items: [{ created: true }] });
  });

  it.runIf(dialect.name === "postgres")("fails a value the database cannot store alone; the others are stored", async () => {
    const outcomes = await Promise.allSettled([single({ payload: { n: 1 } }), single({ payload: { text: "nul\u0000here" } }), single({ payload: { n: 2 } })]);
    expect(outcomes.map((outcome) => outcome.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
    expect((outcomes[1] as PromiseRejectedResult).reason).toBeInstanceOf(UnstorableValueError);
    expect((await t.store.jobs.list({ limit: 10 })).items.map((job) => job.payload)).toEqual([{ n: 2 }, { n: 1 }]);
  });

  it("stores many big payloads submitted at once, in order (PostgreSQL: in groups cut at 16 Mi characters of JSON)", async () => {
    const big = "x".repeat(1024 * 1024);
    const outcomes = await Promise.all(Array.from({ length: 40 }, (_, i) => single({ payload: { i, big } })));
    const ids = outcomes.map((outcome) => (outcome.ok ? outcome.items[0]?.job.id : outcome.reason));
    expect(await jobIds()).toEqual(ids);
    // 15 payloads of 1 Mi characters and a little fit under the bound: 15 + 15 + 10.
    if (dialect.name === "postgres") expect(await transactions()).toBe(3);
  });

  it.runIf(dialect.name === "postgres")("fails one value the database cannot store among many alone; the others keep their order, in a few transactions", async () => {
    const settled = await Promise.allSettled(Array.from({ length: 100 }, (_, i) => single({ payload: i === 37 ? { i, text: "nul\u0000here" } : { i } })));
    expect(settled.map((outcome, i) => [i, outcome.status])).toEqual(Array.from({ length: 100 }, (_, i) => [i, i === 37 ? "rejected" : "fulfilled"]));
    expect((settled[37] as PromiseRejectedResult).reason).toBeInstanceOf(UnstorableValueError);
    const ids = settled.flatMap((outcome) => (outcome.status === "fulfilled" && outcome.value.ok ? [outcome.value.items[0]?.job.id] : []));
    expect(await jobIds()).toEqual(ids);
    // Run again by halves, not one transaction each.
    expect(await transactions()).toBeLessThanOrEqual(Math.ceil(Math.log2(100)));
  });

  it("holds the quota for submits of a client whose count rose where the group did not see it (another master, a batch)", async () => {
    // PostgreSQL: the group checks the count at its end (it last saw none); it passed the limit, so it runs again locking first.
    expect((await t.store.jobs.submit([jobParams(), jobParams(), jobParams()], { batch: true })).ok).toBe(true);
    const outcomes = await Promise.all([single({ payload: { n: 1 } }, { maxUnfinished: 4 }), single({ payload: { n: 2 } }, { maxUnfinished: 4 })]);
    expect(outcomes).toEqual([expect.objectContaining({ ok: true }), { ok: false, reason: "quota_exceeded", unfinished: 4, limit: 4 }]);
    expect(await jobIds()).toHaveLength(4);
    expect((await t.store.audit.list({ limit: 50, eventType: "job.submitted" })).items).toHaveLength(1);
    expect(Number((await t.query("SELECT unfinished FROM client_job_counts WHERE client_id = 'client-a'"))[0]?.unfinished)).toBe(4);
  });

  it.runIf(dialect.name === "postgres")("answers a key another master committed while the submit waited for the client's count with that job, not with the quota", async () => {
    await submit(t.store);
    const [{ schema }] = (await t.query("SELECT current_schema() AS schema")) as [{ schema: string }];
    // Another master's submit of key k, holding the client's count (locked as its submit locks it) until it commits.
    const other = new pg.Client({ connectionString: TEST_DATABASE_URL, options: `-c search_path=${schema}` });
    await other.connect();
    try {
      await other.query("BEGIN");
      await other.query(`INSERT INTO jobs (id, client_id, type, lane, payload, priority, effective_priority, status, max_retries, timeout_s, ready_at, created_at, updated_at, idempotency_key)
                         SELECT 'theirs', client_id, type, lane, '{}', priority, effective_priority, 'pending', max_retries, timeout_s, ready_at, created_at, updated_at, 'k' FROM jobs`);
      await other.query("UPDATE client_job_counts SET unfinished = unfinished + 1 WHERE client_id = 'client-a'");
      const submitting = t.store.jobs.submit([jobParams({ idempotencyKey: "k" })], { batch: true, maxUnfinished: 2 });
      // Until the submit waits for the count's lock (asked outside that transaction: pg_stat_activity is read once per transaction).
      const waiting = () => t.query("SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'INSERT INTO client_job_counts%'");
      while ((await waiting()).length === 0) await new Promise((resolve) => setTimeout(resolve, 10));
      await other.query("COMMIT");
      expect(await submitting).toMatchObject({ ok: true, items: [{ created: false, job: { id: "theirs" } }] });
    } finally {
      await other.end();
    }
  });

  it.runIf(dialect.name === "postgres")("makes one job of a key sent through two masters at once, audited once", async () => {
    const other = await t.reopen();
    try {
      const keys = Array.from({ length: 10 }, (_, i) => `order-${i}`);
      const outcomes = await Promise.all(keys.flatMap((key) => [t.store, other].map((store) => store.jobs.submit([jobParams({ idempotencyKey: key })], { maxUnfinished: 100 }))));
      const items = outcomes.map((outcome) => (outcome.ok ? outcome.items[0] : undefined));
      for (let i = 0; i < keys.length; i++) {
        const [a, b] = [items[2 * i], items[2 * i + 1]];
        expect(a?.job.id).toBe(b?.job.id);
        expect([a?.created, b?.created].sort()).toEqual([false, true]);
      }
      expect(await jobIds()).toHaveLength(10);
      expect((await t.store.audit.list({ limit: 50, eventType: "job.submitted" })).items).toHaveLength(10);
      expect(Number((await t.query("SELECT unfinished FROM client_job_counts WHERE client_id = 'client-a'"))[0]?.unfinished)).toBe(10);
    } finally {
      await other.close();
    }
  });

  it.runIf(dialect.name === "postgres")("holds the quota exactly for single submits through two masters at once", async () => {
    const other = await t.reopen();
    try {
      const outcomes = await Promise.all(Array.from({ length: 12 }, (_, i) => (i % 2 === 0 ? t.store : other).jobs.submit([jobParams({ payload: { i } })], { maxUnfinished: 7 })));
      expect(outcomes.filter((outcome) => outcome.ok)).toHaveLength(7);
      expect(outcomes.filter((outcome) => !outcome.ok)).toEqual(Array.from({ length: 5 }, () => expect.objectContaining({ reason: "quota_exceeded", unfinished: 7, limit: 7 })));
      expect(await jobIds()).toHaveLength(7);
      expect(Number((await t.query("SELECT unfinished FROM client_job_counts WHERE client_id = 'client-a'"))[0]?.unfinished)).toBe(7);
    } finally {
      await other.close();
    }
  });
});
