// Durable commits off the event loop: the WAL's fdatasync on libuv's thread pool, and the
// probe of the event loop's load that decides when a flush on the spot is cheaper.
import { closeSync, fdatasync, fdatasyncSync, openSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { promisify } from "node:util";
import { StorageUnavailableError } from "../types.js";

/** fs.fdatasync as a promise, made once (not once per flush). */
const fdatasyncOnPool = promisify(fdatasync);

/** Above this share of the last window spent working, the event loop counts as busy. */
const BUSY_UTILIZATION = 0.5;
const LOAD_WINDOW_MS = 50;

/**
 * Whether the event loop was busy lately (perf_hooks' event loop utilization,
 * over windows of 50 ms): cheap enough to ask before every flush.
 */
export function loopLoad(): () => boolean {
  let since = performance.eventLoopUtilization();
  let sinceAt = performance.now();
  let busy = false;
  return () => {
    const now = performance.now();
    if (now - sinceAt >= LOAD_WINDOW_MS) {
      const current = performance.eventLoopUtilization();
      busy = performance.eventLoopUtilization(current, since).utilization > BUSY_UTILIZATION;
      since = current;
      sinceAt = now;
    }
    return busy;
  };
}

function flushFailed(error: unknown): StorageUnavailableError {
  return new StorageUnavailableError(`the WAL could not be flushed to disk: ${(error as Error).message}`, "EIO");
}

/**
 * Durable group commits without blocking the event loop. The connection runs
 * with synchronous=NORMAL (a COMMIT only writes the WAL), and a group's promises
 * settle after an fdatasync of the WAL file on the thread pool: a commit is
 * acknowledged only once it is on disk, as with FULL. One flush covers every
 * commit before it (the WAL is appended to). While a flush is on its way the
 * next group keeps growing and commits when it lands, so there is one commit
 * per flush, as when COMMIT waited for the disk, but requests keep being read
 * and checked meanwhile. A group of one is flushed on the spot while the event
 * loop is not busy (the thread pool's round trip cost more than it saved when
 * little else is going on).
 * Writes outside a group (sweeps, admin verbs) flush synchronously right after
 * their COMMIT, as SQLite would. SQLite itself still syncs around checkpoints
 * and when the WAL starts over.
 *
 * Measured with `npm run bench`, against SQLite's own FULL (2 rounds each):
 * the same submission and drain rates, dispatch latency p99 4.9-6.4 ms vs
 * 8.1-9.5 ms; without the growing group, single submissions were 15-30 %
 * slower (many tiny commits), so that part matters.
 */
export class WalSync {
  private fd: number | undefined;
  private commits = 0;
  /** The last commit whose answer waits for the disk (soft commits after it do not count). */
  private hard = 0;
  private flushed = 0;
  private running = false;
  private waiting: { upTo: number; resolve: () => void; reject: (error: unknown) => void }[] = [];

  constructor(
    private readonly walPath: string,
    private readonly fdatasync: (fd: number) => Promise<void> = fdatasyncOnPool,
  ) {}

  /**
   * A write transaction (or a statement outside one) committed. `soft`: nothing waits
   * to see it on disk; the next flush covers it all the same (the WAL is appended to).
   */
  committed(soft = false): void {
    this.commits += 1;
    if (!soft) this.hard = this.commits;
  }

  private file(): number | undefined {
    if (this.fd === undefined) {
      try {
        this.fd = openSync(this.walPath, "r");
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
      }
    }
    return this.fd;
  }

  private idle: (() => void)[] = [];

  /** `fn` once no flush is on its way (at once if none is). */
  whenIdle(fn: () => void): void {
    if (this.running) this.idle.push(fn);
    else fn();
  }

  /** Every commit so far but the soft ones on disk, waiting on the event loop's terms. */
  durable(): Promise<void> {
    const upTo = this.hard;
    if (this.flushed >= upTo) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.waiting.push({ upTo, resolve, reject });
      this.next();
    });
  }

  /** Every commit so far but the soft ones on disk, now (blocking). */
  durableNow(): void {
    if (this.flushed >= this.hard) return;
    try {
      const fd = this.file();
      if (fd !== undefined) fdatasyncSync(fd);
    } catch (error) {
      throw flushFailed(error);
    }
    this.flushed = this.commits;
  }

  private next(): void {
    if (this.running || this.waiting.length === 0) return;
    this.running = true;
    const upTo = this.commits;
    let flush: Promise<void>;
    try {
      const fd = this.file();
      flush = fd === undefined ? Promise.resolve() : this.fdatasync(fd);
    } catch (error) {
      flush = Promise.reject(error);
    }
    const settle = (error?: unknown) => {
      this.running = false;
      if (error === undefined) this.flushed = Math.max(this.flushed, upTo);
      const done = this.waiting.filter((w) => w.upTo <= upTo);
      this.waiting = this.waiting.filter((w) => w.upTo > upTo);
      for (const w of done) {
        if (error === undefined) w.resolve();
        else w.reject(flushFailed(error));
      }
      this.next();
      if (!this.running) for (const fn of this.idle.splice(0)) fn();
    };
    flush.then(() => settle(), (error: unknown) => settle(error ?? new Error("fdatasync failed")));
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}
