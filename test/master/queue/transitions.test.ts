// The job's rules without a database: each event's answer, then random event sequences
// checked against the invariants every store relies on.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  onCancel,
  onDependenciesCompleted,
  onDependencyFailed,
  onDependencyRetried,
  onLeaseEnd,
  onReport,
  onRetry,
  onSubmit,
  type JobFacts,
  type HandOut,
  type LeaseEndReason,
  type Transition,
} from "../../../master/queue/transitions.js";
import type { JobStatus } from "../../../master/store/types.js";

const NOW = new Date("2026-01-01T12:00:00.000Z");
const params = { now: NOW, retryDelayMs: (n: number) => 5000 * 2 ** (n - 1) };

function job(overrides: Partial<JobFacts> = {}): JobFacts {
  return { status: "running", attempt: 1, nodeId: "n1", retryCount: 0, maxRetries: 3, cancelRequested: false, ...overrides };
}

const report = (status: "completed" | "failed", overrides: { nodeId?: string; attempt?: number; retryable?: boolean } = {}) => ({
  nodeId: overrides.nodeId ?? "n1",
  attempt: overrides.attempt ?? 1,
  status,
  error: status === "failed" ? { message: "boom", retryable: overrides.retryable ?? true } : undefined,
});

describe("submission", () => {
  it.each([
    [[], null, "pending", null],
    [[], new Date(NOW.getTime() + 1000), "scheduled", null],
    [[], new Date(NOW.getTime() - 1000), "pending", null],
    [["completed", "completed"], null, "pending", null],
    [["completed", "running"], null, "blocked", null],
    [["pending", "canceled"], null, "failed", "dependency_failed"],
    [["failed"], new Date(NOW.getTime() + 1000), "failed", "dependency_failed"],
  ] as [JobStatus[], Date | null, JobStatus, string | null][])("dependencies %j, run_at %s: %s", (deps, runAt, status, reason) => {
    expect(onSubmit(deps, runAt, NOW)).toEqual({ status, failureReason: reason });
  });

  it("releases a blocked job to pending, or scheduled until its run_at", () => {
    expect(onDependenciesCompleted(null, NOW)).toEqual({ status: "pending", readyAt: NOW });
    const later = new Date(NOW.getTime() + 60_000);
    expect(onDependenciesCompleted(later, NOW)).toEqual({ status: "scheduled", readyAt: later });
  });

  it("fails a blocked dependent of a failed job, and leaves others alone", () => {
    expect(onDependencyFailed(job({ status: "blocked", attempt: 0, nodeId: null }))).toMatchObject({
      status: "failed",
      failureReason: "dependency_failed",
      finished: true,
      dependents: "fail",
    });
    expect(onDependencyFailed(job({ status: "completed" }))).toBeNull();
  });
});

describe("reports", () => {
  const cases: [string, JobFacts, ReturnType<typeof report>, Partial<Transition> | string][] = [
    ["completion of the current lease", job(), report("completed"), { status: "completed", finished: true, attemptOutcome: "completed", dependents: "release" }],
    ["retryable failure: backoff 5 s", job(), report("failed"), { status: "scheduled", retryCount: 1, attemptOutcome: "failed", readyAt: new Date(NOW.getTime() + 5000), finished: false }],
    ["third failure: backoff 20 s", job({ retryCount: 2 }), report("failed"), { status: "scheduled", retryCount: 3, readyAt: new Date(NOW.getTime() + 20_000) }],
    ["failure past max_retries", job({ retryCount: 3 }), report("failed"), { status: "failed", retryCount: 3, failureReason: "max_retries_exceeded", dependents: "fail" }],
    ["failure with max_retries 0", job({ maxRetries: 0 }), report("failed"), { status: "failed", failureReason: "max_retries_exceeded" }],
    ["non-retryable failure", job(), report("failed", { retryable: false }), { status: "failed", retryCount: 0, failureReason: "non_retryable" }],
    ["completion after a cancel was asked", job({ cancelRequested: true }), report("completed"), { status: "canceled", attemptOutcome: "canceled", dependents: "fail" }],
    ["failure after a cancel was asked", job({ cancelRequested: true }), report("failed"), { status: "canceled", failureReason: null }],
    ["another node's report", job(), report("completed", { nodeId: "n2" }), "not_found"],
    ["an attempt never handed out", job({ attempt: 2 }), report("completed", { attempt: 3 }), "not_found"],
  ];
  it.each(cases)("%s", (_name, facts, given, expected) => {
    const decision = onReport(facts, null, given, params);
    if (typeof expected === "string") expect(decision).toEqual({ verdict: expected });
    else {
      expect(decision.verdict).toBe("accepted");
      if (decision.verdict === "accepted") expect(decision.transition).toMatchObject(expected);
    }
  });

  it("answers the node that made a report, sending it again, with a duplicate; others as if the job did not exist", () => {
    const done = job({ status: "completed" });
    const handOut: HandOut = { nodeId: "n1", reported: "completed" };
    expect(onReport(done, handOut, report("completed"), params)).toEqual({ verdict: "duplicate" });
    expect(onReport(done, handOut, report("failed"), params)).toEqual({ verdict: "stale_attempt" });
    expect(onReport(done, handOut, report("completed", { nodeId: "n2" }), params)).toEqual({ verdict: "not_found" });
  });

  it("tells a node an attempt it held is stale once the job moved on", () => {
    const handOut: HandOut = { nodeId: "n1", reported: null };
    expect(onReport(job({ attempt: 2, nodeId: "n2" }), handOut, report("completed", { attempt: 1 }), params)).toEqual({ verdict: "stale_attempt" });
    expect(onReport(job({ status: "pending", nodeId: null }), handOut, report("completed"), params)).toEqual({ verdict: "stale_attempt" });
    expect(onReport(job({ attempt: 2, nodeId: "n2" }), handOut, report("completed", { attempt: 1, nodeId: "n3" }), params)).toEqual({ verdict: "not_found" });
  });

  it("retries at once when the backoff is zero", () => {
    const decision = onReport(job(), null, report("failed"), { now: NOW, retryDelayMs: () => 0 });
    expect(decision).toMatchObject({ verdict: "accepted", transition: { status: "pending", readyAt: NOW } });
  });
});

