// Recurring schedules with a fake clock: one job per tick, at most one catch-up, one winner among
// masters, and a tick that cannot fire skipped (audited) so that the others fire on time.
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { createClient } from "../../../master/auth/clients.js";
import { nextTick } from "../../../master/queue/cron.js";
import { StorageUnreachableError, UnstorableValueError, type Store } from "../../../master/store/types.js";
import { Scheduler } from "../../../master/sweepers/scheduler.js";
import { dialects, submit, type TestStore, storePerTest } from "../../helpers/store.js";

describe.each(dialects)("scheduler ($name)", (dialect) => {
  let t: TestStore;
  storePerTest(dialect, (opened) => (t = opened));

  /** A scheduler on `store` (the test's own by default), running every `intervalMs`. */
  const scheduler = (store: Store = t.store, intervalMs = 1000, clientMaxQueued?: number) =>
    new Scheduler({
      store,
      clock: t.clock,
      log: pino({ level: "silent" }),
      intervalMs,
      defaults: { maxRetries: 3, jobTimeoutS: 60 },
      clientMaxQueued,
    });

  async function createSchedule(cron: string, timezone = "UTC", enabled = true) {
    const outcome = await t.store.schedules.create({
      clientId: "client-a",
      actor: "client-a",
      name: `s-${cron}-${timezone}`,
      cron,
      timezone,
      enabled,
      job: { type: "report", payload: { kind: "nightly" }, tags: { team: "ops" } },
      nextRunAt: enabled ? nextTick(cron, timezone, t.clock.now()) : null,
    });
    if (!outcome.ok) throw new Error("create failed");
    return outcome.schedule;
  }

  const jobsOf = async (scheduleId: string) =>
    (await t.store.jobs.list({ limit: 100, tag: { key: "schedule", value: scheduleId } })).items;

  it("fires a job with the payload its schedule names, null included (none: {})", async () => {
    const made = await Promise.all(
      [null, undefined].map(async (payload, i) => {
        const outcome = await t.store.schedules.create({
          clientId: "client-a",
          actor: "client-a",
          name: `payload-${i}`,
          cron: "* * * * *",
          timezone: "UTC",
          enabled: true,
          job: { type: "report", ...(payload === undefined ? {} : { payload }) },
          nextRunAt: nextTick("* * * * *", "UTC", t.clock.now()),
        });
        if (!outcome.ok) throw new Error("create failed");
        return outcome.schedule;
      }),
    );
    t.clock.advance(60_000);
    await scheduler().runOnce();
    const payloads = await Promise.all(made.map(async (schedule) => (await jobsOf(schedule.id)).map((job) => job.payload)));
    expect(payloads).toEqual([[null], [{}]]);
  });

  /** The store, but these verbs (fire: a job the database refuses) throw `error()` for these schedules. */
  /** The test's store, its `verbs` throwing `error` for the schedules `ids` (while `failing()` says so). */
  function refusing(ids: ReadonlySet<string>, error: () => Error, verbs: readonly ("fire" | "skip")[] = ["fire"], failing = () => true): Store {
    const schedules = new Proxy(t.store.schedules, {
      get(target, key) {
        const verb = verbs.find((name) => name === key);
        if (verb) {
          return (params: { scheduleId: string }) =>
            ids.has(params.scheduleId) && failing() ? Promise.reject(error()) : (target[verb] as (p: unknown) => Promise<unknown>).call(target, params);
        }
        const value: unknown = Reflect.get(target, key);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    return new Proxy(t.store, {
      get(target, key) {
        if (key === "schedules") return schedules;
        const value: unknown = Reflect.get(target, key);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
  }

  const skipsOf = async (scheduleId: string) =>
    (await t.store.audit.list({ limit: 100, entityId: scheduleId, eventType: "schedule.skipped" })).items.map((entry) => entry.details);

  /**
   * The scheduler's own loop, with the fake clock: wait what it asks (never 0 ms: no busy
   * loop), run, until `until`. Answers how many runs.
   */
  async function runUntil(s: Scheduler, until: string): Promise<number> {
    let runs = 0;
    for (;;) {
      await s.runOnce();
      runs += 1;
      const delay = (s as unknown as { nextDelayMs(): number }).nextDelayMs();
      expect(delay).toBeGreaterThan(0);
      if (t.clock.now().getTime() + delay > Date.parse(until)) return runs;
      t.clock.advance(delay);
    }
  }

  it("skips the tick of a schedule whose job is refused, once per tick, and fires the others on time", async () => {
    const bad = await createSchedule("* * * * *");
    const good = await createSchedule("*/10 * * * * *");
    const s = scheduler(refusing(new Set([bad.id]), () => new UnstorableValueError("the database cannot store a value of this request (NUL)")), 60_000);
    t.clock.advanceSeconds(60);
    await s.runOnce();
    // Skipped, the bad one is not due again before its next tick: the next run is the good one's next tick.
    expect((s as unknown as { nextDelayMs(): number }).nextDelayMs()).toBe(10_000);
    expect(await t.store.schedules.get(bad.id)).toMatchObject({
      enabled: true,
      next_run_at: "2026-01-01T10:02:00.000Z",
      last_run_at: null,
      last_skipped_at: "2026-01-01T10:01:00.000Z",
      last_skip_reason: "unstorable_job",
      last_skip_message: "the database cannot store a value of this request (NUL)",
    });
    t.clock.advanceSeconds(10);
    // From 10:01:10 to 10:03:00: a run per ten seconds, each firing the good one; the bad one skipped at 10:02 and 10:03.
    expect(await runUntil(s, "2026-01-01T10:03:05.000Z")).toBe(12);
    expect((await jobsOf(good.id)).map((job) => job.created_at)).toHaveLength(13);
    expect(await jobsOf(bad.id)).toHaveLength(0);
    expect(await skipsOf(bad.id)).toMatchObject(
      ["10:03:00", "10:02:00", "10:01:00"].map((at) => ({ tick: `2026-01-01T${at}.000Z`, reason: "unstorable_job", message: expect.stringContaining("NUL") })),
    );
    expect(await skipsOf(good.id)).toEqual([]);
  });

  it("tries a tick whose job fails otherwise until the next tick comes, then skips it, telling its owner no more than that (the error is in the log and audit)", async () => {
    const bad = await createSchedule("* * * * *");
    const s = scheduler(refusing(new Set([bad.id]), () => new Error("something internal\u0000went wrong")), 1000);
    t.clock.advanceSeconds(60);
    expect(await s.runOnce()).toBe(0);
    // 10:01's tick stays due (the error may pass), tried again a run later.
    expect((s as unknown as { nextDelayMs(): number }).nextDelayMs()).toBe(1000);
    t.clock.advanceSeconds(30);
    expect(await s.runOnce()).toBe(0);
    expect(await t.store.schedules.get(bad.id)).toMatchObject({ next_run_at: "2026-01-01T10:01:00.000Z", last_skipped_at: null });
    // 10:02 has come: 10:01's tick is skipped, and 10:02's is due at once.
    t.clock.advanceSeconds(30);
    expect(await s.runOnce()).toBe(0);
    expect(await t.store.schedules.get(bad.id)).toMatchObject({
      next_run_at: "2026-01-01T10:02:00.000Z",
      last_skipped_at: "2026-01-01T10:01:00.000Z",
      last_skip_reason: "submit_failed",
      last_skip_message: "its job could not be submitted (the master's log says why)",
    });
    expect(await skipsOf(bad.id)).toMatchObject([{ reason: "submit_failed", error: "something internal went wrong" }]);
  });

  it("skips a catch-up tick failing for an unknown reason once, past every tick missed while the master was down", async () => {
    const schedule = await createSchedule("* * * * *");
    const s = scheduler(refusing(new Set([schedule.id]), () => new Error("something internal went wrong")), 1000);
    t.clock.advanceSeconds(24 * 3600);
    for (let run = 0; run < 20; run++) await s.runOnce();
    expect(await skipsOf(schedule.id)).toHaveLength(1);
    expect(Date.parse((await t.store.schedules.get(schedule.id))?.next_run_at ?? "")).toBeGreaterThan(t.clock.now().getTime());
  });

  it("tries a daily tick failing for an unknown reason for ten minutes, saying so once, then skips it", async () => {
    const schedule = await createSchedule("0 0 * * *");
    const lines: string[] = [];
    const s = new Scheduler({
      store: refusing(new Set([schedule.id]), () => new Error("something internal went wrong")),
      clock: t.clock,
      log: pino({ level: "warn" }, { write: (line: string) => void lines.push(line) }),
      intervalMs: 10_000,
      defaults: { maxRetries: 3, jobTimeoutS: 60 },
    });
    t.clock.advance(Date.parse(schedule.next_run_at ?? "") - t.clock.now().getTime());
    const until = t.clock.now().getTime() + 3600_000;
    let runs = 0;
    while (t.clock.now().getTime() < until) {
      await s.runOnce();
      runs += 1;
      t.clock.advance(Math.max(1, (s as unknown as { nextDelayMs(): number }).nextDelayMs()));
    }
    expect(lines.filter((line) => line.includes('"schedule.retrying"'))).toHaveLength(1);
    expect(await skipsOf(schedule.id)).toMatchObject([{ tick: schedule.next_run_at, reason: "submit_failed" }]);
    expect((await t.store.schedules.get(schedule.id))?.next_run_at).toBe("2026-01-03T00:00:00.000Z");
    // An hour of runs every interval (the tick not due after its skip): no busy loop.
    expect(runs).toBeLessThan(400);
  });

  it("submits a tick whose first try failed for a passing reason (a deadlock past the store's retries) at the next run, skipping nothing", async () => {
    const schedule = await createSchedule("0 * * * *");
    let failures = 1;
    const flaky = refusing(new Set([schedule.id]), () => new Error("deadlock detected"), ["fire"], () => failures-- > 0);
    const s = scheduler(flaky, 1000);
    t.clock.advance(60 * 60_000);
    expect(await s.runOnce()).toBe(0);
    t.clock.advance(1000);
    expect(await s.runOnce()).toBe(1);
    expect(await jobsOf(schedule.id)).toHaveLength(1);
    expect(await t.store.schedules.get(schedule.id)).toMatchObject({ last_run_at: "2026-01-01T11:00:00.000Z", last_skipped_at: null });
    expect(await skipsOf(schedule.id)).toEqual([]);
  });

  it("skips a tick of a schedule whose job PostgreSQL cannot store (a NUL), and fires the others", async () => {
    const bad = await t.store.schedules.create({
      clientId: "client-a",
      actor: "client-a",
      name: "nul",
      cron: "* * * * *",
      timezone: "UTC",
      enabled: true,
      // PostgreSQL's text and jsonb cannot hold a NUL; SQLite can.
      job: { type: "report", payload: { x: "\u0000" } },
      nextRunAt: nextTick("* * * * *", "UTC", t.clock.now()),
    });
    if (!bad.ok) throw new Error("create failed");
    t.clock.advance(1_000);
    const good = await createSchedule("* * * * *");
    t.clock.advance(120_000);
    for (let tick = 0; tick < 2; tick++) {
      await scheduler().runOnce();
      t.clock.advance(60_000);
    }
    expect((await jobsOf(good.id)).length).toBe(2);
    const postgres = dialect.name === "postgres";
    expect((await jobsOf(bad.schedule.id)).length).toBe(postgres ? 0 : 2);
    expect((await skipsOf(bad.schedule.id)).map((details) => details.reason)).toEqual(postgres ? ["unstorable_job", "unstorable_job"] : []);
    expect((await t.store.schedules.get(bad.schedule.id))?.next_run_at).toBe("2026-01-01T10:04:00.000Z");
  });

  it("disables a schedule whose cron or time zone no longer parses, saying why, and fires the others", async () => {
    const make = async (name: string, cron: string, timezone: string) => {
      const outcome = await t.store.schedules.create({
        clientId: "client-a", actor: "client-a", name, cron, timezone, enabled: true,
        job: { type: "report" }, nextRunAt: new Date("2026-01-01T10:01:00.000Z"),
      });
      if (!outcome.ok) throw new Error("create failed");
      return outcome.schedule;
    };
    const [cron, zone] = [await make("bad-cron", "every day at noon", "UTC"), await make("bad-zone", "* * * * *", "Mars/Olympus_Mons")];
    const good = await createSchedule("* * * * *");
    const s = scheduler();
    t.clock.advanceSeconds(60);
    expect(await s.runOnce()).toBe(1);
    expect(await s.runOnce()).toBe(0);
    expect(await t.store.schedules.get(cron.id)).toMatchObject({
      enabled: false,
      next_run_at: null,
      last_skipped_at: "2026-01-01T10:01:00.000Z",
      last_skip_reason: "invalid_cron",
      last_skip_message: expect.stringMatching(/^not a valid cron expression.*; the schedule is disabled until it is changed$/),
    });
    expect(await t.store.schedules.get(zone.id)).toMatchObject({ enabled: false, next_run_at: null, last_skip_reason: "invalid_timezone" });
    expect(await skipsOf(cron.id)).toMatchObject([{ reason: "invalid_cron", disabled: true, next_run_at: null }]);
    expect(await skipsOf(zone.id)).toMatchObject([{ reason: "invalid_timezone", disabled: true }]);
    t.clock.advanceSeconds(60);
    expect(await s.runOnce()).toBe(1);
    expect(await jobsOf(good.id)).toHaveLength(2);
    expect(await skipsOf(cron.id)).toHaveLength(1);
  });

  it("leaves the tick due when the database itself fails, and waits an interval before trying again", async () => {
    const schedule = await createSchedule("* * * * *");
    const s = scheduler(refusing(new Set([schedule.id]), () => new StorageUnreachableError("PostgreSQL: connection refused", "ECONNREFUSED")), 1000);
    expect(await s.runOnce()).toBe(0);
    t.clock.advanceSeconds(60);
    // The run before said 10:01:00; that time has come, but this run failed: not 0 ms again.
    await expect(s.runOnce()).rejects.toThrow(StorageUnreachableError);
    expect((s as unknown as { nextDelayMs(): number }).nextDelayMs()).toBe(1000);
    expect(await t.store.schedules.get(schedule.id)).toMatchObject({ next_run_at: "2026-01-01T10:01:00.000Z", last_skipped_at: null });
    expect(await skipsOf(schedule.id)).toEqual([]);
    expect(await scheduler().runOnce()).toBe(1);
  });

  it("waits an interval, not 0 ms, for a schedule whose tick can be neither fired nor skipped", async () => {
    const bad = await createSchedule("* * * * *");
    const s = scheduler(refusing(new Set([bad.id]), () => new Error("refused"), ["fire", "skip"]), 1000);
    t.clock.advanceSeconds(60);
    expect(await s.runOnce()).toBe(0);
    expect((s as unknown as { nextDelayMs(): number }).nextDelayMs()).toBe(1000);
    expect((await t.store.schedules.get(bad.id))?.next_run_at).toBe("2026-01-01T10:01:00.000Z");
  });

  it("skips a client's tick while it has GAFFER_CLIENT_MAX_QUEUED jobs not yet finished; an admin's still fires", async () => {
    const client = await createClient(t.store, { name: "billing", role: "client", actor: null });
    const admin = await createClient(t.store, { name: "root", role: "admin", actor: null });
    const make = async (clientId: string) => {
      const outcome = await t.store.schedules.create({
        clientId, actor: clientId, name: "every-minute", cron: "* * * * *", timezone: "UTC", enabled: true,
        job: { type: "report" }, nextRunAt: nextTick("* * * * *", "UTC", t.clock.now()),
      });
      if (!outcome.ok) throw new Error("create failed");
      return outcome.schedule;
    };
    const [mine, admins] = [await make(client.id), await make(admin.id)];
    const waiting = await submit(t.store, { clientId: client.id });
    await submit(t.store, { clientId: admin.id });
    const s = scheduler(t.store, 1000, 1);
    t.clock.advanceSeconds(60);
    expect(await s.runOnce()).toBe(1);
    expect(await jobsOf(mine.id)).toHaveLength(0);
    expect(await jobsOf(admins.id)).toHaveLength(1);
    // The skipped tick is gone, not retried: the schedule moved on, and the audit log says why.
    expect(await t.store.schedules.get(mine.id)).toMatchObject({
      next_run_at: "2026-01-01T10:02:00.000Z",
      last_skipped_at: "2026-01-01T10:01:00.000Z",
      last_skip_reason: "quota_exceeded",
      last_skip_message: expect.stringContaining("GAFFER_CLIENT_MAX_QUEUED"),
      // Skipped, not run.
      last_run_at: null,
    });
    const audit = await t.store.audit.list({ limit: 10, entityId: mine.id, eventType: "schedule.skipped" });
    expect(audit.items).toMatchObject([{ details: { reason: "quota_exceeded", unfinished: 1, limit: 1 } }]);
    await t.store.jobs.cancel({ id: waiting.id, actor: null });
    t.clock.advanceSeconds(60);
    expect(await s.runOnce()).toBe(2);
    expect(await jobsOf(mine.id)).toHaveLength(1);
  });

  it("fires a client's schedule made with a finer cron at most once a minute; an admin's on every tick", async () => {
    const client = await createClient(t.store, { name: "old-app", role: "client", actor: null });
    const admin = await createClient(t.store, { name: "root", role: "admin", actor: null });
    const make = async (clientId: string) => {
      const outcome = await t.store.schedules.create({
        clientId, actor: clientId, name: "every-ten-seconds", cron: "*/10 * * * * *", timezone: "UTC", enabled: true,
        job: { type: "tick" }, nextRunAt: nextTick("*/10 * * * * *", "UTC", t.clock.now()),
      });
      if (!outcome.ok) throw new Error("create failed");
      return outcome.schedule;
    };
    const [mine, admins] = [await make(client.id), await make(admin.id)];
    const s = scheduler(t.store, 1000, 1000);
    for (let i = 0; i < 12; i++) {
      t.clock.advanceSeconds(10);
      await s.runOnce();
    }
    expect(await jobsOf(admins.id)).toHaveLength(12);
    expect(await jobsOf(mine.id)).toHaveLength(2);
  });

  it("submits one job per tick, tagged with the schedule", async () => {
    const schedule = await createSchedule("*/5 * * * *");
    expect(schedule.next_run_at).toBe("2026-01-01T10:05:00.000Z");
    const s = scheduler();
    t.clock.advanceSeconds(299);
    expect(await s.runOnce()).toBe(0);
    t.clock.advanceSeconds(1);
    expect(await s.runOnce()).toBe(1);
    expect(await s.runOnce()).toBe(0);
    const [job] = await jobsOf(schedule.id);
    expect(job).toMatchObject({ type: "report", client_id: "client-a", payload: { kind: "nightly" }, tags: { team: "ops", schedule: schedule.id } });
    expect(await t.store.schedules.get(schedule.id)).toMatchObject({
      last_run_at: "2026-01-01T10:05:00.000Z",
      next_run_at: "2026-01-01T10:10:00.000Z",
    });
  });

  it("catches up missed ticks with a single job, then resumes on the next future tick", async () => {
    const schedule = await createSchedule("*/5 * * * *");
    t.clock.advanceSeconds(3 * 3600 + 60);
    const s = scheduler();
    expect(await s.runOnce()).toBe(1);
    expect(await s.runOnce()).toBe(0);
    expect(await jobsOf(schedule.id)).toHaveLength(1);
    expect((await t.store.schedules.get(schedule.id))?.next_run_at).toBe("2026-01-01T13:05:00.000Z");
  });

  it("lets only one of two masters fire a tick", async () => {
    const schedule = await createSchedule("0 * * * *");
    t.clock.advanceSeconds(3600);
    const [a, b] = [scheduler(), scheduler()];
    const fired = (await Promise.all([a.runOnce(), b.runOnce(), a.runOnce()])).reduce((sum, n) => sum + n, 0);
    expect(fired).toBe(1);
    expect(await jobsOf(schedule.id)).toHaveLength(1);
  });

  it("follows the schedule's time zone, daylight saving included", async () => {
    const berlin = await createSchedule("0 3 * * *", "Europe/Berlin");
    expect(berlin.next_run_at).toBe("2026-01-02T02:00:00.000Z");
    expect(nextTick("0 3 * * *", "Europe/Berlin", new Date("2026-07-01T12:00:00Z")).toISOString()).toBe("2026-07-02T01:00:00.000Z");
  });

  it("does not fire while disabled", async () => {
    const schedule = await createSchedule("* * * * *", "UTC", false);
    t.clock.advanceSeconds(600);
    expect(await scheduler().runOnce()).toBe(0);
    expect(await jobsOf(schedule.id)).toHaveLength(0);
  });
});
