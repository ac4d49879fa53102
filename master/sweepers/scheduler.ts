// Recurring schedules (API.md §5): each tick submits one job tagged with the
// schedule's id. Ticks missed while the master was down are not replayed one
// by one: the schedule fires once to catch up, then moves to its next future tick.
import type { Logger } from "../log.js";
import { nextTick } from "../queue/cron.js";
import { submittedPayload, UnstorableValueError, type Clock, type Schedule, type Store, type SubmitJobParams } from "../store/types.js";
import { delayUntil, PeriodicService } from "./service.js";

export const SCHEDULE_BATCH = 100;

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
    const { store, clock, log } = this.params;
    const now = clock.now();
    let fired = 0;
    // Schedules left due (a cron that no longer parses, a job the database refuses): the next
    // run waits an interval, not 0 ms, for them.
    let stuck = 0;
    for (const schedule of await store.schedules.due({ now, limit: SCHEDULE_BATCH })) {
      const dueAt = schedule.next_run_at;
      if (dueAt === null) continue;
      const limited = await this.isLimited(schedule.client_id);
      // A client's next tick comes a minute after this one at the soonest.
      const after = limited ? new Date(Math.max(now.getTime(), Date.parse(dueAt) + 59_999)) : now;
      let nextRunAt: Date;
      try {
        nextRunAt = nextTick(schedule.cron, schedule.timezone, after);
      } catch (error) {
        log.error({ event: "schedule.invalid", scheduleId: schedule.id, err: (error as Error).message });
        stuck += 1;
        continue;
      }
      const maxUnfinished = limited ? this.params.clientMaxQueued : undefined;
      let outcome: Awaited<ReturnType<Store["schedules"]["fire"]>>;
      try {
        outcome = await store.schedules.fire({ scheduleId: schedule.id, dueAt, nextRunAt, job: this.jobOf(schedule, dueAt), maxUnfinished });
      } catch (error) {
        // A job the database cannot store (PostgreSQL refuses a NUL in text): this schedule
        // stays as it is, said at each tick, and the schedules due after it still fire.
        if (!(error instanceof UnstorableValueError)) throw error;
        log.error(
          { event: "schedule.unstorable", scheduleId: schedule.id, clientId: schedule.client_id, tick: dueAt, err: error.message },
          `schedule ${schedule.name} cannot fire: the database refuses its job (${error.message}); fix or delete the schedule`,
        );
        stuck += 1;
        continue;
      }
      if (!outcome.fired) {
        if (outcome.skipped) {
          log.warn(
            { event: "schedule.skipped", scheduleId: schedule.id, clientId: schedule.client_id, tick: dueAt, reason: outcome.skipped },
            `schedule ${schedule.name} skipped its tick: its client has as many unfinished jobs as GAFFER_CLIENT_MAX_QUEUED allows`,
          );
        }
        continue;
      }
      fired += 1;
      log.info(
        { event: "schedule.fired", scheduleId: schedule.id, name: schedule.name, jobId: outcome.job.id, tick: dueAt, next: nextRunAt.toISOString() },
        `schedule ${schedule.name} submitted job ${outcome.job.id}`,
      );
    }
    const nextAt = await store.schedules.nextDueAt();
    const later = new Date(now.getTime() + this.intervalMs);
    this.nextAt = stuck > 0 && nextAt !== null && nextAt < later ? later : nextAt;
    return fired;
  }

  protected override nextDelayMs(): number {
    return delayUntil(this.nextAt, this.params.clock.now(), this.intervalMs);
  }
}
