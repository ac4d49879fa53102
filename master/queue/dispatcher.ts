// Long-poll claims: a claim that finds nothing waits here until a job may be
// ready for it or its wait ends. No polling loop: waiting claims are retried only
// when something changed, oldest waiter first. What changed is the store's to say:
// the master calls notify() when a commit made jobs ready or freed slots
// (Store.onCommitted), never before the write is in.
//
// notify() queues the retry at once, not a tick later: SQLite's group commit runs
// it in a transaction of its own right after the one that woke it, before their
// shared flush. A job submitted while a worker waits is handed over with one fsync
// for both, and a worker's next jobs with the results that freed its slots.
//
// A node has at most its capacity of claims waiting (API.md §6): more could never
// take a job, and each would cost every pass a store lookup. The extra one is
// refused at once ("too_many_waiting"), not parked.
import type { ClaimOutcome, JobStore, NodeStore } from "../store/types.js";

interface Waiter {
  nodeId: string;
  max: number;
  resolve: (outcome: ClaimOutcome) => void;
  timer: NodeJS.Timeout;
  done: boolean;
  /** In the store call of a pass: what it takes for this claim is answered, even past its wait. */
  claiming: boolean;
  /** Its wait ended while it was being claimed for: answered when the pass has its outcome. */
  expired: boolean;
  cleanup: () => void;
}

export interface ClaimParams {
  nodeId: string;
  max: number;
  waitMs: number;
  /** Aborted when the caller went away: the claim stops waiting and takes nothing. */
  signal?: AbortSignal;
}

/** A claim answers as the store does, or is refused because its node has its capacity of claims waiting. */
export type DispatchOutcome = ClaimOutcome | { ok: false; reason: "too_many_waiting" };

export interface DispatcherParams {
  jobs: JobStore;
  /** Read only when a node already has a claim waiting: how many more it may have. */
  nodes: Pick<NodeStore, "get">;
  /** False while the master is paused: claims get nothing, waiting ones keep waiting. */
  canDispatch?: () => boolean;
}

const EMPTY: ClaimOutcome = { ok: true, items: [] };
const TOO_MANY_WAITING: DispatchOutcome = { ok: false, reason: "too_many_waiting" };

export class Dispatcher {
  private waiters: Waiter[] = [];
  /** Waiting claims by node id; a node with none has no entry. */
  private readonly waitingByNode = new Map<string, number>();
  private passRunning = false;
  private passWanted = false;
  private generation = 0;
  private closed = false;
  private readonly jobs: JobStore;
  private readonly nodes: Pick<NodeStore, "get">;
  private readonly canDispatch: () => boolean;

  constructor(params: DispatcherParams) {
    this.jobs = params.jobs;
    this.nodes = params.nodes;
    this.canDispatch = params.canDispatch ?? (() => true);
  }

  private async tryClaim(nodeId: string, max: number): Promise<ClaimOutcome> {
    if (!this.canDispatch()) return EMPTY;
    return this.jobs.claim({ nodeId, max });
  }

  /** The waiting claims in one store call, in order; a failing store gives them nothing rather than hanging them. */
  private async tryClaims(waiters: Waiter[]): Promise<ClaimOutcome[]> {
    if (!this.canDispatch()) return waiters.map(() => EMPTY);
    return this.jobs.claimEach(waiters.map((waiter) => ({ nodeId: waiter.nodeId, max: waiter.max }))).catch(() => waiters.map(() => EMPTY));
  }

  get waiting(): number {
    return this.waiters.length;
  }

  /**
   * Whether one more claim of this node may wait. The common case, no claim of the
   * node waiting yet, reads nothing; the count is read again after the lookup, and
   * the caller parks its claim before anything else runs.
   */
  private async mayWait(nodeId: string): Promise<boolean> {
    if (!this.waitingByNode.has(nodeId)) return true;
    const capacity = (await this.nodes.get(nodeId))?.capacity ?? 0;
    return (this.waitingByNode.get(nodeId) ?? 0) < capacity;
  }

