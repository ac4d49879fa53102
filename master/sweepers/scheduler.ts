// Recurring schedules (API.md §5): each tick submits one job tagged with the
// schedule's id. Ticks missed while the master was down are not replayed one
// by one: the schedule fires once to catch up, then moves to its next future tick.
// A tick that cannot fire (its cron no longer parses, its job is refused) is skipped in
// the store, with its reason, so that it neither stays due nor holds up the others.
import type { Logger } from "../log.js";
import { CronError, nextTick } from "../queue/cron.js";
import {
  CorruptDatabaseError,
  StorageUnavailableError,
  StorageUnreachableError,
  submittedPayload,
  UnstorableValueError,
  type Clock,
  type Schedule,
  type ScheduleSkipParams,
  type Store,
  type SubmitJobParams,
} from "../store/types.js";
import { delayUntil, PeriodicService } from "./service.js";

export const SCHEDULE_BATCH = 100;
/** How long a tick whose job failed for an unknown reason is tried again (at each run) before it is skipped. */
export const RETRY_TICK_MS = 10 * 60_000;
/** The longest skip message kept on a schedule and in its audit row. */
const MAX_SKIP_MESSAGE_CHARS = 500;

/** A tick that cannot fire, as the scheduler skips it; `error` goes to the log and the audit row, not to the owner. */
type TickSkip = Pick<ScheduleSkipParams, "dueAt" | "nextRunAt" | "reason" | "message"> & { error: unknown };

/** The database as a whole failed (not this schedule): its tick is left for the next run. */
function isDatabaseFailure(error: unknown): boolean {
  return error instanceof StorageUnavailableError || error instanceof StorageUnreachableError || error instanceof CorruptDatabaseError;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * An error's text as every database stores it: no control characters (PostgreSQL refuses a
 * NUL), no lone surrogates, at most MAX_SKIP_MESSAGE_CHARS.
 */
function printable(text: string): string {
  const chars = Array.from(text, (char) => {
    const code = char.codePointAt(0) ?? 0;
    if (code < 0x20 || code === 0x7f) return " ";
    return code >= 0xd800 && code <= 0xdfff ? "\uFFFD" : char;
  });
  return chars.length > MAX_SKIP_MESSAGE_CHARS ? `${chars.slice(0, MAX_SKIP_MESSAGE_CHARS - 1).join("")}…` : chars.join("");
}

export interface SchedulerParams {
  store: Store;
  clock: Clock;
  log: Logger;
  intervalMs: number;
  defaults: { maxRetries: number; jobTimeoutS: number };
  /**
   * GAFFER_CLIENT_MAX_QUEUED. Set, a `client` role's schedules are held to API.md §4: a tick
   * past the quota is skipped, and ticks come at least a minute apart (a schedule made with
   * a finer cron before the API refused one still fires once a minute).
   */
  clientMaxQueued?: number;
}

export class Scheduler extends PeriodicService<number> {
  private nextAt: Date | null = null;
  /** The tick each schedule is retrying (after an unknown error), so that it is logged once. */
  private readonly retrying = new Map<string, string>();

  constructor(private readonly params: SchedulerParams) {
    super("scheduler", params.intervalMs, params.log);
  }

  /** The job of one tick: its owner's, tagged with the schedule, with a key unique to the tick. */
  private jobOf(schedule: Schedule, dueAt: string): SubmitJobParams {
    const spec = schedule.job;
    return {
      clientId: schedule.client_id,
      type: spec.type,
      ...submittedPayload(spec.payload === undefined ? {} : spec.payload),
      priority: spec.priority ?? "medium",
      maxRetries: spec.max_retries ?? this.params.defaults.maxRetries,
      timeoutS: spec.timeout_s ?? this.params.defaults.jobTimeoutS,
      runAt: null,
      requires: spec.requires ?? [],
      dependsOn: [],
      idempotencyKey: `schedule:${schedule.id}:${dueAt}`,
      tags: { ...spec.tags, schedule: schedule.id },
    };
  }

  /** Whether the owner is held to a client's limits (an admin's ticks, like its submits, are not). */
  private async isLimited(clientId: string): Promise<boolean> {
    if (this.params.clientMaxQueued === undefined) return false;
    return (await this.params.store.clients.get(clientId))?.role === "client";
  }

  async runOnce(): Promise<number> {
    const { store, clock } = this.params;
    const now = clock.now();
    // A run that throws (the database unreachable) waits an interval, not for a due time past.
    this.nextAt = null;
    let fired = 0;
    let stuck = 0;
    for (const schedule of await store.schedules.due({ now, limit: SCHEDULE_BATCH })) {
      const dueAt = schedule.next_run_at;
      if (dueAt === null) continue;
      const outcome = await this.fireTick(schedule, dueAt, now);
      if (outcome === "fired") fired += 1;
      if (outcome === "stuck") stuck += 1;
    }
    const nextAt = await store.schedules.nextDueAt();
    const later = new Date(now.getTime() + this.intervalMs);
    // A schedule whose tick could be neither fired nor skipped is still due: the next run
    // waits an interval for it, not 0 ms.
    this.nextAt = stuck > 0 && nextAt !== null && nextAt < later ? later : nextAt;
    return fired;
  }

