// Callers waiting for a job to finish (GET /jobs/:id?wait_s=N): each is answered when a
// commit says the job reached a final state (Store.onCommitted's `finished`), or when its
// wait ends, or when it goes away. Nothing polls the database while they wait: a thousand
// idle waiters are a thousand timers. When commits may have gone unheard (the PostgreSQL
// store's LISTEN connection was lost and made again, Committed.missed), the jobs waited on
// are looked up in one query: the callers of those that finished meanwhile answer, the
// others wait on.

/** How a wait ended: its job finished, or it ended otherwise (time, caller gone, shutdown). */
export type WaitEnd = "finished" | "ended";

/** A lookup that failed (the database gone again) is tried again after this, while anyone waits. */
const RECHECK_RETRY_MS = 1_000;

export interface JobWaitersParams {
  /** Of these jobs, the ones final or gone (Store.jobs.finalAmong). */
  finalAmong: (ids: readonly string[]) => Promise<string[]>;
  /** A lookup after missed commits failed; it is tried again. */
  onRecheckError?: (error: unknown) => void;
}

/** One caller's wait. */
export interface JobWait {
  done: Promise<WaitEnd>;
  /** Stop waiting now (`done` resolves "ended"). */
  cancel(): void;
}

export class JobWaiters {
  private readonly waiting = new Map<string, Set<(end: WaitEnd) => void>>();
  private closed = false;
  private rechecking: Promise<void> | undefined;
  private recheckAgain = false;
  private retryTimer: NodeJS.Timeout | undefined;

  constructor(private readonly params: JobWaitersParams) {}

  /** How many callers wait now. */
  get size(): number {
    let count = 0;
    for (const set of this.waiting.values()) count += set.size;
    return count;
  }

  wait(jobId: string, waitMs: number, signal?: AbortSignal): JobWait {
    if (signal?.aborted || this.closed) return { done: Promise.resolve("ended"), cancel: () => undefined };
    let resolve: (end: WaitEnd) => void = () => undefined;
    const done = new Promise<WaitEnd>((r) => (resolve = r));
    const settle = (end: WaitEnd) => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      const set = this.waiting.get(jobId);
      set?.delete(settle);
      if (set?.size === 0) this.waiting.delete(jobId);
      resolve(end);
    };
    const onAbort = () => settle("ended");
    const timer = setTimeout(() => settle("ended"), waitMs);
    signal?.addEventListener("abort", onAbort, { once: true });
    let set = this.waiting.get(jobId);
    if (!set) this.waiting.set(jobId, (set = new Set()));
    set.add(settle);
    return { done, cancel: () => settle("ended") };
  }

  /** These jobs reached a final state (a commit said so): their callers answer now. */
  finished(jobIds: readonly string[]): void {
    for (const id of jobIds) {
      const set = this.waiting.get(id);
      if (set) for (const settle of [...set]) settle("finished");
    }
  }

  /**
   * Commits may have gone unheard: the jobs waited on now are looked up at once, and the
   * callers of those that finished answer. One lookup at a time; asked again meanwhile, one
   * more follows it. Resolves once looked up (or the lookup failed: tried again in a second).
   */
  recheck(): Promise<void> {
    if (this.rechecking) {
      this.recheckAgain = true;
      return this.rechecking;
    }
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.rechecking = this.lookUp().finally(() => {
      this.rechecking = undefined;
      if (this.recheckAgain) {
        this.recheckAgain = false;
        void this.recheck();
      }
    });
    return this.rechecking;
  }

  private async lookUp(): Promise<void> {
    const ids = [...this.waiting.keys()];
    if (ids.length === 0 || this.closed) return;
    try {
      this.finished(await this.params.finalAmong(ids));
    } catch (error) {
      this.params.onRecheckError?.(error);
      if (this.closed) return;
      this.retryTimer = setTimeout(() => {
        this.retryTimer = undefined;
        if (this.waiting.size > 0) void this.recheck();
      }, RECHECK_RETRY_MS);
      this.retryTimer.unref();
    }
  }

  /** Shutdown: every caller answers now, with the job as it is. */
  close(): void {
    this.closed = true;
    clearTimeout(this.retryTimer);
    for (const set of [...this.waiting.values()]) for (const settle of [...set]) settle("ended");
  }
}
