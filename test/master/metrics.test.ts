// Metrics: series labelled by clients' job types stay bounded (API.md §8).
import { describe, expect, it } from "vitest";
import { Metrics, TypeLabels } from "../../master/metrics.js";
import type { QueueStats } from "../../master/store/types.js";

describe("TypeLabels", () => {
  it("keeps the first types it sees and names every later one other", () => {
    const types = new TypeLabels(2);
    expect(["a", "b", "c", "a", "b", "d"].map((type) => types.of(type))).toEqual(["a", "b", "other", "a", "b", "other"]);
  });

  it("with a bound of 0 counts every type under other", () => {
    expect(new TypeLabels(0).of("a")).toBe("other");
  });
});

describe("Metrics", () => {
  it("holds at most maxTypes + 1 type series however many types clients send", async () => {
    const metrics = new Metrics({ readQueueStats: () => Promise.reject(new Error("not read")) as Promise<QueueStats>, maxTypes: 3 });
    for (let index = 0; index < 1000; index += 1) {
      const type = `random-${index}`;
      metrics.jobsSubmitted.inc({ type, priority: "medium" });
      metrics.jobsCompleted.inc({ type, priority: "medium" });
      metrics.jobsFailed.inc({ type, priority: "medium", reason: "max_retries_exceeded" });
      metrics.jobsRetried.inc({ type, priority: "medium" });
      metrics.jobRun.observe({ type }, 0.1);
    }
    for (const name of ["gaffer_jobs_submitted_total", "gaffer_jobs_completed_total", "gaffer_jobs_failed_total", "gaffer_jobs_retried_total", "gaffer_job_run_seconds"]) {
      const metric = await metrics.registry.getSingleMetric(name)?.get();
      const types = new Set(metric?.values.map((value) => value.labels.type));
      expect([...types].sort(), name).toEqual(["other", "random-0", "random-1", "random-2"]);
    }
  });
});
