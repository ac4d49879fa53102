// Callers waiting for a job to finish (GET /jobs/:id?wait_s=N): each is answered when a
// commit says the job reached a final state (Store.onCommitted's `finished`), or when its
// wait ends, or when it goes away. Nothing polls the database while they wait: a thousand
// idle waiters are a thousand timers. When commits may have gone unheard (the PostgreSQL
// store's LISTEN connection was lost and made again, Committed.missed), every waiter is
// told to look at its job again: it answers if the job finished meanwhile, else waits on.

/** How a wait ended: its job finished, it should look again (it may have), or it ended otherwise (time, caller gone, shutdown). */
export type WaitEnd = "finished" | "recheck" | "ended";

/** One caller's wait. */
export interface JobWait {
  done: Promise<WaitEnd>;
  /** Stop waiting now (`done` resolves "ended"). */
  cancel(): void;
}

export class JobWaiters {
  private readonly waiting = new Map<string, Set<(end: WaitEnd) => void>>();
  private closed = false;

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

  /** Commits may have gone unheard: every caller looks at its job again. */
  recheck(): void {
    for (const set of [...this.waiting.values()]) for (const settle of [...set]) settle("recheck");
  }

  /** Shutdown: every caller answers now, with the job as it is. */
  close(): void {
    this.closed = true;
    for (const set of [...this.waiting.values()]) for (const settle of [...set]) settle("ended");
  }
}
