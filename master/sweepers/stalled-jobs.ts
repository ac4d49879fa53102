// Stalled jobs (API.md §7): a job running longer than 2 × timeout_s + the stall
// grace is re-queued (or failed past max_retries); its node is told to stop it
// in its next heartbeat's cancel list.
import type { Logger } from "../log.js";
import type { Metrics } from "../metrics.js";
import type { RescuedJob, Store } from "../store/types.js";
import { collect, inBatches, PeriodicService } from "./service.js";

export const STALLED_JOB_BATCH = 500;

export interface StalledJobSweeperParams {
  store: Store;
  log: Logger;
  intervalMs: number;
  metrics?: Metrics;
}

export class StalledJobSweeper extends PeriodicService<RescuedJob[]> {
  constructor(private readonly params: StalledJobSweeperParams) {
    super("stalled_jobs", params.intervalMs, params.log);
  }

  async runOnce(): Promise<RescuedJob[]> {
    const rescued: RescuedJob[] = [];
    await inBatches(STALLED_JOB_BATCH, async () => collect(rescued, await this.params.store.jobs.rescueStalled({ limit: STALLED_JOB_BATCH })));
    for (const job of rescued) {
      this.params.log.warn({ event: "job.stalled", jobId: job.jobId, nodeId: job.nodeId, outcome: job.outcome });
    }
    this.params.metrics?.jobsReassigned.inc({ reason: "stalled" }, rescued.length);
    return rescued;
  }
}
