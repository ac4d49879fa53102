// The PostgreSQL store's schedules, job types and the facts of GET /jobs/:id/why, against a
// schema of their own (until the store suite runs on every dialect), with several masters.
import { sql } from "kysely";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { PgContext } from "../../../master/store/postgres/context.js";
import { PostgresJobTypeStore, typeGates, typeRoom } from "../../../master/store/postgres/job-types.js";
import { JOBS_AHEAD_CAP, whyFacts } from "../../../master/store/postgres/jobs/why.js";
import { PostgresNodeStore } from "../../../master/store/postgres/nodes.js";
import { PostgresScheduleStore } from "../../../master/store/postgres/schedules.js";
import { auditOf, claim, jobRow, openScratch, postgresReachable, submit, type PgScratch } from "../../helpers/pg-scratch.js";
import { jobParams } from "../../helpers/store.js";

const reachable = await postgresReachable();

describe.skipIf(!reachable)("PostgreSQL schedules, types and why", () => {
  let s: PgScratch;
  let ctx: PgContext;
  beforeEach(async () => {
    s = await openScratch();
    ctx = s.ctx;
  });
  afterEach(async () => {
    await s.close();
  });

  describe("schedules", () => {
    const fields = (name: string, nextRunAt: Date | null = new Date("2026-01-01T10:05:00.000Z")) => ({
      name,
      cron: "*/5 * * * *",
      timezone: "UTC",
      job: { type: "report", payload: { kind: "nightly" }, tags: { team: "ops" } },
      enabled: nextRunAt !== null,
      nextRunAt,
    });
    const create = async (store: PostgresScheduleStore, name: string, nextRunAt?: Date | null) => {
      const outcome = await store.create({ ...fields(name, nextRunAt), clientId: "client-a", actor: "client-a" });
      if (!outcome.ok) throw new Error("create refused");
      return outcome.schedule;
    };

    it("creates, lists, updates and deletes schedules, refusing a name taken by the same client", async () => {
      const store = new PostgresScheduleStore(ctx);
      await s.settle();
      s.heard.length = 0;
      const a = await create(store, "a");
      expect(a).toMatchObject({ name: "a", enabled: true, next_run_at: "2026-01-01T10:05:00.000Z", last_run_at: null, job: { type: "report" } });
      const b = await create(store, "b", null);
      expect(b).toMatchObject({ enabled: false, next_run_at: null });
      expect(await store.create({ ...fields("a"), clientId: "client-a", actor: null })).toEqual({ ok: false, reason: "conflict" });
      expect((await store.create({ ...fields("a"), clientId: "client-b", actor: null })).ok).toBe(true);
      const page = await store.list({ limit: 2, clientId: "client-a" });
      expect(page.items.map((schedule) => schedule.id)).toEqual([a.id, b.id]);
      expect((await store.list({ limit: 2, cursor: (await store.list({ limit: 2 })).next_cursor ?? undefined })).items.map((x) => x.client_id)).toEqual(["client-b"]);
      expect(await store.update({ id: b.id, fields: fields("a"), actor: null })).toEqual({ ok: false, reason: "conflict" });
      expect(await store.update({ id: "nope", fields: fields("x"), actor: null })).toEqual({ ok: false, reason: "not_found" });
      const updated = await store.update({ id: b.id, fields: { ...fields("b2", new Date("2026-01-01T11:00:00.000Z")), cron: "0 * * * *" }, actor: "admin" });
      expect(updated).toMatchObject({ ok: true, schedule: { id: b.id, name: "b2", cron: "0 * * * *", enabled: true, next_run_at: "2026-01-01T11:00:00.000Z" } });
      expect(await store.delete({ id: a.id, actor: "admin" })).toBe(true);
      expect(await store.delete({ id: a.id, actor: "admin" })).toBe(false);
      expect(await store.get(a.id)).toBeUndefined();
      expect((await auditOf(ctx, a.id)).map((e) => e.event_type)).toEqual(["schedule.created", "schedule.deleted"]);
      await s.settle();
      // Created a, b and client-b's a; updated b; deleted a: each tells the scheduler.
      expect(s.heard.filter((change) => change.schedules)).toHaveLength(5);
    });

    it("answers what is due and when the next one is", async () => {
      const store = new PostgresScheduleStore(ctx);
      expect(await store.nextDueAt()).toBeNull();
      const soon = await create(store, "soon", new Date("2026-01-01T10:05:00.000Z"));
      await create(store, "later", new Date("2026-01-01T11:00:00.000Z"));
      await create(store, "off", null);
      expect(await store.nextDueAt()).toEqual(new Date("2026-01-01T10:05:00.000Z"));
      expect(await store.due({ now: new Date("2026-01-01T10:04:59.999Z"), limit: 10 })).toEqual([]);
      expect((await store.due({ now: new Date("2026-01-01T10:05:00.000Z"), limit: 10 })).map((x) => x.id)).toEqual([soon.id]);
      expect(await store.due({ now: new Date("2026-01-01T12:00:00.000Z"), limit: 10 })).toHaveLength(2);
    });

    it("submits one job per tick however many masters fire it at once", async () => {
      const schedule = await create(new PostgresScheduleStore(ctx), "tick");
      const masters = [ctx, s.second(), s.second()].map((context) => new PostgresScheduleStore(context));
      const job = jobParams({ type: "report", tags: { schedule: schedule.id } });
      const dueAt = schedule.next_run_at ?? "";
      const fired = await Promise.all(masters.map((store) => store.fire({ scheduleId: schedule.id, dueAt, nextRunAt: new Date("2026-01-01T10:10:00.000Z"), job })));
      expect(fired.filter((outcome) => outcome.fired)).toHaveLength(1);
      const count = await ctx.db.one(sql<{ n: number }>`SELECT count(*) AS n FROM jobs WHERE type = 'report'`);
      expect(count?.n).toBe(1);
      expect(await masters[0]?.get(schedule.id)).toMatchObject({ last_run_at: dueAt, next_run_at: "2026-01-01T10:10:00.000Z" });
      const winner = fired.find((outcome) => outcome.fired);
      expect(winner?.fired && winner.job).toMatchObject({ type: "report", status: "pending", tags: { schedule: schedule.id } });
      expect((await auditOf(ctx, schedule.id)).map((e) => e.event_type)).toEqual(["schedule.created", "schedule.fired"]);
      // The same tick again: already moved on.
      expect(await masters[1]?.fire({ scheduleId: schedule.id, dueAt, nextRunAt: new Date("2026-01-01T10:10:00.000Z"), job })).toEqual({ fired: false });
    });
  });

  describe("job types", () => {
    const since = () => new Date(s.clock.now().getTime() - 3_600_000);

    it("lists every type with jobs or a setting, with its counts", async () => {
      const types = new PostgresJobTypeStore(ctx);
      await submit(ctx, { type: "a" });
      await submit(ctx, { type: "a", requires: ["gpu"] });
      await submit(ctx, { type: "b" });
      const node = (await new PostgresNodeStore(ctx).register({ clientId: "w", name: "n", labels: ["gpu"], capacity: 1, types: null, version: null, hardware: {} })).node;
      await claim(ctx, node.id);
      await ctx.db.run(sql`UPDATE jobs SET status = 'failed', finished_at = ${s.clock.now().toISOString()} WHERE type = 'b'`);
      await types.set({ type: "render", maxRunning: 3, paused: true, actor: "admin", since: since() });
      expect(await types.list({ since: since() })).toEqual([
        { type: "a", max_running: null, paused: false, pending: 1, running: 1, completed_1h: 0, failed_1h: 0 },
        { type: "b", max_running: null, paused: false, pending: 0, running: 0, completed_1h: 0, failed_1h: 1 },
        { type: "render", max_running: 3, paused: true, pending: 0, running: 0, completed_1h: 0, failed_1h: 0 },
      ]);
    });

    it("records each change, tells waiting claims when a type may run more, and gates claims", async () => {
      const types = new PostgresJobTypeStore(ctx);
      await submit(ctx, { type: "render" });
      await s.settle();
      s.heard.length = 0;
      const set = (change: { maxRunning?: number | null; paused?: boolean }) => types.set({ type: "render", ...change, actor: "admin", since: since() });
      expect(await set({ maxRunning: 3, paused: true })).toMatchObject({ type: "render", max_running: 3, paused: true, pending: 1 });
      await set({ maxRunning: 2 }); // lowered: nothing more may run
      await set({ paused: false }); // resumed
      await set({ maxRunning: 5 }); // raised
      await s.settle();
      expect(s.heard.map((change) => change.claimable)).toEqual([true, true]);
      expect((await auditOf(ctx, "render")).map((e) => e.details)).toEqual([
        { from: { max_running: null, paused: false }, to: { max_running: 3, paused: true } },
        { from: { max_running: 3, paused: true }, to: { max_running: 2, paused: true } },
        { from: { max_running: 2, paused: true }, to: { max_running: 2, paused: false } },
        { from: { max_running: 2, paused: false }, to: { max_running: 5, paused: false } },
      ]);
      await types.set({ type: "held", paused: true, actor: null, since: since() });
      const gates = await ctx.db.transaction((tx) => typeGates(tx));
      expect(gates).toEqual({ paused: new Set(["held"]), limits: new Map([["render", 5]]) });
    });

    it("holds a type's limit across masters: a second claim counts what the first took under the lock", async () => {
      await new PostgresJobTypeStore(ctx).set({ type: "render", maxRunning: 2, actor: null, since: since() });
      for (let i = 0; i < 3; i++) await submit(ctx, { type: "render" });
      const node = (await new PostgresNodeStore(ctx).register({ clientId: "w", name: "n", labels: [], capacity: 10, types: null, version: null, hardware: {} })).node;
      const other = s.second();
      let release: () => void = () => undefined;
      const held = new Promise<void>((resolve) => (release = resolve));
      let locked: () => void = () => undefined;
      const isLocked = new Promise<void>((resolve) => (locked = resolve));
      // Master A takes the room, and the jobs, in one transaction; B asks meanwhile.
      const first = ctx.db.transaction(async (tx) => {
        const room = await typeRoom(tx, ["render", "unlimited"]);
        locked();
        await held;
        await sql`UPDATE jobs SET status = 'running', node_id = ${node.id}, attempt = 1
                  WHERE seq IN (SELECT seq FROM jobs WHERE type = 'render' ORDER BY seq LIMIT ${room.get("render") ?? 0})`.execute(tx.db);
        return room;
      });
      await isLocked;
      const second = other.db.transaction((tx) => typeRoom(tx, ["render"]));
      const raced = await Promise.race([second.then(() => "answered"), new Promise((resolve) => setTimeout(() => resolve("waiting"), 100))]);
      expect(raced).toBe("waiting");
      release();
      expect(await first).toEqual(new Map([["render", 2]]));
      expect(await second).toEqual(new Map([["render", 0]]));
    });
  });

  describe("why", () => {
    const register = (name: string, labels: string[], types: string[] | null, capacity = 1) =>
      new PostgresNodeStore(ctx).register({ clientId: "w", name, labels, capacity, types, version: null, hardware: {} });

    it("counts the pending jobs ahead in every lane the eligible nodes cover", async () => {
      const first = await submit(ctx, { type: "a" });
      await submit(ctx, { type: "b", priority: "high" }); // ahead, in a lane the node also covers
      await submit(ctx, { type: "c", priority: "live" }); // the node does not run c
      await submit(ctx, { type: "a", requires: ["gpu"] }); // the node has no gpu
      const job = await submit(ctx, { type: "a" });
      await submit(ctx, { type: "a" }); // behind it
      await register("n", [], ["a", "b"]);
      const facts = await whyFacts(ctx, job.id);
      expect(facts).toMatchObject({ status: "pending", type: "a", requires: [], readyAt: null, waitingOn: [], jobsAhead: 2 });
      expect(facts?.typeControl).toEqual({ paused: false, maxRunning: null, running: 0 });
      expect(facts?.nodes).toEqual([expect.objectContaining({ name: "n", status: "online", types: ["a", "b"], running: 0, capacity: 1 })]);
      expect((await whyFacts(ctx, first.id))?.jobsAhead).toBe(1);
      expect(await whyFacts(ctx, "nope")).toBeUndefined();
    });

    it("counts its own lane when no node can run it, and stops counting at the cap", async () => {
      const job = await submit(ctx, { type: "a", priority: "low" });
      expect((await whyFacts(ctx, job.id))?.jobsAhead).toBe(0);
      const lane = (await jobRow(ctx, job.id)).lane;
      await ctx.db.run(sql`
        INSERT INTO jobs (id, client_id, type, lane, payload, priority, effective_priority, status, max_retries, timeout_s, ready_at, created_at, updated_at)
        SELECT 'bulk-' || i, 'client-a', 'a', ${lane}, '{}'::jsonb, 10, 10, 'pending', 3, 60, now(), now(), now()
        FROM generate_series(1, ${JOBS_AHEAD_CAP}) AS i`);
      expect((await whyFacts(ctx, job.id))?.jobsAhead).toBeNull();
    });

    it("names what a blocked job waits for, when a scheduled one is due, and its type's limit", async () => {
      const dependency = await submit(ctx);
      const blocked = await submit(ctx, { dependsOn: [dependency.id] });
      expect(await whyFacts(ctx, blocked.id)).toMatchObject({ status: "blocked", waitingOn: [{ id: dependency.id, status: "pending" }], jobsAhead: null });
      const later = await submit(ctx, { runAt: new Date("2026-01-02T00:00:00.000Z") });
      expect(await whyFacts(ctx, later.id)).toMatchObject({ status: "scheduled", readyAt: "2026-01-02T00:00:00.000Z" });
      await new PostgresJobTypeStore(ctx).set({ type: "echo", maxRunning: 1, actor: null, since: new Date(0) });
      const node = (await register("n", [], null, 5)).node;
      await claim(ctx, node.id, 1);
      expect((await whyFacts(ctx, later.id))?.typeControl).toEqual({ paused: false, maxRunning: 1, running: 1 });
    });
  });
});
