// Retention: finished jobs and audit rows past GAFFER_RETENTION_DAYS go, in batches; nothing unfinished does.
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { Retention, RETENTION_BATCH } from "../../../master/sweepers/retention.js";
import { claim, dialects, jobParams, register, submit, type TestStore, storePerTest } from "../../helpers/store.js";

describe.each(dialects)("retention ($name)", (dialect) => {
  let t: TestStore;
  storePerTest(dialect, (opened) => (t = opened));

  it("removes old finished jobs and audit rows in batches, keeps unfinished and recent ones", async () => {
    const old = RETENTION_BATCH + 20;
    const outcome = await t.store.jobs.submit(Array.from({ length: old }, () => jobParams()));
    if (!outcome.ok) throw new Error("submit failed");
    for (const { job } of outcome.items) await t.store.jobs.cancel({ id: job.id, actor: null });
    const stillPending = await submit(t.store);
    const node = await register(t.store);
    const running = await submit(t.store, { priority: "live" });
    await claim(t.store, node.id, 1);
    t.clock.advanceSeconds(31 * 86_400);
    const recent = await submit(t.store);
    await t.store.jobs.cancel({ id: recent.id, actor: null });

    const result = await new Retention(t.store, t.clock, 30, pino({ level: "silent" })).runOnce();
    expect(result.jobs).toBe(old);
    expect(result.audit).toBeGreaterThan(old);
    for (const kept of [stillPending.id, running.id, recent.id]) expect(await t.store.jobs.get(kept)).toBeDefined();
    expect((await t.store.jobs.list({ limit: 500, status: "canceled" })).items.map((j) => j.id)).toEqual([recent.id]);
    const audit = await t.store.audit.list({ limit: 500 });
    expect(audit.items.every((row) => row.created_at >= "2026-01-31")).toBe(true);
  });
});
