// Retention (API.md §7): finished jobs and audit rows older than GAFFER_RETENTION_DAYS are
// deleted every hour, a small batch per transaction with a pause between batches,
// so requests are served while it runs.
import type { Logger } from "../log.js";
import type { Clock, Store } from "../store/types.js";
import { CronService } from "./cron-service.js";
import { inBatches } from "./service.js";

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

  async runOnce(): Promise<{ jobs: number; audit: number }> {
    const before = new Date(this.clock.now().getTime() - this.retentionDays * 86_400_000);
    const jobs = await inBatches(RETENTION_BATCH, () => this.store.jobs.purgeFinished({ before, limit: RETENTION_BATCH }));
    const audit = await inBatches(RETENTION_BATCH, () => this.store.audit.purge({ before, limit: RETENTION_BATCH }));
    if (jobs + audit > 0) {
      this.log.info({ event: "retention.purged", jobs, audit, before: before.toISOString() }, `retention removed ${jobs} jobs, ${audit} audit rows`);
    }
    return { jobs, audit };
  }
}
