// Aging (API.md §2): pending jobs rise one class per GAFFER_AGING_S waited, never above `high`.
import type { Logger } from "../log.js";
import type { Store } from "../store/types.js";
import { inBatches, PeriodicService } from "./service.js";

export const AGING_BATCH = 1000;

export interface AgingParams {
  store: Store;
  log: Logger;
  intervalMs: number;
}

export class AgingSweeper extends PeriodicService<number> {
  constructor(private readonly params: AgingParams) {
    super("aging", params.intervalMs, params.log);
  }

  async runOnce(): Promise<number> {
    const aged = await inBatches(AGING_BATCH, () => this.params.store.jobs.age({ limit: AGING_BATCH }));
    if (aged > 0) this.params.log.debug({ event: "job.aged", jobs: aged });
    return aged;
  }
}
