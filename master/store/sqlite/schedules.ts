// Recurring schedules: one job per tick, claimed by moving next_run_at under a guard.
import { randomUUID } from "node:crypto";
import { sql } from "kysely";
import { quotaSkipMessage } from "../pages.js";
import type { SchedulesTable } from "../schema.js";
import type {
  ActorParams,
  Job,
  Page,
  PageParams,
  Schedule,
  ScheduleFields,
  ScheduledJobSpec,
  ScheduleSkipParams,
  ScheduleSkipReason,
  ScheduleStore,
  SubmitJobParams,
} from "../types.js";
import type { StoreContext } from "./context.js";
import type { SqliteJobStore } from "./jobs/index.js";
import { scheduleCount } from "./quotas.js";
import { decodeCursor, pageOf } from "./rows.js";

function toSchedule(row: SchedulesTable): Schedule {
  return {
    id: row.id,
    name: row.name,
    client_id: row.client_id,
    cron: row.cron,
    timezone: row.timezone,
    job: JSON.parse(row.job) as ScheduledJobSpec,
    enabled: row.enabled === 1,
    next_run_at: row.next_run_at,
    last_run_at: row.last_run_at,
    last_skipped_at: row.last_skipped_at,
    last_skip_reason: row.last_skip_reason as ScheduleSkipReason | null,
    last_skip_message: row.last_skip_message,
    created_at: row.created_at,
    updated_at: row.updated_at,
  };
}

function columns(fields: ScheduleFields) {
  return {
    name: fields.name,
    cron: fields.cron,
    timezone: fields.timezone,
    job: JSON.stringify(fields.job),
    enabled: fields.enabled ? 1 : 0,
    next_run_at: fields.enabled && fields.nextRunAt ? fields.nextRunAt.toISOString() : null,
  };
}

function isUniqueViolation(error: unknown): boolean {
  return (error as { code?: string })?.code === "SQLITE_CONSTRAINT_UNIQUE";
}

export class SqliteScheduleStore implements ScheduleStore {
  constructor(
    private readonly ctx: StoreContext,
    /** A tick submits its job through the job store, inside the tick's transaction. */
    private readonly jobs: SqliteJobStore,
  ) {}

  private load(id: string): SchedulesTable | undefined {
    const { db } = this.ctx;
    return db.get(db.kysely.selectFrom("schedules").selectAll().where("id", "=", id));
  }

  private record(event: string, id: string, actor: string | null, details: Record<string, unknown>, at: string): void {
    this.ctx.audit.write({ event_type: event, entity_type: "schedule", entity_id: id, client_id: actor, details }, at);
  }

  async create(
    params: ScheduleFields & { clientId: string; actor: string | null; maxPerClient?: number },
  ): Promise<{ ok: true; schedule: Schedule } | { ok: false; reason: "conflict" } | { ok: false; reason: "quota_exceeded"; limit: number }> {
    const { db } = this.ctx;
    try {
      return db.transaction(() => {
        const limit = params.maxPerClient;
        if (limit !== undefined && scheduleCount(db, params.clientId) >= limit) return { ok: false as const, reason: "quota_exceeded" as const, limit };
        const at = this.ctx.clock.now().toISOString();
        const row: SchedulesTable = {
          id: randomUUID(),
          client_id: params.clientId,
          ...columns(params),
          last_run_at: null,
          last_skipped_at: null,
          last_skip_reason: null,
          last_skip_message: null,
          created_at: at,
          updated_at: at,
        };
        db.run(db.kysely.insertInto("schedules").values(row));
        this.record("schedule.created", row.id, params.actor, { name: row.name, cron: row.cron, timezone: row.timezone }, at);
        this.ctx.signal.mark({ schedules: true });
        return { ok: true as const, schedule: toSchedule(row) };
      });
    } catch (error) {
      if (isUniqueViolation(error)) return { ok: false, reason: "conflict" };
      throw error;
    }
  }

  async get(id: string): Promise<Schedule | undefined> {
    const row = this.load(id);
    return row ? toSchedule(row) : undefined;
  }

  async list(params: PageParams & { clientId?: string | undefined }): Promise<Page<Schedule>> {
    const { db } = this.ctx;
    const after = decodeCursor(params.cursor);
    let query = db.kysely
      .selectFrom("schedules")
      .selectAll()
      .select(sql<number>`rowid`.as("position"))
      .orderBy(sql`rowid`)
      .limit(params.limit + 1);
    if (after !== undefined) query = query.where(sql<number>`rowid`, ">", after);
    if (params.clientId !== undefined) query = query.where("client_id", "=", params.clientId);
    return pageOf(db.all(query), params.limit, (row) => row.position, toSchedule);
  }

