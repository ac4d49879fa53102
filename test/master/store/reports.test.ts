// Results and fencing: only the current lease may report; the same report twice is harmless.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { claim, dialects, jobParams, register, submit, type TestStore } from "../../helpers/store.js";
import { removeTempDirs } from "../../helpers/temp.js";

describe.each(dialects)("reports ($name)", (dialect) => {
  let t: TestStore;
  beforeEach(async () => {
    t = await dialect.open({ retryDelayS: 5, retryMaxDelayS: 300 });
  });
  afterEach(async () => {
    await t.store.close();
    removeTempDirs();
  });

  async function running(overrides = {}) {
    const job = await submit(t.store, overrides);
    const node = await register(t.store);
    const [claimed] = await claim(t.store, node.id, 1);
    if (!claimed) throw new Error("nothing claimed");
    return { job, node, attempt: claimed.attempt };
  }

  it("deletes a job's attempts with the job, by retention's purge or by an operator's DELETE", async () => {
    const { job, node, attempt } = await running();
    const kept = await running();
    await t.store.jobs.report({ nodeId: node.id, reports: [{ jobId: job.id, attempt, status: "completed" }] });
    const attempts = async (id: string) => Number((await t.query("SELECT count(*) AS n FROM job_attempts WHERE job_id = ?", [id]))[0]?.n);
    expect(await attempts(job.id)).toBe(1);
    t.clock.advanceSeconds(60);
    expect(await t.store.jobs.purgeFinished({ before: t.clock.now(), limit: 10 })).toBe(1);
    expect(await attempts(job.id)).toBe(0);
    expect(await attempts(kept.job.id)).toBe(1);
    await t.query("DELETE FROM jobs WHERE id = ?", [kept.job.id]);
    expect(await attempts(kept.job.id)).toBe(0);
  });

  it("makes a completed job's progress 100, whatever the last heartbeat said, alone or in a batch", async () => {
    const node = await register(t.store, "node-p", [], 4);
    const [a, b] = [await submit(t.store), await submit(t.store)];
    await claim(t.store, node.id, 2);
    const running = [a, b].map((job) => ({ jobId: job.id, attempt: 1, progress: 50, message: "step 3 of 4" }));
    await t.store.nodes.heartbeat({ nodeId: node.id, running });
    expect(await t.store.jobs.get(a.id)).toMatchObject({ progress: 50, progress_message: "step 3 of 4" });
    await t.store.jobs.report({ nodeId: node.id, reports: [{ jobId: a.id, attempt: 1, status: "completed" }] });
    const c = await submit(t.store);
    await claim(t.store, node.id, 1);
    await t.store.jobs.report({
      nodeId: node.id,
      reports: [
        { jobId: b.id, attempt: 1, status: "completed" },
        { jobId: c.id, attempt: 1, status: "completed" },
      ],
    });
    for (const job of [a, b]) expect(await t.store.jobs.get(job.id)).toMatchObject({ status: "completed", progress: 100, progress_message: null });
  });

  it("keeps no error on a job that ended canceled; its attempt keeps what the node said", async () => {
    const { job, node, attempt } = await running();
    await t.store.jobs.cancel({ id: job.id, actor: "c" });
    const error = { message: "stopped: the job was canceled", code: "canceled", retryable: true };
    await t.store.jobs.report({ nodeId: node.id, reports: [{ jobId: job.id, attempt, status: "failed", error }] });
    expect(await t.store.jobs.get(job.id)).toMatchObject({ status: "canceled", error: null });
    expect(await t.store.jobs.attempts(job.id)).toMatchObject([{ attempt, outcome: "canceled", error }]);
    const events = await t.store.jobs.events({ jobId: job.id, limit: 10 });
    expect(events.items.at(-1)).toMatchObject({ event_type: "job.canceled", details: { node_id: node.id, attempt } });
    expect(events.items.at(-1)?.details).not.toHaveProperty("reported");
  });

  it("keeps the master's own failure in a job's history, with the node and attempt it ended", async () => {
    const job = await submit(t.store, { maxRetries: 0, timeoutS: 1 });
    const node = await register(t.store);
    await claim(t.store, node.id);
    t.clock.advanceSeconds(2 + 300 + 1);
    expect(await t.store.jobs.rescueStalled({ limit: 10 })).toEqual([{ jobId: job.id, nodeId: node.id, outcome: "failed" }]);
    const events = await t.store.jobs.events({ jobId: job.id, limit: 10 });
    expect(events.items.at(-1)).toMatchObject({ event_type: "job.failed", node_id: node.id, attempt: 1, details: { failure_reason: "max_retries_exceeded", reason: "stalled" } });
  });

  it("completes a job with its result and an audit row", async () => {
    const { job, node, attempt } = await running();
    const outcome = await t.store.jobs.report({
      nodeId: node.id,
      reports: [{ jobId: job.id, attempt, status: "completed", result: { ok: 1 } }],
    });
    expect(outcome.items).toEqual([
      {
        jobId: job.id,
        verdict: "accepted",
        effect: { type: "echo", priority: "medium", status: "completed", failureReason: null, runMs: 0 },
      },
    ]);
    const done = await t.store.jobs.get(job.id);
    expect(done).toMatchObject({ status: "completed", result: { ok: 1 }, node_id: node.id, finished_at: t.clock.now().toISOString() });
    const events = await t.store.jobs.events({ jobId: job.id, limit: 50 });
    expect(events.items.map((e) => e.event_type)).toEqual(["job.submitted", "job.assigned", "job.completed"]);
  });

  it("answers the same accepted report again as a duplicate and changes nothing", async () => {
    const { job, node, attempt } = await running();
    const report = { jobId: job.id, attempt, status: "completed" as const, result: { n: 1 } };
    await t.store.jobs.report({ nodeId: node.id, reports: [report] });
    const before = await t.store.jobs.get(job.id);
    t.clock.advanceSeconds(5);
    const again = await t.store.jobs.report({ nodeId: node.id, reports: [{ ...report, result: { n: 2 } }] });
    expect(again.items[0]?.verdict).toBe("duplicate");
    expect(await t.store.jobs.get(job.id)).toEqual(before);
  });

  it("refuses a report for an older attempt after the job was handed to another node", async () => {
    const { job, node } = await running();
    await t.store.nodes.deregister({ id: node.id, actor: null });
    const other = await register(t.store, "node-2");
    const [second] = await claim(t.store, other.id);
    expect(second?.attempt).toBe(2);
    const stale = await t.store.jobs.report({ nodeId: node.id, reports: [{ jobId: job.id, attempt: 1, status: "completed" }] });
    expect(stale.items[0]?.verdict).toBe("stale_attempt");
    // Attempt 2 was never handed to this node: to it, the job does not exist (API.md §6).
    const wrongNode = await t.store.jobs.report({ nodeId: node.id, reports: [{ jobId: job.id, attempt: 2, status: "completed" }] });
    expect(wrongNode.items[0]?.verdict).toBe("not_found");
    // The same inside a batch, where plain completions are applied together.
    const wrongNodeBatch = await t.store.jobs.report({
      nodeId: node.id,
      reports: [
        { jobId: job.id, attempt: 2, status: "completed" },
        { jobId: "missing", attempt: 1, status: "completed" },
      ],
    });
    expect(wrongNodeBatch.items.map((item) => item.verdict)).toEqual(["not_found", "not_found"]);
    expect((await t.store.jobs.get(job.id))?.status).toBe("running");
    const fresh = await t.store.jobs.report({ nodeId: other.id, reports: [{ jobId: job.id, attempt: 2, status: "completed" }] });
    expect(fresh.items[0]?.verdict).toBe("accepted");
  });

  it("refuses a completion after a failure of the same attempt", async () => {
    const { job, node, attempt } = await running();
    await t.store.jobs.report({ nodeId: node.id, reports: [{ jobId: job.id, attempt, status: "failed", error: { message: "x", retryable: true } }] });
    const late = await t.store.jobs.report({ nodeId: node.id, reports: [{ jobId: job.id, attempt, status: "completed" }] });
    expect(late.items[0]?.verdict).toBe("stale_attempt");
  });

  it("answers not_found for a job that does not exist", async () => {
    const node = await register(t.store);
    const outcome = await t.store.jobs.report({ nodeId: node.id, reports: [{ jobId: "nope", attempt: 1, status: "completed" }] });
    expect(outcome.items[0]?.verdict).toBe("not_found");
  });

  it("schedules a retryable failure with exponential backoff", async () => {
    const { job, node, attempt } = await running({ maxRetries: 3 });
    await t.store.jobs.report({
      nodeId: node.id,
      reports: [{ jobId: job.id, attempt, status: "failed", error: { message: "boom", retryable: true } }],
    });
    const failed = await t.store.jobs.get(job.id);
    expect(failed).toMatchObject({ status: "scheduled", retry_count: 1, node_id: null, error: { message: "boom", retryable: true } });
    // Not before its 5 s backoff (jitter is 0 in these tests).
    t.clock.advanceSeconds(4.9);
    expect((await t.store.jobs.promoteScheduled()).promoted).toBe(0);
    t.clock.advanceSeconds(0.1);
    expect((await t.store.jobs.promoteScheduled()).promoted).toBe(1);
    const [second] = await claim(t.store, node.id);
    expect(second?.attempt).toBe(2);
    await t.store.jobs.report({ nodeId: node.id, reports: [{ jobId: job.id, attempt: 2, status: "failed", error: { message: "again", retryable: true } }] });
    const twice = await t.store.jobs.get(job.id);
    expect(twice).toMatchObject({ status: "scheduled", retry_count: 2 });
    // The second backoff is twice the first.
    t.clock.advanceSeconds(9.9);
    expect((await t.store.jobs.promoteScheduled()).promoted).toBe(0);
    t.clock.advanceSeconds(0.1);
    expect((await t.store.jobs.promoteScheduled()).promoted).toBe(1);
    const events = await t.store.jobs.events({ jobId: job.id, limit: 50 });
    expect(events.items.filter((e) => e.event_type === "job.retry_scheduled").map((e) => [e.attempt, e.details.error])).toEqual([
      [1, { message: "boom", retryable: true }],
      [2, { message: "again", retryable: true }],
    ]);
  });

  it("fails a job past max_retries with failure_reason max_retries_exceeded", async () => {
    const { job, node, attempt } = await running({ maxRetries: 0 });
    await t.store.jobs.report({ nodeId: node.id, reports: [{ jobId: job.id, attempt, status: "failed", error: { message: "no", retryable: true } }] });
    expect(await t.store.jobs.get(job.id)).toMatchObject({ status: "failed", failure_reason: "max_retries_exceeded", retry_count: 0 });
  });

  it("does not retry an error marked retryable: false", async () => {
    const { job, node, attempt } = await running({ maxRetries: 5 });
    await t.store.jobs.report({ nodeId: node.id, reports: [{ jobId: job.id, attempt, status: "failed", error: { message: "bad input", code: "EINVAL", retryable: false } }] });
    expect(await t.store.jobs.get(job.id)).toMatchObject({
      status: "failed",
      failure_reason: "non_retryable",
      error: { message: "bad input", code: "EINVAL", retryable: false },
    });
  });

  it("reports many results in one call, each judged on its own", async () => {
    const node = await register(t.store);
    const a = await submit(t.store);
    const b = await submit(t.store);
    await claim(t.store, node.id);
    const outcome = await t.store.jobs.report({
      nodeId: node.id,
      reports: [
        { jobId: a.id, attempt: 1, status: "completed", result: 1 },
        { jobId: b.id, attempt: 7, status: "completed" },
        { jobId: "missing", attempt: 1, status: "completed" },
        { jobId: a.id, attempt: 1, status: "completed", result: 1 },
      ],
    });
    // Attempt 7 of b was never handed out: as unknown as a job that does not exist.
    expect(outcome.items.map((i) => i.verdict)).toEqual(["accepted", "not_found", "not_found", "duplicate"]);
  });

  it("judges a second report of an attempt in the same batch by the first, and keeps a null result as null", async () => {
    const node = await register(t.store, "node-twice", [], 4);
    const [a, b] = [await submit(t.store), await submit(t.store, { maxRetries: 3 })];
    if (!a || !b) throw new Error("not submitted");
    await claim(t.store, node.id, 2);
    const outcome = await t.store.jobs.report({
      nodeId: node.id,
      reports: [
        { jobId: a.id, attempt: 1, status: "completed", result: null },
        { jobId: a.id, attempt: 1, status: "failed", error: { message: "too late", retryable: true } },
        { jobId: b.id, attempt: 1, status: "failed", error: { message: "retry me", retryable: true } },
        { jobId: a.id, attempt: 1, status: "completed", result: "other" },
        { jobId: b.id, attempt: 1, status: "failed", error: { message: "retry me", retryable: true } },
      ],
    });
    expect(outcome.items.map((i) => i.verdict)).toEqual(["accepted", "stale_attempt", "accepted", "duplicate", "duplicate"]);
    const jobA = await t.store.jobs.get(a.id);
    expect([jobA?.status, jobA?.result, jobA?.error]).toEqual(["completed", null, null]);
    expect((await t.store.jobs.get(b.id))?.status).toBe("scheduled");
    const [attemptA] = await t.store.jobs.attempts(a.id);
    expect([attemptA?.outcome, attemptA?.error]).toEqual(["completed", null]);
    const [attemptB] = await t.store.jobs.attempts(b.id);
    expect([attemptB?.outcome, attemptB?.error?.message]).toEqual(["failed", "retry me"]);
  });

  it("applies a batch of distinct reports together with the same effects as one by one", async () => {
    const node = await register(t.store, "node-1", [], 10);
    const [a, b, c, d, e] = [await submit(t.store), await submit(t.store), await submit(t.store), await submit(t.store), await submit(t.store)];
    if (!a || !b || !c || !d || !e) throw new Error("not submitted");
    const child = await submit(t.store, { dependsOn: [a.id, b.id] });
    expect(await claim(t.store, node.id)).toHaveLength(5);
    await t.store.jobs.cancel({ id: d.id, actor: null }); // running: cancel requested
    const outcome = await t.store.jobs.report({
      nodeId: node.id,
      reports: [
        { jobId: a.id, attempt: 1, status: "completed", result: { n: "a" } },
        { jobId: c.id, attempt: 1, status: "failed", error: { message: "boom", retryable: false } },
        { jobId: b.id, attempt: 1, status: "completed", result: [1, 2] },
        { jobId: d.id, attempt: 1, status: "completed", result: "late" },
        { jobId: e.id, attempt: 2, status: "completed" },
      ],
    });
    expect(outcome.items.map((i) => [i.jobId, i.verdict, i.verdict === "accepted" ? i.effect?.status : null])).toEqual([
      [a.id, "accepted", "completed"],
      [c.id, "accepted", "failed"],
      [b.id, "accepted", "completed"],
      [d.id, "accepted", "canceled"],
      [e.id, "not_found", null],
    ]);
    const jobA = await t.store.jobs.get(a.id);
    const jobB = await t.store.jobs.get(b.id);
    expect([jobA?.status, jobA?.result, jobA?.finished_at !== null]).toEqual(["completed", { n: "a" }, true]);
    expect([jobB?.status, jobB?.result]).toEqual(["completed", [1, 2]]);
    expect((await t.store.jobs.get(c.id))?.status).toBe("failed");
    expect((await t.store.jobs.get(d.id))?.status).toBe("canceled");
    expect((await t.store.jobs.get(e.id))?.status).toBe("running");
    // The child waited on a and b: both completed in this batch, so it is ready.
    expect((await t.store.jobs.get(child.id))?.status).toBe("pending");
    const eventsOf = async (id: string) => (await t.store.jobs.events({ jobId: id, limit: 10 })).items.map((entry) => entry.event_type);
    expect(await eventsOf(a.id)).toEqual(["job.submitted", "job.assigned", "job.completed"]);
    expect(await eventsOf(b.id)).toEqual(["job.submitted", "job.assigned", "job.completed"]);
    // Found as a dependent of both a and b in one read, it is released once.
    expect(await eventsOf(child.id)).toEqual(["job.submitted", "job.released"]);
    const completed = (await t.store.jobs.events({ jobId: a.id, limit: 10 })).items.at(-1);
    expect(completed?.details).toEqual({ node_id: node.id, attempt: 1 });
    // The same batch again: each is now a duplicate (or still stale), and nothing changes.
    const again = await t.store.jobs.report({
      nodeId: node.id,
      reports: [
        { jobId: a.id, attempt: 1, status: "completed", result: { n: "other" } },
        { jobId: b.id, attempt: 1, status: "completed" },
      ],
    });
    expect(again.items.map((i) => i.verdict)).toEqual(["duplicate", "duplicate"]);
    expect((await t.store.jobs.get(a.id))?.result).toEqual({ n: "a" });
  });
});

