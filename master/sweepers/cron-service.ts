// Background work on a wall-clock schedule (node-cron): token cleanup, retention.
// Same shape as PeriodicService: start(), stop(), and runOnce() for tests.
import cron, { type ScheduledTask } from "node-cron";
import type { Logger } from "../log.js";
import type { ServiceStatus } from "./service.js";

export abstract class CronService<Result> {
  private task: ScheduledTask | undefined;
  private running: Promise<unknown> | undefined;
  private readonly state: ServiceStatus;
  /** Sees every failed run (a full disk turns the master read-only). */
  onFailure: ((error: unknown) => void) | undefined;

  constructor(
    readonly name: string,
    private readonly expression: string,
    protected readonly log: Logger,
  ) {
    this.state = { name, interval_s: 0, runs: 0, failures: 0, last_run_at: null, last_duration_ms: null, last_error: null };
  }

  abstract runOnce(): Promise<Result>;

  start(): void {
    this.task = cron.schedule(this.expression, () => this.tick(), { name: `gaffer-${this.name}`, noOverlap: true });
  }

  private async tick(): Promise<void> {
    const started = Date.now();
    this.running = this.runOnce();
    try {
      await this.running;
      this.state.last_error = null;
    } catch (error) {
      this.state.failures += 1;
      this.state.last_error = error instanceof Error ? error.message : String(error);
      this.log.error({ event: "sweeper.failed", sweeper: this.name, err: error }, `${this.name} failed`);
      this.onFailure?.(error);
    } finally {
      this.running = undefined;
      this.state.runs += 1;
      this.state.last_run_at = new Date(started).toISOString();
      this.state.last_duration_ms = Date.now() - started;
    }
  }

  async stop(): Promise<void> {
    await this.task?.destroy();
    await this.running?.catch(() => undefined);
  }

  status(): ServiceStatus & { schedule: string; next_run_at: string | null } {
    return { ...this.state, schedule: this.expression, next_run_at: this.task?.getNextRun()?.toISOString() ?? null };
  }
}
