// Quotas (API.md §4): a submit past the client's jobs not yet finished stores nothing, and
// the count follows every way a job finishes or comes back; a client's schedules are counted.
import { describe, expect, it } from "vitest";
import type { SubmitJobParams } from "../../../master/store/types.js";
import { claim, dialects, jobParams, register, submit, type TestStore, storePerTest } from "../../helpers/store.js";

describe.each(dialects)("quotas ($name)", (dialect) => {
  let t: TestStore;
  storePerTest(dialect, (opened) => (t = opened));

  const submitAtMost = (maxUnfinished: number, overrides: Partial<SubmitJobParams>[] = [{}]) =>
    t.store.jobs.submit(
      overrides.map((o) => jobParams(o)),
      { maxUnfinished, batch: overrides.length > 1 },
    );
  const count = async (clientId = "client-a") => (await t.store.jobs.list({ limit: 500, clientId })).items.length;

  it("refuses a submit or batch that would pass the limit, storing nothing, and takes one that reaches it", async () => {
    expect((await submitAtMost(3, [{}, {}])).ok).toBe(true);
    expect(await submitAtMost(3, [{}, {}])).toEqual({ ok: false, reason: "quota_exceeded", unfinished: 2, limit: 3 });
    expect(await count()).toBe(2);
    expect((await submitAtMost(3)).ok).toBe(true);
    expect(await submitAtMost(3)).toMatchObject({ ok: false, reason: "quota_exceeded", unfinished: 3 });
    expect(await count()).toBe(3);
    // Another client's jobs are its own; a submit without a limit (an admin's, a schedule's) is not held.
    expect((await submitAtMost(3, [{ clientId: "client-b" }])).ok).toBe(true);
    expect((await t.store.jobs.submit([jobParams()])).ok).toBe(true);
  });

  it("counts blocked and scheduled jobs, not those failed at once by a failed dependency", async () => {
    const dependency = await submit(t.store, { maxRetries: 0 });
    await t.store.jobs.cancel({ id: dependency.id, actor: null });
    const failed = await submitAtMost(1, [{ dependsOn: [dependency.id] }]);
    expect(failed.ok && failed.items[0]?.job.status).toBe("failed");
    const runAt = new Date(t.clock.now().getTime() + 3_600_000);
    const scheduled = await submitAtMost(1, [{ runAt }]);
    expect(scheduled.ok && scheduled.items[0]?.job.status).toBe("scheduled");
    expect(await submitAtMost(1)).toMatchObject({ ok: false, unfinished: 1 });
    const blocking = scheduled.ok ? scheduled.items[0]?.job.id ?? "" : "";
    expect(await submitAtMost(2, [{ dependsOn: [blocking] }])).toMatchObject({ ok: true, items: [{ job: { status: "blocked" } }] });
    expect(await submitAtMost(2)).toMatchObject({ ok: false, unfinished: 2 });
  });

  it("frees a place when a job completes, fails or is canceled, and takes one back when it is retried", async () => {
    const node = await register(t.store);
    const a = await submit(t.store, { maxRetries: 0 });
    const b = await submit(t.store, { maxRetries: 0 });
    const c = await submit(t.store, { maxRetries: 0, timeoutS: 1 });
    expect(await claim(t.store, node.id)).toHaveLength(3);
    // Running jobs count.
    expect(await submitAtMost(3)).toMatchObject({ ok: false, unfinished: 3 });
    await t.store.jobs.report({ nodeId: node.id, reports: [{ jobId: a.id, attempt: 1, status: "completed", result: {} }] });
    const d = await submitAtMost(3);
    expect(d.ok).toBe(true);
    expect(await submitAtMost(3)).toMatchObject({ ok: false, unfinished: 3 });
    await t.store.jobs.report({ nodeId: node.id, reports: [{ jobId: b.id, attempt: 1, status: "failed", error: { message: "x", retryable: false } }] });
    expect((await submitAtMost(3)).ok).toBe(true);
    // The master fails c (stalled, no retries left): one place more.
    expect(await submitAtMost(2)).toMatchObject({ ok: false, unfinished: 3 });
    t.clock.advanceSeconds(2 + 300 + 1);
    expect(await t.store.jobs.rescueStalled({ limit: 10 })).toMatchObject([{ jobId: c.id, outcome: "failed" }]);
    expect(await submitAtMost(2)).toMatchObject({ ok: false, unfinished: 2 });
    await t.store.jobs.cancel({ id: d.ok ? d.items[0]?.job.id ?? "" : "", actor: null });
    expect((await submitAtMost(2)).ok).toBe(true);
    expect(await submitAtMost(2)).toMatchObject({ ok: false, unfinished: 2 });
    // Retrying the failed b makes it unfinished again.
    expect((await t.store.jobs.retry({ id: b.id, actor: null })).ok).toBe(true);
    expect(await submitAtMost(3)).toMatchObject({ ok: false, unfinished: 3 });
    // Retention deletes finished jobs (a, c, d) only: the count stays.
    t.clock.advanceSeconds(86_400);
    expect(await t.store.jobs.purgeFinished({ before: t.clock.now(), limit: 100 })).toBe(3);
    expect(await submitAtMost(3)).toMatchObject({ ok: false, unfinished: 3 });
  });

  it("counts every client's jobs right through one statement that changes many of them, and through a delete", async () => {
    const counts = async () =>
      Object.fromEntries(
        (await t.query("SELECT client_id, unfinished FROM client_job_counts ORDER BY client_id")).map((row) => [row.client_id, Number(row.unfinished)]),
      );
    await t.store.jobs.submit([jobParams(), jobParams(), jobParams()], { batch: true });
    await t.store.jobs.submit([jobParams({ clientId: "client-b" }), jobParams({ clientId: "client-b" })], { batch: true });
    expect(await counts()).toEqual({ "client-a": 3, "client-b": 2 });
    // One bulk cancel (one UPDATE) across both clients, then a retry of all of them.
    const bulk = { filter: { status: "pending" as const }, max: 100, actor: null, shownFilter: {} };
    expect((await t.store.jobs.cancelMatching(bulk)).changed).toBe(5);
    expect(await counts()).toEqual({ "client-a": 0, "client-b": 0 });
    expect((await t.store.jobs.retryMatching({ ...bulk, filter: { status: "canceled" } })).changed).toBe(5);
    expect(await counts()).toEqual({ "client-a": 3, "client-b": 2 });
    // An operator deletes unfinished jobs by hand.
    await t.query("DELETE FROM job_attempts");
    await t.query("DELETE FROM jobs WHERE client_id = ?", ["client-b"]);
    expect(await counts()).toEqual({ "client-a": 3, "client-b": 0 });
  });

  it.runIf(dialect.name === "postgres")("lets submits through two masters at once pass the limit together never", async () => {
    const other = await t.reopen();
    try {
      const submits = [t.store, other, t.store, other].map((store) =>
        store.jobs.submit([jobParams(), jobParams(), jobParams()], { maxUnfinished: 5, batch: true }),
      );
      const outcomes = await Promise.all(submits);
      expect(outcomes.filter((outcome) => outcome.ok)).toHaveLength(1);
      expect(outcomes.filter((outcome) => !outcome.ok)).toEqual(Array.from({ length: 3 }, () => expect.objectContaining({ reason: "quota_exceeded", unfinished: 3 })));
      expect(await count()).toBe(3);
    } finally {
      await other.close();
    }
  });

  it("lets a repeated idempotency key through at the limit: it adds no job", async () => {
    const first = await submitAtMost(1, [{ idempotencyKey: "order-42" }]);
    expect(first.ok).toBe(true);
    const again = await submitAtMost(1, [{ idempotencyKey: "order-42" }]);
    expect(again).toMatchObject({ ok: true, items: [{ created: false }] });
    expect(await submitAtMost(1, [{ idempotencyKey: "order-42" }, { idempotencyKey: "order-43" }])).toMatchObject({ ok: false, unfinished: 1 });
    expect(await count()).toBe(1);
  });

  it("refuses a client's schedule past maxPerClient, and counts only its own", async () => {
    const schedule = (clientId: string, name: string) =>
      t.store.schedules.create({
        name,
        cron: "0 3 * * *",
        timezone: "UTC",
        job: { type: "report" },
        enabled: true,
        nextRunAt: null,
        clientId,
        actor: clientId,
        maxPerClient: 2,
      });
    expect((await schedule("client-a", "one")).ok).toBe(true);
    expect((await schedule("client-b", "one")).ok).toBe(true);
    expect((await schedule("client-a", "two")).ok).toBe(true);
    expect(await schedule("client-a", "three")).toEqual({ ok: false, reason: "quota_exceeded", limit: 2 });
    expect((await t.store.schedules.list({ limit: 10, clientId: "client-a" })).items).toHaveLength(2);
  });
});
