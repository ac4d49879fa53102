// The store's bulk actions (cancelMatching, retryMatching) on every dialect: the one-job
// rules for each job a filter matches, oldest first, at most max, in one transaction with
// one audit row, and a commit signal that wakes what waits for their jobs.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { BulkActionParams, Committed, JobFilter } from "../../../master/store/types.js";
import { claim, dialects, register, submit, type TestStore } from "../../helpers/store.js";
import { removeTempDirs } from "../../helpers/temp.js";

const bulk = (filter: JobFilter, extra: Partial<BulkActionParams> = {}): BulkActionParams => ({ filter, max: 1000, actor: "admin", shownFilter: { ...filter }, ...extra });

describe.each(dialects)("bulk actions ($name)", (dialect) => {
  let t: TestStore;
  let heard: Committed[];
  beforeEach(async () => {
    t = await dialect.open();
    heard = [];
    t.store.onCommitted((change) => heard.push(change));
  });
  afterEach(async () => {
    await t.store.close();
    removeTempDirs();
  });

  const statusOf = async (id: string) => (await t.store.jobs.get(id))?.status;

  it("cancels the oldest max jobs the filter matches, tells their end, and writes one audit row", async () => {
    const jobs = [];
    for (let i = 0; i < 3; i++) jobs.push(await submit(t.store, { type: "a" }));
    const other = await submit(t.store, { type: "a", clientId: "client-b" });
    heard = [];
    const outcome = await t.store.jobs.cancelMatching(bulk({ type: "a", clientId: "client-a" }, { max: 2 }));
    expect(outcome).toEqual({ matched: 2, changed: 2, more: true });
    expect(await Promise.all(jobs.map((job) => statusOf(job.id)))).toEqual(["canceled", "canceled", "pending"]);
    expect(await statusOf(other.id)).toBe("pending");
    expect(heard).toEqual([{ claimable: false, scheduled: false, schedules: false, finished: [jobs[0]?.id, jobs[1]?.id] }]);
    const audit = await t.store.audit.list({ limit: 10, eventType: "jobs.canceled" });
    expect(audit.items).toHaveLength(1);
    expect(audit.items[0]).toMatchObject({ client_id: "admin", details: { filter: { type: "a", clientId: "client-a" }, matched: 2, changed: 2, more: true, ids: [jobs[0]?.id, jobs[1]?.id] } });
  });

  it("fails the dependents of a job it cancels, and counts one already failed by an earlier one as unchanged", async () => {
    const root = await submit(t.store, { type: "chain" });
    const child = await submit(t.store, { type: "chain", dependsOn: [root.id] });
    const outcome = await t.store.jobs.cancelMatching(bulk({ type: "chain" }));
    expect(outcome).toEqual({ matched: 2, changed: 1, more: false });
    expect(await t.store.jobs.get(child.id)).toMatchObject({ status: "failed", failure_reason: "dependency_failed" });
  });

  it("asks a running job to stop without ending it, and leaves one asked already as it is", async () => {
    const job = await submit(t.store, { type: "long" });
    const node = await register(t.store);
    await claim(t.store, node.id);
    expect(await t.store.jobs.cancelMatching(bulk({ type: "long" }))).toEqual({ matched: 1, changed: 1, more: false });
    expect(await t.store.jobs.get(job.id)).toMatchObject({ status: "running", cancel_requested: true });
    const beat = await t.store.nodes.heartbeat({ nodeId: node.id, running: [] });
    expect(beat).toMatchObject({ ok: true, cancel: [{ job_id: job.id, attempt: 1, reason: "canceled" }] });
    expect(await t.store.jobs.cancelMatching(bulk({ type: "long" }))).toEqual({ matched: 1, changed: 0, more: false });
  });

  it("retries failed and canceled jobs to pending, and tells a waiting claim to look", async () => {
    const jobs = [await submit(t.store, { type: "r" }), await submit(t.store, { type: "r" })];
    const node = await register(t.store);
    const claimed = await claim(t.store, node.id);
    await t.store.jobs.report({ nodeId: node.id, reports: claimed.map((item) => ({ jobId: item.id, attempt: item.attempt, status: "failed" as const, error: { message: "x", retryable: false } })) });
    const listed = await t.store.jobs.list({ limit: 10, failureReason: "non_retryable" });
    expect(listed.items.map((job) => job.id).sort()).toEqual(jobs.map((job) => job.id).sort());
    heard = [];
    expect(await t.store.jobs.retryMatching(bulk({ type: "r", failureReason: "non_retryable" }))).toEqual({ matched: 2, changed: 2, more: false });
    expect(heard).toEqual([{ claimable: true, scheduled: false, schedules: false, finished: [] }]);
    expect(await t.store.jobs.get(jobs[0]?.id ?? "")).toMatchObject({ status: "pending", retry_count: 0, failure_reason: null, error: null });
    // Pending now: matched again, changed no more.
    expect(await t.store.jobs.retryMatching(bulk({ type: "r" }))).toEqual({ matched: 2, changed: 0, more: false });
  });

  it("reads each job's dependencies at its turn: one retried earlier in the same action counts", async () => {
    const root = await submit(t.store, { type: "pair" });
    const child = await submit(t.store, { type: "pair", dependsOn: [root.id] });
    // The child is canceled while it waits; then its root fails.
    await t.store.jobs.cancel({ id: child.id, actor: "admin" });
    const node = await register(t.store);
    const [taken] = await claim(t.store, node.id);
    await t.store.jobs.report({ nodeId: node.id, reports: [{ jobId: root.id, attempt: taken?.attempt ?? 1, status: "failed", error: { message: "x", retryable: false } }] });
    expect(await t.store.jobs.retryMatching(bulk({ type: "pair" }))).toEqual({ matched: 2, changed: 2, more: false });
    expect(await statusOf(root.id)).toBe("pending");
    expect(await statusOf(child.id)).toBe("blocked");
  });

  /** Fail `job` (claimed by a fresh node) with a non-retryable error. */
  async function failJob(id: string, name: string) {
    const node = await register(t.store, name);
    const [taken] = await claim(t.store, node.id);
    expect(taken?.id).toBe(id);
    await t.store.jobs.report({ nodeId: node.id, reports: [{ jobId: id, attempt: taken?.attempt ?? 1, status: "failed", error: { message: "x", retryable: false } }] });
  }

  it("fails a job taken that an earlier one's cancel reaches through a blocked job not taken, and counts it unchanged", async () => {
    const root = await submit(t.store, { type: "x" });
    const middle = await submit(t.store, { type: "y", dependsOn: [root.id] });
    const leaf = await submit(t.store, { type: "x", dependsOn: [middle.id] });
    const loose = await submit(t.store, { type: "x" });
    expect(await t.store.jobs.cancelMatching(bulk({ type: "x" }))).toEqual({ matched: 3, changed: 2, more: false });
    expect(await statusOf(root.id)).toBe("canceled");
    expect(await statusOf(loose.id)).toBe("canceled");
    for (const [job, dependency] of [[middle, root], [leaf, middle]] as const) {
      expect(await t.store.jobs.get(job.id)).toMatchObject({ status: "failed", failure_reason: "dependency_failed" });
      const events = (await t.store.jobs.events({ jobId: job.id, limit: 10 })).items;
      expect(events.map((event) => [event.event_type, event.details])).toContainEqual(["job.failed", { failure_reason: "dependency_failed", dependency: dependency.id }]);
    }
    const audit = await t.store.audit.list({ limit: 10, eventType: "jobs.canceled" });
    expect(audit.items[0]?.details).toMatchObject({ ids: [root.id, loose.id] });
  });

  it("retries a failed chain once: its dependents wait again, and those taken too are not retried a second time", async () => {
    const root = await submit(t.store, { type: "c" });
    const child = await submit(t.store, { type: "c", dependsOn: [root.id] });
    const grandchild = await submit(t.store, { type: "c", dependsOn: [child.id] });
    const sibling = await submit(t.store, { type: "d", dependsOn: [root.id] });
    await failJob(root.id, "n-root");
    expect((await t.store.jobs.list({ limit: 10, failureReason: "dependency_failed" })).items).toHaveLength(3);
    heard = [];
    expect(await t.store.jobs.retryMatching(bulk({ type: "c" }))).toEqual({ matched: 3, changed: 1, more: false });
    expect(heard).toEqual([{ claimable: true, scheduled: false, schedules: false, finished: [] }]);
    expect(await statusOf(root.id)).toBe("pending");
    for (const job of [child, grandchild, sibling]) expect(await t.store.jobs.get(job.id)).toMatchObject({ status: "blocked", failure_reason: null, finished_at: null });
    const retried = await t.store.audit.list({ limit: 10, eventType: "job.retried" });
    expect(retried.items.map((item) => [item.entity_id, item.details]).sort()).toEqual(
      [
        [child.id, { status: "blocked", because: root.id }],
        [grandchild.id, { status: "blocked", because: child.id }],
        [sibling.id, { status: "blocked", because: root.id }],
      ].sort(),
    );
    const bulkRow = await t.store.audit.list({ limit: 10, eventType: "jobs.retried" });
    expect(bulkRow.items[0]?.details).toMatchObject({ matched: 3, changed: 1, ids: [root.id] });
  });

  it.each(["bulk", "one-job"])("reopens a failed diamond as a one-job retry walks it, the last reached first (%s retry)", async (how) => {
    const root = await submit(t.store, { type: "top" });
    const left = await submit(t.store, { dependsOn: [root.id] });
    const right = await submit(t.store, { dependsOn: [root.id] });
    const bottom = await submit(t.store, { dependsOn: [left.id, right.id] });
    await failJob(root.id, "n-top");
    if (how === "bulk") expect(await t.store.jobs.retryMatching(bulk({ type: "top" }))).toMatchObject({ changed: 1 });
    else expect(await t.store.jobs.retry({ id: root.id, actor: "admin" })).toMatchObject({ ok: true });
    const retried = await t.store.audit.list({ limit: 10, eventType: "job.retried" });
    const because = new Map(retried.items.map((item) => [item.entity_id, (item.details as { because?: string }).because]));
    expect([because.get(left.id), because.get(right.id), because.get(bottom.id)]).toEqual([root.id, root.id, right.id]);
  });

  it("leaves failed a dependent whose other dependency is still canceled, and reopens it once that one is retried too", async () => {
    const root = await submit(t.store, { type: "e" });
    const other = await submit(t.store, { type: "f" });
    const both = await submit(t.store, { type: "g", dependsOn: [root.id, other.id] });
    await t.store.jobs.cancel({ id: other.id, actor: "admin" });
    expect(await statusOf(both.id)).toBe("failed");
    await failJob(root.id, "n-e");
    expect(await t.store.jobs.retryMatching(bulk({ type: "e" }))).toEqual({ matched: 1, changed: 1, more: false });
    expect(await t.store.jobs.get(both.id)).toMatchObject({ status: "failed", failure_reason: "dependency_failed" });
    // Retrying other reopens both: its dependencies are root (pending) and other (retried now).
    expect(await t.store.jobs.retryMatching(bulk({ status: "canceled" }))).toEqual({ matched: 1, changed: 1, more: false });
    expect(await statusOf(both.id)).toBe("blocked");
  });

  it("changes nothing, tells nothing and writes no audit row on a dry run", async () => {
    const job = await submit(t.store, { type: "dry", tags: { k: "v" } });
    heard = [];
    expect(await t.store.jobs.cancelMatching(bulk({ tag: { key: "k", value: "v" } }, { dryRun: true }))).toEqual({ matched: 1, changed: 1, more: false });
    expect(await statusOf(job.id)).toBe("pending");
    expect(heard).toEqual([]);
    expect((await t.store.audit.list({ limit: 10, eventType: "jobs.canceled" })).items).toHaveLength(0);
  });

  it("filters by creation time, after and before", async () => {
    const old = await submit(t.store, { type: "t" });
    t.clock.advance(10_000);
    const young = await submit(t.store, { type: "t" });
    const between = new Date(t.clock.now().getTime() - 5_000);
    expect(await t.store.jobs.cancelMatching(bulk({ type: "t", createdAfter: between }))).toMatchObject({ matched: 1, changed: 1 });
    expect(await statusOf(young.id)).toBe("canceled");
    expect(await t.store.jobs.cancelMatching(bulk({ type: "t", createdBefore: between }))).toMatchObject({ matched: 1, changed: 1 });
    expect(await statusOf(old.id)).toBe("canceled");
  });
});
