// Recurring schedules on PostgreSQL: one job per tick, however many masters fire it. A tick
// is won by moving next_run_at under a guard; the job is submitted in the same transaction.
import { randomUUID } from "node:crypto";
import { sql } from "kysely";
import { decodeCursor, pageOf, quotaSkipMessage } from "../pages.js";
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
import { changed, rowsOf, writeAudit, type PgContext } from "./context.js";
import { ADVISORY_CLASS, type Tx } from "./database.js";
import { submitJobs } from "./jobs/submit.js";

interface ScheduleRow {
  id: string;
  seq: number;
  client_id: string;
  name: string;
  cron: string;
  timezone: string;
  job: ScheduledJobSpec;
  enabled: boolean;
  next_run_at: string | null;
  last_run_at: string | null;
  last_skipped_at: string | null;
  last_skip_reason: ScheduleSkipReason | null;
  last_skip_message: string | null;
  created_at: string;
  updated_at: string;
}

function toSchedule(row: ScheduleRow): Schedule {
  return {
    id: row.id,
    name: row.name,
    client_id: row.client_id,
    cron: row.cron,
    timezone: row.timezone,
    job: row.job,
    enabled: row.enabled,
    next_run_at: row.next_run_at,
    last_run_at: row.last_run_at,
    last_skipped_at: row.last_skipped_at,
    last_skip_reason: row.last_skip_reason,
    last_skip_message: row.last_skip_message,
    created_at: row.created_at,
    updated_at: row.updated_at,
  };
}

/** When a schedule fires next: nothing while it is disabled. */
function nextRunAt(fields: ScheduleFields): string | null {
  return fields.enabled && fields.nextRunAt ? fields.nextRunAt.toISOString() : null;
}

/** Another schedule of the same client has this name (unique_violation). */
function isUniqueViolation(error: unknown): boolean {
  return (error as { code?: string } | undefined)?.code === "23505";
}

export class PostgresScheduleStore implements ScheduleStore {
  constructor(private readonly ctx: PgContext) {}

  private async record(tx: Tx, event: string, id: string, actor: string | null, details: Record<string, unknown>, at: string): Promise<void> {
    await writeAudit(tx.db, [{ event_type: event, entity_type: "schedule", entity_id: id, client_id: actor, details }], at);
  }

  async create(
    params: ScheduleFields & { clientId: string; actor: string | null; maxPerClient?: number },
  ): Promise<{ ok: true; schedule: Schedule } | { ok: false; reason: "conflict" } | { ok: false; reason: "quota_exceeded"; limit: number }> {
    try {
      return await this.ctx.db.transaction(async (tx) => {
        const limit = params.maxPerClient;
        if (limit !== undefined) {
          // One create of a client's schedules at a time, on any master: the count holds until it commits.
          await tx.db.executeQuery(sql`SELECT pg_advisory_xact_lock(${ADVISORY_CLASS}, hashtext(${`gaffer.schedules.${this.ctx.db.schema}.${params.clientId}`}))`.compile(tx.db));
          const [count] = await rowsOf(tx, sql<{ n: number }>`SELECT count(*) AS n FROM schedules WHERE client_id = ${params.clientId}`);
          if ((count?.n ?? 0) >= limit) return { ok: false as const, reason: "quota_exceeded" as const, limit };
        }
        const at = this.ctx.clock.now().toISOString();
        const [row] = await rowsOf(
          tx,
          sql<ScheduleRow>`INSERT INTO schedules (id, client_id, name, cron, timezone, job, enabled, next_run_at, last_run_at, created_at, updated_at)
            VALUES (${randomUUID()}, ${params.clientId}, ${params.name}, ${params.cron}, ${params.timezone}, ${JSON.stringify(params.job)}::json,
                    ${params.enabled}, ${nextRunAt(params)}, NULL, ${at}, ${at})
            RETURNING *`,
        );
        const schedule = toSchedule(row as ScheduleRow);
        await this.record(tx, "schedule.created", schedule.id, params.actor, { name: schedule.name, cron: schedule.cron, timezone: schedule.timezone }, at);
        tx.mark({ schedules: true });
        return { ok: true as const, schedule };
      });
    } catch (error) {
      if (isUniqueViolation(error)) return { ok: false, reason: "conflict" };
      throw error;
    }
  }

  async get(id: string): Promise<Schedule | undefined> {
    const row = await this.ctx.db.one(sql<ScheduleRow>`SELECT * FROM schedules WHERE id = ${id}`);
    return row ? toSchedule(row) : undefined;
  }

  /** Oldest first. */
  async list(params: PageParams & { clientId?: string | undefined }): Promise<Page<Schedule>> {
    const after = decodeCursor(params.cursor) ?? 0;
    const rows = await this.ctx.db.run(sql<ScheduleRow>`
      SELECT * FROM schedules WHERE seq > ${after} ${params.clientId === undefined ? sql`` : sql`AND client_id = ${params.clientId}`}
      ORDER BY seq LIMIT ${params.limit + 1}`);
    return pageOf(rows, params.limit, (row) => row.seq, toSchedule);
  }

