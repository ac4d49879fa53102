// Background work on a wall-clock schedule (node-cron): token cleanup, retention.
// Same shape as PeriodicService: start(), stop(), and runOnce() for tests.
import cron, { type ScheduledTask } from "node-cron";
import type { Logger } from "../log.js";
import { RunRecorder, type ServiceStatus } from "./service.js";

export abstract class CronService<Result> {
  private task: ScheduledTask | undefined;
  private readonly runs: RunRecorder;
  /** Sees every failed run (a full disk turns the master read-only). */
  onFailure: ((error: unknown) => void) | undefined;

  constructor(
    readonly name: string,
    private readonly expression: string,
    protected readonly log: Logger,
  ) {
    this.runs = new RunRecorder(name, 0, log, (error) => this.onFailure?.(error));
  }

  abstract runOnce(): Promise<Result>;

  start(): void {
    this.task = cron.schedule(this.expression, () => this.tick(), { name: `gaffer-${this.name}`, noOverlap: true });
  }

  private async tick(): Promise<void> {
    await this.runs.run(() => this.runOnce());
  }

  async stop(): Promise<void> {
    await this.task?.destroy();
    await this.runs.settled();
  }

  status(): ServiceStatus & { schedule: string; next_run_at: string | null } {
    return { ...this.runs.state, schedule: this.expression, next_run_at: this.task?.getNextRun()?.toISOString() ?? null };
  }
}
