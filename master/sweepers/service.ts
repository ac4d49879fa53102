// One shape for the master's background services (Service): start(), stop(), status(), and
// runOnce() that tests call directly. A run that throws is logged, counted and retried at
// the next tick; it never takes the master down. Also the batching helpers sweeps share.
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
  /** This master is not the one that runs the cluster's services now (PostgreSQL, API.md §12): runs are skipped. */
  standby: boolean;
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
 * The base of every background service: its name, `runOnce()` (which tests call
 * directly), `start()`, `stop()`, `status()`, and the record of its runs. A run is
 * counted and timed; its failure is logged and handed to `onFailure`, never thrown.
 * A subclass says only when runs happen: PeriodicService on an interval (and when
 * poked), CronService on a wall-clock schedule.
 */
export abstract class Service<Result> {
  private readonly state: ServiceStatus;
  /** The run under way, if any. */
  private running: Promise<unknown> | undefined;
  /** Sees every failed run (a full disk turns the master read-only). */
  onFailure: ((error: unknown) => void) | undefined;
  /**
   * Asked before each timed run: whether this master runs the service now. With several
   * masters on one database only one does (Store.leads); the others skip their runs.
   */
  gate: (() => Promise<boolean>) | undefined;

  constructor(
    readonly name: string,
    intervalS: number,
    protected readonly log: Logger,
  ) {
    this.state = { name, interval_s: intervalS, runs: 0, failures: 0, last_run_at: null, last_duration_ms: null, last_error: null, standby: false };
  }

  /** One pass of the service's work. */
  abstract runOnce(): Promise<Result>;

  /** Start timing runs. */
  abstract start(): void;

  /** Stop timing runs (a run under way goes on; stop() waits for it). */
  protected abstract stopTimer(): void | Promise<void>;

  async stop(): Promise<void> {
    await this.stopTimer();
    await this.settled();
  }

  status(): ServiceStatus {
    return { ...this.state };
  }

  /** Whether a run is under way. */
  protected get busy(): boolean {
    return this.running !== undefined;
  }

  /** One run of runOnce(), recorded; skipped while another master runs the service. */
  protected async run(): Promise<void> {
    if (this.gate) {
      let leads = false;
      try {
        leads = await this.gate();
      } catch (error) {
        this.log.warn({ event: "sweeper.gate_failed", sweeper: this.name, err: error }, `${this.name}: cannot tell whether this master runs it`);
      }
      this.state.standby = !leads;
      if (!leads) return;
    }
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

  /** Resolves when the run under way (if any) has ended, however it ended. */
  protected async settled(): Promise<void> {
    await this.running?.catch(() => undefined);
  }
}

/** A service that runs every `intervalMs` (or sooner, see nextDelayMs and poke). */
export abstract class PeriodicService<Result> extends Service<Result> {
  private timer: NodeJS.Timeout | undefined;
  private stopped = true;

  constructor(
    name: string,
    protected readonly intervalMs: number,
    log: Logger,
  ) {
    super(name, intervalMs / 1000, log);
  }

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
    if (this.busy) {
      // A run is under way: look again right after it.
      await this.settled();
      this.schedule(0);
      return;
    }
    await this.run();
    this.schedule(this.nextDelayMs());
  }

  protected stopTimer(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }
}
