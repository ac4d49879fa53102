// Bulk cancel and retry worked out as sets, without a database: the same answers as the
// one-job rules applied one job after the other, oldest first.
import { describe, expect, it } from "vitest";
import { planCancels, planRetries, type RetryGraph, type RetryGraphJob } from "../../../master/queue/bulk-plan.js";
import type { JobStatus } from "../../../master/store/types.js";

const NOW = new Date("2026-01-01T12:00:00.000Z");

function job(id: string, status: JobStatus, overrides: Partial<RetryGraphJob> = {}): RetryGraphJob {
  return { id, status, attempt: 1, nodeId: null, retryCount: 0, maxRetries: 3, cancelRequested: false, failureReason: null, ...overrides };
}

/** A graph from jobs and "a<-b" links (b depends on a), dependents in the order the jobs are given. */
function graph(jobs: RetryGraphJob[], links: [string, string][], others: Record<string, JobStatus> = {}): RetryGraph {
  const dependencies = new Map<string, string[]>();
  const dependents = new Map<string, string[]>();
  for (const [dependency, dependent] of links) dependencies.set(dependent, [...(dependencies.get(dependent) ?? []), dependency]);
  for (const { id } of jobs) for (const dependency of dependencies.get(id) ?? []) dependents.set(dependency, [...(dependents.get(dependency) ?? []), id]);
  const statuses = new Map<string, JobStatus>([...Object.entries(others), ...jobs.map((j): [string, JobStatus] => [j.id, j.status])]);
  return { jobs: new Map(jobs.map((j) => [j.id, j])), dependencies, dependents, statuses };
}

describe("planCancels", () => {
  it("ends waiting jobs, asks running ones to stop, and skips final ones, those asked already and those an earlier cancel failed", () => {
    const plan = planCancels(
      [
        job("pending", "pending"),
        job("running", "running", { nodeId: "n1" }),
        job("asked", "running", { nodeId: "n1", cancelRequested: true }),
        job("done", "completed"),
        job("reached", "blocked"),
        job("blocked", "blocked"),
      ],
      new Set(["reached"]),
    );
    expect(plan).toEqual({ canceled: ["pending", "blocked"], stopRequested: ["running"] });
  });
});

describe("planRetries", () => {
  it("retries failed and canceled jobs to pending, and leaves the others", () => {
    const jobs = [job("a", "failed"), job("b", "canceled"), job("c", "pending"), job("d", "completed")];
    expect(planRetries(["a", "b", "c", "d"], graph(jobs, []), NOW)).toEqual({
      retried: [
        { id: "a", status: "pending", retryCount: 0 },
        { id: "b", status: "pending", retryCount: 0 },
      ],
      reopened: [],
    });
  });

  it("reopens a failed chain depth first and does not retry a job taken that it reopened", () => {
    const jobs = [
      job("root", "failed"),
      job("child", "failed", { failureReason: "dependency_failed" }),
      job("grandchild", "failed", { failureReason: "dependency_failed" }),
      job("sibling", "failed", { failureReason: "dependency_failed" }),
    ];
    const plan = planRetries(["root", "child"], graph(jobs, [["root", "child"], ["child", "grandchild"], ["root", "sibling"]]), NOW);
    expect(plan).toEqual({
      retried: [{ id: "root", status: "pending", retryCount: 0 }],
      reopened: [
        { id: "child", because: "root" },
        { id: "sibling", because: "root" },
        { id: "grandchild", because: "child" },
      ],
    });
  });

  it("walks reopened dependents as reopenDependents does, the last reached first: a job waiting on two of them names the younger", () => {
    // Breadth first (or the stack read from its bottom) would reopen d because of c1, and g1 before g2.
    const failedBy = { failureReason: "dependency_failed" };
    const jobs = [job("root", "failed"), job("c1", "failed", failedBy), job("c2", "failed", failedBy), job("d", "failed", failedBy), job("g1", "failed", failedBy), job("g2", "failed", failedBy)];
    const links: [string, string][] = [["root", "c1"], ["root", "c2"], ["c1", "d"], ["c2", "d"], ["c1", "g1"], ["c2", "g2"]];
    expect(planRetries(["root"], graph(jobs, links), NOW).reopened).toEqual([
      { id: "c1", because: "root" },
      { id: "c2", because: "root" },
      { id: "d", because: "c2" },
      { id: "g2", because: "c2" },
      { id: "g1", because: "c1" },
    ]);
  });

  it("blocks a job on a dependency retried before it, and refuses one whose dependency stays canceled", () => {
    const jobs = [job("first", "canceled"), job("then", "canceled"), job("stuck", "canceled")];
    const plan = planRetries(["first", "then", "stuck"], graph(jobs, [["first", "then"], ["gone", "stuck"]], { gone: "canceled" }), NOW);
    expect(plan.retried).toEqual([
      { id: "first", status: "pending", retryCount: 0 },
      { id: "then", status: "blocked", retryCount: 0 },
    ]);
  });
});
