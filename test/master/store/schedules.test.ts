// The schedule store: names unique per client, pages, changes audited and told to the
// scheduler, what is due when, and skipping a tick that cannot fire (firing a tick:
// test/master/sweepers/scheduler.test.ts).
import { describe, expect, it } from "vitest";
import type { Committed } from "../../../master/store/types.js";
import { dialects, jobParams, type TestStore, storePerTest } from "../../helpers/store.js";

describe.each(dialects)("schedules ($name)", (dialect) => {
  let t: TestStore;
  storePerTest(dialect, (opened) => (t = opened));

  const fields = (name: string, nextRunAt: Date | null = new Date("2026-01-01T10:05:00.000Z")) => ({
    name,
    cron: "*/5 * * * *",
    timezone: "UTC",
    job: { type: "report", payload: { kind: "nightly" }, tags: { team: "ops" } },
    enabled: nextRunAt !== null,
    nextRunAt,
  });
  const create = async (name: string, nextRunAt?: Date | null) => {
    const outcome = await t.store.schedules.create({ ...fields(name, nextRunAt), clientId: "client-a", actor: "client-a" });
    if (!outcome.ok) throw new Error("create refused");
    return outcome.schedule;
  };

  it("creates, lists, updates and deletes schedules, refusing a name the same client has taken", async () => {
    const heard: Committed[] = [];
    t.store.onCommitted((change) => heard.push(change));
    const a = await create("a");
    expect(a).toMatchObject({ name: "a", enabled: true, next_run_at: "2026-01-01T10:05:00.000Z", last_run_at: null, job: { type: "report" } });
    const b = await create("b", null);
    expect(b).toMatchObject({ enabled: false, next_run_at: null });
    expect(await t.store.schedules.create({ ...fields("a"), clientId: "client-a", actor: null })).toEqual({ ok: false, reason: "conflict" });
    expect((await t.store.schedules.create({ ...fields("a"), clientId: "client-b", actor: null })).ok).toBe(true);
    const page = await t.store.schedules.list({ limit: 2, clientId: "client-a" });
    expect(page.items.map((schedule) => schedule.id)).toEqual([a.id, b.id]);
    const all = await t.store.schedules.list({ limit: 2 });
    expect((await t.store.schedules.list({ limit: 2, cursor: all.next_cursor ?? undefined })).items.map((x) => x.client_id)).toEqual(["client-b"]);
    expect(await t.store.schedules.update({ id: b.id, fields: fields("a"), actor: null })).toEqual({ ok: false, reason: "conflict" });
    expect(await t.store.schedules.update({ id: "nope", fields: fields("x"), actor: null })).toEqual({ ok: false, reason: "not_found" });
    const updated = await t.store.schedules.update({ id: b.id, fields: { ...fields("b2", new Date("2026-01-01T11:00:00.000Z")), cron: "0 * * * *" }, actor: "admin" });
    expect(updated).toMatchObject({ ok: true, schedule: { id: b.id, name: "b2", cron: "0 * * * *", enabled: true, next_run_at: "2026-01-01T11:00:00.000Z" } });
    expect(await t.store.schedules.delete({ id: a.id, actor: "admin" })).toBe(true);
    expect(await t.store.schedules.delete({ id: a.id, actor: "admin" })).toBe(false);
    expect(await t.store.schedules.get(a.id)).toBeUndefined();
    const audit = await t.store.audit.list({ limit: 10, entityId: a.id });
    expect(audit.items.map((e) => e.event_type)).toEqual(["schedule.deleted", "schedule.created"]);
    // Created a, b and client-b's a; updated b; deleted a: each tells the scheduler, nothing else does.
    expect(heard.filter((change) => change.schedules)).toHaveLength(5);
    expect(heard).toHaveLength(5);
  });

  it("answers what is due and when the next one is", async () => {
    expect(await t.store.schedules.nextDueAt()).toBeNull();
    const soon = await create("soon", new Date("2026-01-01T10:05:00.000Z"));
    await create("later", new Date("2026-01-01T11:00:00.000Z"));
    await create("off", null);
    expect(await t.store.schedules.nextDueAt()).toEqual(new Date("2026-01-01T10:05:00.000Z"));
    expect(await t.store.schedules.due({ now: new Date("2026-01-01T10:04:59.999Z"), limit: 10 })).toEqual([]);
    expect((await t.store.schedules.due({ now: new Date("2026-01-01T10:05:00.000Z"), limit: 10 })).map((x) => x.id)).toEqual([soon.id]);
    expect(await t.store.schedules.due({ now: new Date("2026-01-01T12:00:00.000Z"), limit: 10 })).toHaveLength(2);
    expect(await t.store.schedules.due({ now: new Date("2026-01-01T12:00:00.000Z"), limit: 1 })).toEqual([expect.objectContaining({ id: soon.id })]);
  });

  describe("skipping a tick that cannot fire", () => {
    const tick = "2026-01-01T10:05:00.000Z";
    const skipped = async (id: string) => (await t.store.audit.list({ limit: 10, entityId: id, eventType: "schedule.skipped" })).items;

    it("moves next_run_at to the next tick, keeps the skip on the schedule and audits it with the reason", async () => {
      const a = await create("a");
      const outcome = await t.store.schedules.skip({
        scheduleId: a.id,
        dueAt: tick,
        nextRunAt: new Date("2026-01-01T10:10:00.000Z"),
        reason: "unstorable_job",
        message: "the database cannot store a value of this request",
        details: { error: "invalid byte sequence" },
      });
      expect(outcome).toEqual({ skipped: true });
      expect(await t.store.schedules.get(a.id)).toMatchObject({
        enabled: true,
        next_run_at: "2026-01-01T10:10:00.000Z",
        last_run_at: null,
        last_skipped_at: tick,
        last_skip_reason: "unstorable_job",
        last_skip_message: "the database cannot store a value of this request",
      });
      expect(await skipped(a.id)).toMatchObject([
        {
          client_id: null,
          details: { tick, reason: "unstorable_job", message: "the database cannot store a value of this request", error: "invalid byte sequence", next_run_at: "2026-01-01T10:10:00.000Z", disabled: false },
        },
      ]);
      expect(await t.store.schedules.due({ now: new Date("2026-01-01T10:09:59.999Z"), limit: 10 })).toEqual([]);
    });

    it("disables a schedule that has no next tick", async () => {
      const a = await create("a");
      expect(await t.store.schedules.skip({ scheduleId: a.id, dueAt: tick, nextRunAt: null, reason: "invalid_cron", message: "not a valid cron expression" })).toEqual({ skipped: true });
      expect(await t.store.schedules.get(a.id)).toMatchObject({ enabled: false, next_run_at: null, last_skipped_at: tick, last_skip_reason: "invalid_cron" });
      expect(await skipped(a.id)).toMatchObject([{ details: { reason: "invalid_cron", next_run_at: null, disabled: true } }]);
      expect(await t.store.schedules.nextDueAt()).toBeNull();
    });

    it("does nothing to a tick already skipped or fired, nor fires a tick skipped", async () => {
      const [a, b] = [await create("a"), await create("b")];
      const skip = (id: string) =>
        t.store.schedules.skip({ scheduleId: id, dueAt: tick, nextRunAt: new Date("2026-01-01T10:10:00.000Z"), reason: "submit_failed", message: "no" });
      const fire = (id: string) =>
        t.store.schedules.fire({ scheduleId: id, dueAt: tick, nextRunAt: new Date("2026-01-01T10:10:00.000Z"), job: jobParams({ tags: { schedule: id } }) });
      expect(await skip(a.id)).toEqual({ skipped: true });
      expect(await skip(a.id)).toEqual({ skipped: false });
      expect(await fire(a.id)).toEqual({ fired: false });
      expect((await fire(b.id)).fired).toBe(true);
      expect(await skip(b.id)).toEqual({ skipped: false });
      expect(await t.store.schedules.get(b.id)).toMatchObject({ last_run_at: tick, last_skipped_at: null, last_skip_reason: null, next_run_at: "2026-01-01T10:10:00.000Z" });
      expect(await skipped(a.id)).toHaveLength(1);
      expect(await skipped(b.id)).toHaveLength(0);
      expect((await t.store.jobs.list({ limit: 10 })).items.map((job) => job.tags.schedule)).toEqual([b.id]);
      // Nor a disabled schedule's, nor one that is gone.
      const off = await create("off", null);
      expect(await t.store.schedules.skip({ scheduleId: off.id, dueAt: tick, nextRunAt: null, reason: "invalid_cron", message: "x" })).toEqual({ skipped: false });
      expect(await t.store.schedules.skip({ scheduleId: "nope", dueAt: tick, nextRunAt: null, reason: "invalid_cron", message: "x" })).toEqual({ skipped: false });
    });
  });
});