  async update(params: {
    id: string;
    fields: ScheduleFields;
    actor: string | null;
  }): Promise<{ ok: true; schedule: Schedule } | { ok: false; reason: "not_found" | "conflict" }> {
    const { db } = this.ctx;
    try {
      return db.transaction(() => {
        if (!this.load(params.id)) return { ok: false as const, reason: "not_found" as const };
        const at = this.ctx.clock.now().toISOString();
        db.run(db.kysely.updateTable("schedules").set({ ...columns(params.fields), updated_at: at }).where("id", "=", params.id));
        this.record("schedule.updated", params.id, params.actor, { cron: params.fields.cron, enabled: params.fields.enabled }, at);
        this.ctx.signal.mark({ schedules: true });
        return { ok: true as const, schedule: toSchedule(this.load(params.id) as SchedulesTable) };
      });
    } catch (error) {
      if (isUniqueViolation(error)) return { ok: false, reason: "conflict" };
      throw error;
    }
  }

  async delete(params: ActorParams): Promise<boolean> {
    const { db } = this.ctx;
    return db.transaction(() => {
      const at = this.ctx.clock.now().toISOString();
      const deleted = db.run(db.kysely.deleteFrom("schedules").where("id", "=", params.id)) > 0;
      if (deleted) {
        this.record("schedule.deleted", params.id, params.actor, {}, at);
        this.ctx.signal.mark({ schedules: true });
      }
      return deleted;
    });
  }

  async due(params: { now: Date; limit: number }): Promise<Schedule[]> {
    const { db } = this.ctx;
    return db
      .all(
        db.kysely
          .selectFrom("schedules")
          .selectAll()
          .where("enabled", "=", sql.lit(1))
          .where("next_run_at", "<=", params.now.toISOString())
          .orderBy("next_run_at")
          .limit(params.limit),
      )
      .map((row) => toSchedule(row));
  }

  async nextDueAt(): Promise<Date | null> {
    const { db } = this.ctx;
    const row = db.get(
      db.kysely
        .selectFrom("schedules")
        .select("next_run_at")
        .where("enabled", "=", sql.lit(1))
        .where("next_run_at", "is not", null)
        .orderBy("next_run_at")
        .limit(1),
    );
    return row?.next_run_at ? new Date(row.next_run_at) : null;
  }

  /**
   * Moves a tick on under fire()'s guard: enabled, and next_run_at still `dueAt` (two callers of
   * one tick cannot both move it). Answers whether this caller moved it.
   */
  private moveTick(params: { scheduleId: string; dueAt: string }, set: Partial<SchedulesTable>, at: string): boolean {
    const { db } = this.ctx;
    const moved = db.run(
      db.kysely
        .updateTable("schedules")
        .set({ ...set, updated_at: at })
        .where("id", "=", params.scheduleId)
        .where("enabled", "=", 1)
        .where("next_run_at", "=", params.dueAt),
    );
    return moved > 0;
  }

  async fire(params: {
    scheduleId: string;
    dueAt: string;
    nextRunAt: Date;
    job: SubmitJobParams;
    maxUnfinished?: number;
  }): Promise<{ fired: true; job: Job } | { fired: false; skipped?: "quota_exceeded" }> {
    const { db } = this.ctx;
    return db.transaction(() => {
      const at = this.ctx.clock.now().toISOString();
      if (!this.moveTick(params, { next_run_at: params.nextRunAt.toISOString() }, at)) return { fired: false as const };
      const outcome = this.jobs.submitNow([params.job], { maxUnfinished: params.maxUnfinished });
      if (!outcome.ok && outcome.reason === "quota_exceeded") {
        const message = quotaSkipMessage(outcome.limit);
        db.run(
          db.kysely
            .updateTable("schedules")
            .set({ last_skipped_at: params.dueAt, last_skip_reason: outcome.reason, last_skip_message: message })
            .where("id", "=", params.scheduleId),
        );
        this.record(
          "schedule.skipped",
          params.scheduleId,
          null,
          { tick: params.dueAt, reason: outcome.reason, message, unfinished: outcome.unfinished, limit: outcome.limit },
          at,
        );
        return { fired: false as const, skipped: outcome.reason };
      }
      if (!outcome.ok) throw new Error(`a scheduled job could not be submitted: ${outcome.reason}`);
      // Run: a tick skipped (the quota) is not.
      db.run(db.kysely.updateTable("schedules").set({ last_run_at: params.dueAt }).where("id", "=", params.scheduleId));
      const job = outcome.items[0]?.job;
      if (!job) throw new Error("a scheduled job was not stored");
      this.record("schedule.fired", params.scheduleId, null, { job_id: job.id, tick: params.dueAt }, at);
      return { fired: true as const, job };
    });
  }

  async skip(params: ScheduleSkipParams): Promise<{ skipped: boolean }> {
    return this.ctx.db.transaction(() => {
      const at = this.ctx.clock.now().toISOString();
      const next = params.nextRunAt?.toISOString() ?? null;
      const moved = this.moveTick(
        params,
        {
          next_run_at: next,
          ...(next === null ? { enabled: 0 } : {}),
          last_skipped_at: params.dueAt,
          last_skip_reason: params.reason,
          last_skip_message: params.message,
        },
        at,
      );
      if (!moved) return { skipped: false };
      this.record(
        "schedule.skipped",
        params.scheduleId,
        null,
        { ...params.details, tick: params.dueAt, reason: params.reason, message: params.message, next_run_at: next, disabled: next === null },
        at,
      );
      return { skipped: true };
    });
  }
}
