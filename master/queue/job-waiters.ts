// Callers waiting for a job to finish (GET /jobs/:id?wait_s=N): each is answered when a
// commit says the job reached a final state (Store.onCommitted's `finished`), or when its
// wait ends, or when it goes away. Nothing polls the database while they wait: a thousand
// idle waiters are a thousand timers.

/** One caller's wait: `done` resolves true once the job finished, false when the wait ended otherwise. */
export interface JobWait {
  done: Promise<boolean>;
  /** Stop waiting now (`done` resolves false). */
  cancel(): void;
}

export class JobWaiters {
  private readonly waiting = new Map<string, Set<(finished: boolean) => void>>();
  private closed = false;

  /** How many callers wait now. */
  get size(): number {
    let count = 0;
    for (const set of this.waiting.values()) count += set.size;
    return count;
  }

  wait(jobId: string, waitMs: number, signal?: AbortSignal): JobWait {
    if (signal?.aborted || this.closed) return { done: Promise.resolve(false), cancel: () => undefined };
    let resolve: (finished: boolean) => void = () => undefined;
    const done = new Promise<boolean>((r) => (resolve = r));
    const settle = (finished: boolean) => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      const set = this.waiting.get(jobId);
      set?.delete(settle);
      if (set?.size === 0) this.waiting.delete(jobId);
      resolve(finished);
    };
    const onAbort = () => settle(false);
    const timer = setTimeout(() => settle(false), waitMs);
    signal?.addEventListener("abort", onAbort, { once: true });
    let set = this.waiting.get(jobId);
    if (!set) this.waiting.set(jobId, (set = new Set()));
    set.add(settle);
    return { done, cancel: () => settle(false) };
  }

  /** These jobs reached a final state (a commit said so): their callers answer now. */
  finished(jobIds: readonly string[]): void {
    for (const id of jobIds) {
      const set = this.waiting.get(id);
      if (set) for (const settle of [...set]) settle(true);
    }
  }

  /** Shutdown: every caller answers now, with the job as it is. */
  close(): void {
    this.closed = true;
    for (const set of [...this.waiting.values()]) for (const settle of [...set]) settle(false);
  }
}
