// Delayed jobs and retries whose backoff ended become pending on time: the
// promoter sleeps until the earliest scheduled job is due (or one sweep
// interval), and is poked when the store commits something new scheduled. The jobs
// it promotes wake the waiting claims through the store's commit signal.
import { setImmediate as yieldToRequests } from "node:timers/promises";
import type { Logger } from "../log.js";
import type { Clock, Store } from "../store/types.js";
import { delayUntil, PeriodicService } from "./service.js";

export interface PromoterParams {
  store: Store;
  clock: Clock;
  log: Logger;
  intervalMs: number;
}

export class Promoter extends PeriodicService<number> {
  private nextAt: Date | null = null;

  constructor(private readonly params: PromoterParams) {
    super("promoter", params.intervalMs, params.log);
  }

  async runOnce(): Promise<number> {
    let promoted = 0;
    for (;;) {
      const result = await this.params.store.jobs.promoteScheduled();
      promoted += result.promoted;
      this.nextAt = result.nextAt;
      if (result.nextAt === null || result.nextAt > this.params.clock.now()) break;
      await yieldToRequests(); // more are due: let waiting requests in first
    }
    if (promoted > 0) this.params.log.debug({ event: "job.promoted", jobs: promoted });
    return promoted;
  }

  protected override nextDelayMs(): number {
    return delayUntil(this.nextAt, this.params.clock.now(), this.intervalMs);
  }
}