describe("leases that end without a report", () => {
  it.each([
    ["node_dead", "reassigned"],
    ["node_left", "reassigned"],
    ["lease_expired", "reassigned"],
    ["stalled", "stalled"],
  ] as [LeaseEndReason, string][])("%s: back to pending at once, retry_count + 1, attempt %s", (reason, outcome) => {
    expect(onLeaseEnd(job(), reason, NOW)).toMatchObject({ status: "pending", retryCount: 1, readyAt: NOW, attemptOutcome: outcome, finished: false });
  });

  it("fails a job whose retries are spent, and cancels one whose cancel was asked", () => {
    expect(onLeaseEnd(job({ retryCount: 3 }), "node_dead", NOW)).toMatchObject({ status: "failed", failureReason: "max_retries_exceeded", attemptOutcome: "reassigned" });
    expect(onLeaseEnd(job({ cancelRequested: true }), "stalled", NOW)).toMatchObject({ status: "canceled", attemptOutcome: "canceled" });
  });
});

describe("cancel and retry", () => {
  it.each(["blocked", "scheduled", "pending"] as JobStatus[])("cancels a %s job at once", (status) => {
    expect(onCancel(job({ status, nodeId: null }))).toMatchObject({ ok: true, transition: { status: "canceled", finished: true, dependents: "fail" } });
  });

  it("asks a running job to stop, once", () => {
    expect(onCancel(job())).toMatchObject({ ok: true, transition: { status: "running", cancelRequested: true } });
    expect(onCancel(job({ cancelRequested: true }))).toEqual({ ok: true, transition: null });
  });

  it.each(["completed", "failed", "canceled"] as JobStatus[])("refuses to cancel a %s job", (status) => {
    expect(onCancel(job({ status }))).toEqual({ ok: false, reason: "conflict" });
  });

  it("retries a failed or canceled job now, with retry_count 0", () => {
    for (const status of ["failed", "canceled"] as JobStatus[]) {
      expect(onRetry(job({ status, retryCount: 3 }), [], NOW)).toMatchObject({ ok: true, transition: { status: "pending", retryCount: 0, readyAt: NOW, dependents: "reopen" } });
    }
  });

  it("retries into blocked while a dependency runs, and refuses while one failed", () => {
    expect(onRetry(job({ status: "failed" }), [{ id: "a", status: "running" }], NOW)).toMatchObject({ ok: true, transition: { status: "blocked" } });
    expect(onRetry(job({ status: "failed" }), [{ id: "a", status: "canceled" }], NOW)).toEqual({
      ok: false,
      reason: "conflict",
      detail: "its dependency a is canceled; retry that first",
    });
  });

  it.each(["blocked", "scheduled", "pending", "running", "completed"] as JobStatus[])("refuses to retry a %s job", (status) => {
    expect(onRetry(job({ status }), [], NOW)).toEqual({ ok: false, reason: "conflict" });
  });

  it("reopens a dependent that failed only because of the retried job", () => {
    const dependent = { ...job({ status: "failed", nodeId: null, attempt: 0 }), failureReason: "dependency_failed" };
    expect(onDependencyRetried(dependent, ["pending"])).toMatchObject({ status: "blocked", failureReason: null, dependents: "reopen" });
    expect(onDependencyRetried(dependent, ["pending", "failed"])).toBeNull();
    expect(onDependencyRetried({ ...dependent, failureReason: "non_retryable" }, ["pending"])).toBeNull();
  });
});

