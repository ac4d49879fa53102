// The job's rules, once: what each event does to a job (API.md §5, §6, §7). Pure
// functions, no SQL and no HTTP. A store reads the facts they need inside its
// transaction, asks here, and applies the answer with a write guarded by the state it
// read (`WHERE id = ? AND status = ? AND attempt = ?`), as River's drivers apply its
// core's decisions ("set state if running").
import { FINAL_JOB_STATUSES, type AttemptOutcome, type FailureReason, type JobError, type JobStatus, type LeaseEndReason } from "../store/types.js";

export type { AttemptOutcome, FailureReason, LeaseEndReason } from "../store/types.js";

/** What the rules need to know of a job. */
export interface JobFacts {
  status: JobStatus;
  /** The current (or last) lease number: +1 each time the job is handed to a node. */
  attempt: number;
  nodeId: string | null;
  retryCount: number;
  maxRetries: number;
  cancelRequested: boolean;
}

/** What becomes of the jobs that wait on this one. */
export type DependentsEffect = "release" | "fail" | "reopen";

/** A change of state, for the store to apply to one job. */
export interface Transition {
  status: JobStatus;
  retryCount: number;
  failureReason: FailureReason | null;
  /** Pending or scheduled: since when it is ready, or when it becomes ready. */
  readyAt: Date | null;
  /** A final state was reached now (finished_at is set). */
  finished: boolean;
  /** How the lease that was running ended, if one did. */
  attemptOutcome: AttemptOutcome | null;
  /** The jobs waiting on this one: released, failed, or waiting on it again. */
  dependents: DependentsEffect | null;
  /** A cancel of a running job: it keeps running until its node stops it. */
  cancelRequested?: true;
}

export interface RuleParams {
  now: Date;
  /** Delay before retry number `retryCount` (1 for the first), jitter included. */
  retryDelayMs(retryCount: number): number;
}

const WAITING: ReadonlySet<JobStatus> = new Set(["blocked", "scheduled", "pending"]);

export function isFinal(status: JobStatus): boolean {
  return FINAL_JOB_STATUSES.has(status);
}

/** A job not yet handed out (its priority may change; a cancel ends it at once). */
export function isWaiting(status: JobStatus): boolean {
  return WAITING.has(status);
}

function ended(status: "completed" | "failed" | "canceled", outcome: AttemptOutcome | null, failureReason: FailureReason | null, job: JobFacts): Transition {
  return {
    status,
    retryCount: job.retryCount,
    failureReason,
    readyAt: null,
    finished: true,
    attemptOutcome: outcome,
    dependents: status === "completed" ? "release" : "fail",
  };
}

/** The job goes back to the queue as retry `retryCount`, ready at `readyAt` (now: pending). */
function requeued(retryCount: number, readyAt: Date, now: Date, outcome: AttemptOutcome): Transition {
  return {
    status: readyAt > now ? "scheduled" : "pending",
    retryCount,
    failureReason: null,
    readyAt,
    finished: false,
    attemptOutcome: outcome,
    dependents: null,
  };
}

// ---- submission and dependencies ---------------------------------------------------

/** A new job's first state, from its dependencies' states and its run_at. */
export function onSubmit(dependencies: readonly JobStatus[], runAt: Date | null, now: Date): { status: JobStatus; failureReason: FailureReason | null } {
  if (dependencies.some((status) => status === "failed" || status === "canceled")) {
    return { status: "failed", failureReason: "dependency_failed" };
  }
  if (dependencies.some((status) => status !== "completed")) return { status: "blocked", failureReason: null };
  return { status: runAt !== null && runAt > now ? "scheduled" : "pending", failureReason: null };
}

/** A blocked job whose dependencies have all completed: pending, or scheduled until its run_at. */
export function onDependenciesCompleted(runAt: Date | null, now: Date): { status: "pending" | "scheduled"; readyAt: Date } {
  const scheduled = runAt !== null && runAt > now;
  return { status: scheduled ? "scheduled" : "pending", readyAt: scheduled ? runAt : now };
}

/** A blocked job whose dependency ended failed or canceled fails too (API.md §5). */
export function onDependencyFailed(job: JobFacts): Transition | null {
  if (job.status !== "blocked") return null;
  return ended("failed", null, "dependency_failed", job);
}

// ---- results from nodes --------------------------------------------------------------

export interface Report {
  nodeId: string;
  attempt: number;
  status: "completed" | "failed";
  error?: JobError | undefined;
}

/** The report accepted last, so that the same report sent again is answered as before. */
/** The hand-out a report names (its job and attempt): to which node, and what that node reported. */
export interface HandOut {
  nodeId: string;
  reported: string | null;
}

export type ReportDecision =
  | { verdict: "accepted"; transition: Transition }
  | { verdict: "duplicate" }
  | { verdict: "stale_attempt" }
  | { verdict: "not_found" };

/** Whether a report is for the job's current lease: running, on that node, under that attempt. */
export function isCurrentLease(job: JobFacts, nodeId: string, attempt: number): boolean {
  return job.status === "running" && job.nodeId === nodeId && job.attempt === attempt;
}