describe.skipIf(!dialects.some((dialect) => dialect.name === "postgres"))("TRUNCATE jobs (postgres)", () => {
  const postgres = dialects.find((dialect) => dialect.name === "postgres") as (typeof dialects)[number];
  let t: TestStore;
  beforeEach(async () => {
    t = await postgres.open();
  });
  afterEach(async () => {
    await t.store.close();
    removeTempDirs();
  });

  it("takes the jobs' attempts, the clients' unfinished counts and fair share's lines with the jobs", async () => {
    await t.store.jobs.setFairShare("clients");
    const node = await register(t.store, "n", [], 1);
    const ran = await submit(t.store);
    await submit(t.store, { dependsOn: [ran.id] });
    await submit(t.store, { clientId: "client-b" });
    expect(await claim(t.store, node.id, 1)).toHaveLength(1);
    expect(await t.query("SELECT count(*)::integer AS n FROM job_attempts")).toEqual([{ n: 1 }]);
    await t.query("TRUNCATE jobs CASCADE");
    expect(await t.query("SELECT count(*)::integer AS n FROM job_attempts")).toEqual([{ n: 0 }]);
    expect(await t.query("SELECT client_id, unfinished FROM client_job_counts WHERE unfinished <> 0")).toEqual([]);
    expect(await t.query("SELECT client_id FROM fair_queue UNION ALL SELECT client_id FROM fair_clients WHERE running <> 0")).toEqual([]);
    // A client at its quota before may submit again, and the new job is claimed through fair share's lines.
    expect((await t.store.jobs.submit([jobParams()], { maxUnfinished: 1 })).ok).toBe(true);
    expect(await claim(t.store, (await register(t.store, "m", [], 1)).id, 1)).toHaveLength(1);
  });
});