  /**
   * One due tick: its job submitted, or the tick skipped when it cannot fire (its cron no longer
   * parses; the job is refused), so that it is not due again at once. What fails for the whole
   * database (unreachable, refusing writes) is thrown: the tick stays for the next run.
   */
  private async fireTick(schedule: Schedule, dueAt: string, now: Date): Promise<"fired" | "skipped" | "gone" | "stuck"> {
    const { store, log } = this.params;
    const limited = await this.isLimited(schedule.client_id);
    // A client's next tick comes a minute after this one at the soonest.
    const after = limited ? new Date(Math.max(now.getTime(), Date.parse(dueAt) + 59_999)) : now;
    let nextRunAt: Date;
    try {
      nextRunAt = nextTick(schedule.cron, schedule.timezone, after);
    } catch (error) {
      // No next tick to move to: the schedule is disabled until its owner fixes it (PATCH).
      const reason = error instanceof CronError && error.field === "timezone" ? "invalid_timezone" : "invalid_cron";
      const message = `${messageOf(error)}; the schedule is disabled until it is changed`;
      return this.skip(schedule, { dueAt, nextRunAt: null, reason, message, error });
    }
    const maxUnfinished = limited ? this.params.clientMaxQueued : undefined;
    let outcome: Awaited<ReturnType<Store["schedules"]["fire"]>>;
    try {
      outcome = await store.schedules.fire({ scheduleId: schedule.id, dueAt, nextRunAt, job: this.jobOf(schedule, dueAt), maxUnfinished });
    } catch (error) {
      if (isDatabaseFailure(error)) throw error;
      // A value the database cannot store (PostgreSQL refuses a NUL in text) is the job's: it
      // would be refused again, so the tick is skipped now, and its owner told.
      if (error instanceof UnstorableValueError) {
        return this.skip(schedule, { dueAt, nextRunAt, reason: "unstorable_job", message: messageOf(error), error });
      }
      // Anything else may pass (a deadlock past the store's retries, a busy database): the tick
      // stays due and is tried again at each run, for RETRY_TICK_MS at most and until the
      // schedule's next tick has come; then it is skipped, its error's text for the operators
      // (log and audit) only, to that next tick if it alone has come (it is tried in turn), or
      // past every tick missed meanwhile (one catch-up, as a fired tick does).
      const following = nextTick(schedule.cron, schedule.timezone, limited ? new Date(Date.parse(dueAt) + 59_999) : new Date(dueAt));
      if (following > now && now.getTime() - Date.parse(dueAt) < RETRY_TICK_MS) {
        // Said once a tick: the later tries' failures are the same story.
        const first = this.retrying.get(schedule.id) !== dueAt;
        this.retrying.set(schedule.id, dueAt);
        log[first ? "warn" : "debug"](
          { event: "schedule.retrying", scheduleId: schedule.id, clientId: schedule.client_id, tick: dueAt, err: error },
          `schedule ${schedule.name} could not submit its tick ${dueAt} (${messageOf(error)}); it is tried again at each run for up to ${RETRY_TICK_MS / 60_000} minutes`,
        );
        return "stuck";
      }
      this.retrying.delete(schedule.id);
      const skipTo = following <= now && nextTick(schedule.cron, schedule.timezone, following) > now ? following : nextRunAt;
      return this.skip(schedule, { dueAt, nextRunAt: skipTo, reason: "submit_failed", message: "its job could not be submitted (the master's log says why)", error });
    }
    // The tick went through (fired, or skipped for the quota): no longer one being retried.
    this.retrying.delete(schedule.id);
    if (!outcome.fired) {
      if (!outcome.skipped) return "gone";
      log.warn(
        { event: "schedule.skipped", scheduleId: schedule.id, clientId: schedule.client_id, tick: dueAt, reason: outcome.skipped, next: nextRunAt.toISOString() },
        `schedule ${schedule.name} skipped its tick: its client has as many unfinished jobs as GAFFER_CLIENT_MAX_QUEUED allows`,
      );
      return "skipped";
    }
    log.info(
      { event: "schedule.fired", scheduleId: schedule.id, name: schedule.name, jobId: outcome.job.id, tick: dueAt, next: nextRunAt.toISOString() },
      `schedule ${schedule.name} submitted job ${outcome.job.id}`,
    );
    return "fired";
  }

  /** Skip a tick that cannot fire, audited; "stuck" if even that fails for this schedule. */
  private async skip(schedule: Schedule, skip: TickSkip): Promise<"skipped" | "gone" | "stuck"> {
    const { store, log } = this.params;
    const { dueAt, nextRunAt, reason, error } = skip;
    const message = printable(skip.message);
    const fields = { scheduleId: schedule.id, clientId: schedule.client_id, tick: dueAt, reason, next: nextRunAt?.toISOString() ?? null, err: error };
    let outcome: { skipped: boolean };
    try {
      outcome = await store.schedules.skip({ scheduleId: schedule.id, dueAt, nextRunAt, reason, message, details: { error: printable(messageOf(error)) } });
    } catch (skipError) {
      if (isDatabaseFailure(skipError)) throw skipError;
      log.error(
        { event: "schedule.stuck", ...fields, skipErr: messageOf(skipError) },
        `schedule ${schedule.name} can neither fire nor skip its tick ${dueAt} (${message}); fix or delete the schedule`,
      );
      return "stuck";
    }
    if (!outcome.skipped) return "gone";
    log.error(
      { event: "schedule.skipped", ...fields, disabled: nextRunAt === null },
      `schedule ${schedule.name} skipped its tick ${dueAt}: ${message}`,
    );
    return "skipped";
  }

  protected override nextDelayMs(): number {
    return delayUntil(this.nextAt, this.params.clock.now(), this.intervalMs);
  }
}