/**
 * A node reports the end of an attempt. Only the current lease is accepted. The same
 * report again from the node that made it is a duplicate (reports are idempotent); any
 * other report of an attempt that node was handed is stale and changes nothing; a node
 * the attempt was never handed to is told the job does not exist (API.md §6). A cancel
 * asked while it ran wins over its outcome.
 */
export function onReport(job: JobFacts, handOut: HandOut | null, report: Report, params: RuleParams): ReportDecision {
  if (!isCurrentLease(job, report.nodeId, report.attempt)) {
    if (handOut === null || handOut.nodeId !== report.nodeId) return { verdict: "not_found" };
    return { verdict: handOut.reported === report.status ? "duplicate" : "stale_attempt" };
  }
  if (job.cancelRequested) return { verdict: "accepted", transition: ended("canceled", "canceled", null, job) };
  if (report.status === "completed") return { verdict: "accepted", transition: ended("completed", "completed", null, job) };
  const retryable = report.error?.retryable !== false;
  const retryCount = job.retryCount + 1;
  if (!retryable) return { verdict: "accepted", transition: ended("failed", "failed", "non_retryable", job) };
  if (retryCount > job.maxRetries) return { verdict: "accepted", transition: ended("failed", "failed", "max_retries_exceeded", job) };
  const readyAt = new Date(params.now.getTime() + Math.max(0, params.retryDelayMs(retryCount)));
  return { verdict: "accepted", transition: requeued(retryCount, readyAt, params.now, "failed") };
}

// ---- leases that end without a report ---------------------------------------------------

const LEASE_END_OUTCOME: Record<LeaseEndReason, AttemptOutcome> = {
  node_dead: "reassigned",
  node_left: "reassigned",
  lease_expired: "reassigned",
  stalled: "stalled",
};

/**
 * A running job whose lease ended without a report (its node died or left, stopped
 * listing it, or it ran past its stall time): canceled if a cancel was asked, else back
 * to the queue at once (the lost time was the node's, not the job's), or failed once
 * its retries are spent.
 */
export function onLeaseEnd(job: JobFacts, reason: LeaseEndReason, now: Date): Transition {
  const outcome = LEASE_END_OUTCOME[reason];
  if (job.cancelRequested) return ended("canceled", "canceled", null, job);
  const retryCount = job.retryCount + 1;
  if (retryCount > job.maxRetries) return ended("failed", outcome, "max_retries_exceeded", job);
  return requeued(retryCount, now, now, outcome);
}

// ---- what people do -----------------------------------------------------------------------

export type ActionDecision =
  | { ok: true; transition: Transition | null }
  | { ok: false; reason: "conflict"; detail?: string };

const conflict = (detail?: string): ActionDecision => (detail === undefined ? { ok: false, reason: "conflict" } : { ok: false, reason: "conflict", detail });

/**
 * Cancel: a waiting job ends `canceled` at once; a running one is asked to stop (it ends
 * when its node reports or its lease ends); asked twice, nothing changes; a final one is a
 * conflict.
 */
export function onCancel(job: JobFacts): ActionDecision {
  if (isWaiting(job.status)) return { ok: true, transition: ended("canceled", null, null, job) };
  if (job.status !== "running") return conflict();
  if (job.cancelRequested) return { ok: true, transition: null };
  return {
    ok: true,
    transition: { status: "running", retryCount: job.retryCount, failureReason: null, readyAt: null, finished: false, attemptOutcome: null, dependents: null, cancelRequested: true },
  };
}

/**
 * Retry a failed or canceled job: back to the queue now (even if its run_at is still
 * ahead, as "retry now" in Oban and Sidekiq), with retry_count 0 and the same id; blocked
 * again while a dependency has not completed; refused while one is failed or canceled.
 * The jobs that failed only because of it wait for it again.
 */
export function onRetry(job: JobFacts, dependencies: readonly { id: string; status: JobStatus }[], now: Date): ActionDecision {
  if (job.status !== "failed" && job.status !== "canceled") return conflict();
  const failed = dependencies.find((dependency) => dependency.status === "failed" || dependency.status === "canceled");
  if (failed) return conflict(`its dependency ${failed.id} is ${failed.status}; retry that first`);
  const blocked = dependencies.some((dependency) => dependency.status !== "completed");
  return {
    ok: true,
    transition: {
      status: blocked ? "blocked" : "pending",
      retryCount: 0,
      failureReason: null,
      readyAt: now,
      finished: false,
      attemptOutcome: null,
      dependents: "reopen",
    },
  };
}

/**
 * A job was retried: each job that failed only because of it (dependency_failed) waits for
 * it again (blocked), unless another of its dependencies is still failed or canceled.
 */
export function onDependencyRetried(job: JobFacts & { failureReason: string | null }, dependencies: readonly JobStatus[]): Transition | null {
  if (job.status !== "failed" || job.failureReason !== "dependency_failed") return null;
  if (dependencies.some((status) => status === "failed" || status === "canceled")) return null;
  return { status: "blocked", retryCount: job.retryCount, failureReason: null, readyAt: null, finished: false, attemptOutcome: null, dependents: "reopen" };
}

/** A new priority, only while the job waits. */
export function canChangePriority(job: Pick<JobFacts, "status">): boolean {
  return isWaiting(job.status);
}
