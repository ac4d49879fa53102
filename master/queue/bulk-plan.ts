// Bulk cancel and retry as sets (API.md §5, Bulk): what the one-job rules (onCancel, onRetry,
// onDependencyRetried) do to every job taken, oldest first, each seeing what the earlier ones
// changed, worked out from facts read once so that a store applies all of it in a few
// statements. Pure: no SQL.
import type { JobStatus } from "../store/types.js";
import { onCancel, onDependencyRetried, onRetry, type JobFacts } from "./transitions.js";

export interface PlannedJob extends JobFacts {
  id: string;
}

export interface CancelPlan {
  /** Waiting jobs that end canceled now (their dependents then fail). */
  canceled: string[];
  /** Running jobs asked to stop. */
  stopRequested: string[];
}

/**
 * Cancel each job, oldest first. `failedBefore` holds the blocked jobs an earlier job's cancel
 * reaches through blocked dependents: those fail (dependency_failed) before their own turn,
 * which then changes nothing.
 */
export function planCancels(jobs: readonly PlannedJob[], failedBefore: ReadonlySet<string>): CancelPlan {
  const plan: CancelPlan = { canceled: [], stopRequested: [] };
  for (const job of jobs) {
    const decision = onCancel(job);
    if (!decision.ok || decision.transition === null) continue;
    if (decision.transition.cancelRequested) plan.stopRequested.push(job.id);
    else if (!failedBefore.has(job.id)) plan.canceled.push(job.id);
  }
  return plan;
}

/** A job the retries may reach: a candidate, or a dependent that failed because of one. */
export interface RetryGraphJob extends PlannedJob {
  failureReason: string | null;
}

export interface RetryGraph {
  /** Every job the retries may change, as read (candidates and dependents reached). */
  jobs: ReadonlyMap<string, RetryGraphJob>;
  /** A job's dependencies (ids), for every job in `jobs`. */
  dependencies: ReadonlyMap<string, readonly string[]>;
  /** A job's dependents in `jobs`, oldest first. */
  dependents: ReadonlyMap<string, readonly string[]>;
  /** The status of every job named above, as read. */
  statuses: ReadonlyMap<string, JobStatus>;
}

export interface RetryPlan {
  /** Candidates retried, in their order, to `status` (pending, or blocked on a dependency). */
  retried: { id: string; status: JobStatus; retryCount: number }[];
  /** Dependents that wait again (blocked), each with the job whose retry reached it, in order. */
  reopened: { id: string; because: string }[];
}

/**
 * Retry each candidate, oldest first, as retry() would one after the other: its dependencies
 * as the earlier retries left them; a candidate an earlier retry already made wait again is
 * not retried; each retried job's dependents that failed only because of it wait again
 * (depth first, oldest first, as reopenDependents walks them).
 */
export function planRetries(candidates: readonly string[], graph: RetryGraph, now: Date): RetryPlan {
  const status = new Map(graph.statuses);
  const failureReason = new Map([...graph.jobs].map(([id, job]) => [id, job.failureReason]));
  const statusesOf = (id: string) => (graph.dependencies.get(id) ?? []).map((dependency) => ({ id: dependency, status: status.get(dependency) as JobStatus }));
  const plan: RetryPlan = { retried: [], reopened: [] };
  for (const id of candidates) {
    const job = graph.jobs.get(id);
    if (!job) continue;
    const decision = onRetry(job, statusesOf(id), now);
    // The write is guarded by the status read: an earlier retry's reopen changed it.
    if (!decision.ok || status.get(id) !== job.status) continue;
    const to = decision.transition?.status ?? "pending";
    status.set(id, to);
    failureReason.set(id, null);
    plan.retried.push({ id, status: to, retryCount: decision.transition?.retryCount ?? 0 });
    const stack = [id];
    while (stack.length > 0) {
      const dependency = stack.pop() as string;
      for (const dependentId of graph.dependents.get(dependency) ?? []) {
        const dependent = graph.jobs.get(dependentId);
        if (!dependent) continue;
        const current = { ...dependent, status: status.get(dependentId) as JobStatus, failureReason: failureReason.get(dependentId) ?? null };
        const transition = onDependencyRetried(current, statusesOf(dependentId).map((d) => d.status));
        if (!transition || current.status !== "failed") continue;
        status.set(dependentId, "blocked");
        failureReason.set(dependentId, null);
        plan.reopened.push({ id: dependentId, because: dependency });
        stack.push(dependentId);
      }
    }
  }
  return plan;
}
