// Background work on a wall-clock schedule (node-cron): token cleanup, retention.
// A Service like the periodic ones; only its timing differs.
import cron, { type ScheduledTask } from "node-cron";
import type { Logger } from "../log.js";
import { Service, type ServiceStatus } from "./service.js";

export abstract class CronService<Result> extends Service<Result> {
  private task: ScheduledTask | undefined;

  constructor(
    name: string,
    private readonly expression: string,
    log: Logger,
  ) {
    super(name, 0, log);
  }

  start(): void {
    this.task = cron.schedule(this.expression, () => this.run(), { name: `gaffer-${this.name}`, noOverlap: true });
  }

  protected async stopTimer(): Promise<void> {
    await this.task?.destroy();
  }

  override status(): ServiceStatus & { schedule: string; next_run_at: string | null } {
    return { ...super.status(), schedule: this.expression, next_run_at: this.task?.getNextRun()?.toISOString() ?? null };
  }
}