  async claim(params: ClaimParams): Promise<DispatchOutcome> {
    const seen = this.generation;
    const first = await this.tryClaim(params.nodeId, params.max);
    if (!first.ok || first.items.length > 0 || params.waitMs <= 0 || this.closed || params.signal?.aborted) {
      return first;
    }
    if (!(await this.mayWait(params.nodeId))) return TOO_MANY_WAITING;
    if (this.closed || params.signal?.aborted) return EMPTY;
    return new Promise<ClaimOutcome>((resolve) => {
      const onAbort = () => this.finish(waiter, EMPTY);
      const waiter: Waiter = {
        nodeId: params.nodeId,
        max: params.max,
        resolve,
        done: false,
        claiming: false,
        expired: false,
        timer: setTimeout(() => this.expire(waiter), params.waitMs),
        cleanup: () => params.signal?.removeEventListener("abort", onAbort),
      };
      params.signal?.addEventListener("abort", onAbort, { once: true });
      this.waiters.push(waiter);
      this.waitingByNode.set(waiter.nodeId, (this.waitingByNode.get(waiter.nodeId) ?? 0) + 1);
      // Something became ready while the first attempt ran: look again.
      if (this.generation !== seen) this.notify();
    });
  }

  /**
   * Jobs may be ready (a commit said so, or the master left pause): retry the waiting
   * claims now (see the top of this file). While a retry is on its way, further calls
   * ask for one more after it.
   */
  notify(): void {
    this.generation += 1;
    if (this.waiters.length === 0) return;
    if (this.passRunning) {
      this.passWanted = true;
      return;
    }
    this.passRunning = true;
    void this.pass();
  }

  /**
   * Every waiting claim at once, oldest first, in one store call queued now: in one
   * group commit the oldest waiter takes first, and once the ready jobs are gone the
   * others do not look for them again (a thousand idle nodes cost a submission a
   * thousand claims before).
   */
  private async pass(): Promise<void> {
    try {
      do {
        this.passWanted = false;
        const waiters = this.waiters.filter((waiter) => !waiter.done);
        for (const waiter of waiters) waiter.claiming = true;
        const outcomes = await this.tryClaims(waiters);
        waiters.forEach((waiter, index) => {
          waiter.claiming = false;
          const outcome = outcomes[index] ?? EMPTY;
          // Nothing for it yet: it keeps waiting, unless its wait ended meanwhile. (A waiter
          // whose caller left while we claimed is done already; its jobs' leases run out and
          // they go back.)
          if (outcome.ok && outcome.items.length === 0 && !waiter.expired) return;
          this.finish(waiter, outcome);
        });
      } while (this.passWanted && !this.closed);
    } finally {
      this.passRunning = false;
    }
  }

  /**
   * A claim's wait is over: it answers empty, unless a pass is claiming for it now. Then the
   * pass answers it with what it took: answering empty first would leave those jobs running on
   * the node, unknown to it, until their leases ran out.
   */
  private expire(waiter: Waiter): void {
    if (waiter.claiming) waiter.expired = true;
    else this.finish(waiter, EMPTY);
  }

  private finish(waiter: Waiter, outcome: ClaimOutcome): void {
    if (waiter.done) return;
    waiter.done = true;
    clearTimeout(waiter.timer);
    waiter.cleanup();
    this.waiters = this.waiters.filter((w) => w !== waiter);
    const left = (this.waitingByNode.get(waiter.nodeId) ?? 1) - 1;
    if (left > 0) this.waitingByNode.set(waiter.nodeId, left);
    else this.waitingByNode.delete(waiter.nodeId);
    waiter.resolve(outcome);
  }

  /** Shutdown: every waiting claim answers now with an empty list. */
  close(): void {
    this.closed = true;
    for (const waiter of [...this.waiters]) this.finish(waiter, EMPTY);
  }
}
