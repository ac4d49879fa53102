// One shape for the master's background services: start(), stop(), and runOnce()
// that tests call directly. A run that throws is logged, counted and retried at
// the next tick; it never takes the master down.
import { setImmediate as yieldToRequests } from "node:timers/promises";
import type { Logger } from "../log.js";

export interface ServiceStatus {
  name: string;
  interval_s: number;
  runs: number;
  failures: number;
  last_run_at: string | null;
  last_duration_ms: number | null;
  last_error: string | null;
}

/** Sleep until `nextAt` (a due time in the store), but never longer than `intervalMs`. */
export function delayUntil(nextAt: Date | null, now: Date, intervalMs: number): number {
  if (nextAt === null) return intervalMs;
  return Math.min(intervalMs, Math.max(0, nextAt.getTime() - now.getTime()));
}

/**
 * Run `step` (one batch, one short transaction, answering how many rows it
 * handled) until a batch comes back short, letting waiting requests in between
 * batches: the store is synchronous, so without the yield a sweep over a
 * million rows would hold the event loop for seconds. Answers the total.
 */
export async function inBatches(limit: number, step: () => Promise<number>): Promise<number> {
  let total = 0;
  for (;;) {
    const handled = await step();
    total += handled;
    if (handled < limit) return total;
    await yieldToRequests();
  }
}

/** Add a batch's rows to `into`; answers the batch's size (what inBatches counts). */
export function collect<T>(into: T[], batch: T[]): number {
  into.push(...batch);
  return batch.length;
}

/**
 * What both kinds of service (PeriodicService, CronService) keep about their
 * runs, and the one way a run is made: counted, timed, its failure logged and
 * handed to `failed`, never thrown.
 */
export class RunRecorder {
  readonly state: ServiceStatus;
  /** The run under way, if any. */
  running: Promise<unknown> | undefined;

  constructor(
    name: string,
    intervalS: number,
    private readonly log: Logger,
    private readonly failed: (error: unknown) => void,
  ) {
    this.state = { name, interval_s: intervalS, runs: 0, failures: 0, last_run_at: null, last_duration_ms: null, last_error: null };
  }

  async run(work: () => Promise<unknown>): Promise<void> {
    const started = Date.now();
    this.running = work();
    try {
      await this.running;
      this.state.last_error = null;
    } catch (error) {
      this.state.failures += 1;
      this.state.last_error = error instanceof Error ? error.message : String(error);
      this.log.error({ event: "sweeper.failed", sweeper: this.state.name, err: error }, `${this.state.name} failed`);
      this.failed(error);
    } finally {
      this.running = undefined;
      this.state.runs += 1;
      this.state.last_run_at = new Date(started).toISOString();
      this.state.last_duration_ms = Date.now() - started;
    }
  }

  /** Resolves when the run under way (if any) has ended, however it ended. */
  async settled(): Promise<void> {
    await this.running?.catch(() => undefined);
  }
}

export abstract class PeriodicService<Result> {
  private timer: NodeJS.Timeout | undefined;
  private stopped = true;
  private readonly runs: RunRecorder;
  /** Sees every failed run (a full disk turns the master read-only). */
  onFailure: ((error: unknown) => void) | undefined;

  constructor(
    readonly name: string,
    protected readonly intervalMs: number,
    protected readonly log: Logger,
  ) {
    this.runs = new RunRecorder(name, intervalMs / 1000, log, (error) => this.onFailure?.(error));
  }

  /** One pass of the service's work. */
  abstract runOnce(): Promise<Result>;

  /** How long to wait before the next run; services with their own timing override it. */
  protected nextDelayMs(): number {
    return this.intervalMs;
  }

  start(): void {
    this.stopped = false;
    this.schedule(this.nextDelayMs());
  }

  /** Run as soon as possible (coalesced with a run already due). */
  poke(): void {
    if (this.stopped) return;
    this.schedule(0);
  }

  protected schedule(delayMs: number): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.tick(), Math.max(0, delayMs));
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    if (this.runs.running) {
      // A run is under way: look again right after it.
      await this.runs.settled();
      this.schedule(0);
      return;
    }
    await this.runs.run(() => this.runOnce());
    this.schedule(this.nextDelayMs());
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.runs.settled();
  }

  status(): ServiceStatus {
    return { ...this.runs.state };
  }
}
