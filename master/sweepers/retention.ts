// Retention (API.md §7): finished jobs and audit rows older than GAFFER_RETENTION_DAYS are
// deleted every hour, a small batch per transaction with a pause between batches,
// so requests are served while it runs.
import { setImmediate as yieldToRequests } from "node:timers/promises";
import type { Logger } from "../log.js";
import type { Clock, Store } from "../store/types.js";
import { CronService } from "./cron-service.js";

export const RETENTION_SCHEDULE = "17 * * * *";
export const RETENTION_BATCH = 500;

export class Retention extends CronService<{ jobs: number; audit: number }> {
  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    private readonly retentionDays: number,
    log: Logger,
  ) {
    super("retention", RETENTION_SCHEDULE, log);
  }

  private async drain(purge: (params: { before: Date; limit: number }) => Promise<number>, before: Date): Promise<number> {
    let total = 0;
    for (;;) {
      const deleted = await purge({ before, limit: RETENTION_BATCH });
      total += deleted;
      if (deleted < RETENTION_BATCH) return total;
      await yieldToRequests();
    }
  }

  async runOnce(): Promise<{ jobs: number; audit: number }> {
    const before = new Date(this.clock.now().getTime() - this.retentionDays * 86_400_000);
    const jobs = await this.drain((params) => this.store.jobs.purgeFinished(params), before);
    const audit = await this.drain((params) => this.store.audit.purge(params), before);
    if (jobs + audit > 0) {
      this.log.info({ event: "retention.purged", jobs, audit, before: before.toISOString() }, `retention removed ${jobs} jobs, ${audit} audit rows`);
    }
    return { jobs, audit };
  }
}