  async update(params: { id: string; fields: ScheduleFields; actor: string | null }): Promise<{ ok: true; schedule: Schedule } | { ok: false; reason: "not_found" | "conflict" }> {
    const { fields } = params;
    try {
      return await this.ctx.db.transaction(async (tx) => {
        const [found] = await rowsOf(tx, sql<{ id: string }>`SELECT id FROM schedules WHERE id = ${params.id} FOR UPDATE`);
        if (!found) return { ok: false as const, reason: "not_found" as const };
        const at = this.ctx.clock.now().toISOString();
        const [row] = await rowsOf(
          tx,
          sql<ScheduleRow>`UPDATE schedules SET name = ${fields.name}, cron = ${fields.cron}, timezone = ${fields.timezone},
                job = ${JSON.stringify(fields.job)}::json, enabled = ${fields.enabled}, next_run_at = ${nextRunAt(fields)}, updated_at = ${at}
              WHERE id = ${params.id} RETURNING *`,
        );
        await this.record(tx, "schedule.updated", params.id, params.actor, { cron: fields.cron, enabled: fields.enabled }, at);
        tx.mark({ schedules: true });
        return { ok: true as const, schedule: toSchedule(row as ScheduleRow) };
      });
    } catch (error) {
      if (isUniqueViolation(error)) return { ok: false, reason: "conflict" };
      throw error;
    }
  }

  async delete(params: ActorParams): Promise<boolean> {
    return this.ctx.db.transaction(async (tx) => {
      const at = this.ctx.clock.now().toISOString();
      const deleted = (await changed(tx, sql`DELETE FROM schedules WHERE id = ${params.id}`)) > 0;
      if (deleted) {
        await this.record(tx, "schedule.deleted", params.id, params.actor, {}, at);
        tx.mark({ schedules: true });
      }
      return deleted;
    });
  }

  async due(params: { now: Date; limit: number }): Promise<Schedule[]> {
    const rows = await this.ctx.db.run(sql<ScheduleRow>`
      SELECT * FROM schedules WHERE enabled AND next_run_at <= ${params.now.toISOString()}
      ORDER BY next_run_at LIMIT ${params.limit}`);
    return rows.map((row) => toSchedule(row));
  }

  async nextDueAt(): Promise<Date | null> {
    const row = await this.ctx.db.one(sql<{ next_run_at: string }>`
      SELECT next_run_at FROM schedules WHERE enabled AND next_run_at IS NOT NULL ORDER BY next_run_at LIMIT 1`);
    return row ? new Date(row.next_run_at) : null;
  }

  /**
   * One tick. Masters firing the same tick at once queue on the schedule's row; the first
   * moves next_run_at, and the others' guard then matches nothing (READ COMMITTED checks
   * it again on the row the first committed), so they submit nothing.
   */
  async fire(params: {
    scheduleId: string;
    dueAt: string;
    nextRunAt: Date;
    job: SubmitJobParams;
    maxUnfinished?: number;
  }): Promise<{ fired: true; job: Job } | { fired: false; skipped?: "quota_exceeded" }> {
    return this.ctx.db.transaction(async (tx) => {
      const at = this.ctx.clock.now().toISOString();
      const moved = await changed(
        tx,
        sql`UPDATE schedules SET next_run_at = ${params.nextRunAt.toISOString()}, updated_at = ${at}
            WHERE id = ${params.scheduleId} AND enabled AND next_run_at = ${params.dueAt}`,
      );
      if (moved === 0) return { fired: false as const };
      const outcome = await submitJobs(this.ctx, tx, [params.job], { maxUnfinished: params.maxUnfinished });
      if (!outcome.ok && outcome.reason === "quota_exceeded") {
        // The tick is used up (next_run_at moved) without a job: the owner is at its quota.
        const message = quotaSkipMessage(outcome.limit);
        await changed(
          tx,
          sql`UPDATE schedules SET last_skipped_at = ${params.dueAt}, last_skip_reason = ${outcome.reason}, last_skip_message = ${message}
              WHERE id = ${params.scheduleId}`,
        );
        await this.record(
          tx,
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
      await changed(tx, sql`UPDATE schedules SET last_run_at = ${params.dueAt} WHERE id = ${params.scheduleId}`);
      const job = outcome.items[0]?.job;
      if (!job) throw new Error("a scheduled job was not stored");
      await this.record(tx, "schedule.fired", params.scheduleId, null, { job_id: job.id, tick: params.dueAt }, at);
      return { fired: true as const, job };
    });
  }

  /** A tick that cannot fire, under fire()'s guard: of masters firing or skipping one tick at once, one moves it. */
  async skip(params: ScheduleSkipParams): Promise<{ skipped: boolean }> {
    return this.ctx.db.transaction(async (tx) => {
      const at = this.ctx.clock.now().toISOString();
      const next = params.nextRunAt?.toISOString() ?? null;
      const moved = await changed(
        tx,
        sql`UPDATE schedules SET next_run_at = ${next}, enabled = ${next !== null}, last_skipped_at = ${params.dueAt},
              last_skip_reason = ${params.reason}, last_skip_message = ${params.message}, updated_at = ${at}
            WHERE id = ${params.scheduleId} AND enabled AND next_run_at = ${params.dueAt}`,
      );
      if (moved === 0) return { skipped: false };
      await this.record(
        tx,
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