// ---- property: random sequences of events ----------------------------------------------

/** A job as a store keeps it, applying each transition as the stores do. */
interface Model extends JobFacts {
  failureReason: string | null;
  handOuts: Map<number, HandOut>;
  completions: number;
}

type Event =
  | { kind: "claim"; nodeId: string }
  | { kind: "report"; nodeId: string; attemptBack: number; status: "completed" | "failed"; retryable: boolean }
  | { kind: "lease_end"; reason: LeaseEndReason }
  | { kind: "cancel" }
  | { kind: "retry" }
  | { kind: "promote" };

const events: fc.Arbitrary<Event> = fc.oneof(
  fc.record({ kind: fc.constant("claim" as const), nodeId: fc.constantFrom("n1", "n2") }),
  fc.record({
    kind: fc.constant("report" as const),
    nodeId: fc.constantFrom("n1", "n2"),
    attemptBack: fc.constantFrom(0, 0, 0, 1),
    status: fc.constantFrom("completed" as const, "failed" as const),
    retryable: fc.boolean(),
  }),
  fc.record({ kind: fc.constant("lease_end" as const), reason: fc.constantFrom("node_dead", "node_left", "stalled", "lease_expired") as fc.Arbitrary<LeaseEndReason> }),
  fc.constant({ kind: "cancel" as const }),
  fc.constant({ kind: "retry" as const }),
  fc.constant({ kind: "promote" as const }),
);

function apply(model: Model, transition: Transition): void {
  model.status = transition.status;
  model.retryCount = transition.retryCount;
  model.failureReason = transition.failureReason;
  if (transition.cancelRequested) model.cancelRequested = true;
  if (transition.status !== "running") model.nodeId = null;
  if (transition.dependents === "reopen") model.cancelRequested = false;
}

function step(model: Model, event: Event, delayMs: number): void {
  const now = NOW;
  switch (event.kind) {
    case "claim":
      if (model.status !== "pending") return;
      model.status = "running";
      model.attempt += 1;
      model.nodeId = event.nodeId;
      model.cancelRequested = false;
      model.handOuts.set(model.attempt, { nodeId: event.nodeId, reported: null });
      return;
    case "report": {
      const attempt = model.attempt - event.attemptBack;
      const decision = onReport(
        model,
        model.handOuts.get(attempt) ?? null,
        { nodeId: event.nodeId, attempt, status: event.status, error: { message: "x", retryable: event.retryable } },
        { now, retryDelayMs: () => delayMs },
      );
      if (decision.verdict !== "accepted") return;
      if (decision.transition.status === "completed") model.completions += 1;
      model.handOuts.set(attempt, { nodeId: event.nodeId, reported: event.status });
      apply(model, decision.transition);
      return;
    }
    case "lease_end":
      if (model.status === "running") apply(model, onLeaseEnd(model, event.reason, now));
      return;
    case "cancel": {
      const decision = onCancel(model);
      if (decision.ok && decision.transition) apply(model, decision.transition);
      return;
    }
    case "retry": {
      const decision = onRetry(model, [], now);
      if (decision.ok && decision.transition) {
        apply(model, decision.transition);
        model.completions = 0; // a retried job may complete again: that is a new run
      }
      return;
    }
    case "promote":
      if (model.status === "scheduled") model.status = "pending";
      return;
  }
}

describe("random event sequences", () => {
  it("never accept two completions, never run without a lease, never pass max_retries outside failed", () => {
    fc.assert(
      fc.property(fc.array(events, { maxLength: 60 }), fc.integer({ min: 0, max: 5 }), fc.constantFrom(0, 5000), (sequence, maxRetries, delayMs) => {
        const model: Model = {
          status: "pending",
          attempt: 0,
          nodeId: null,
          retryCount: 0,
          maxRetries,
          cancelRequested: false,
          failureReason: null,
          handOuts: new Map(),
          completions: 0,
        };
        for (const event of sequence) {
          step(model, event, delayMs);
          expect(model.completions).toBeLessThanOrEqual(1);
          if (model.status === "running") {
            expect(model.nodeId).not.toBeNull();
            expect(model.attempt).toBeGreaterThanOrEqual(1);
          } else {
            expect(model.nodeId).toBeNull();
          }
          if (model.status !== "failed") expect(model.retryCount).toBeLessThanOrEqual(model.maxRetries);
          if (model.status === "failed") expect(model.failureReason).not.toBeNull();
          // Completed is final: nothing but a retry (refused for a completed job) moves it.
          if (model.completions === 1) expect(model.status).toBe("completed");
        }
      }),
      { numRuns: 2000 },
    );
  });
});
