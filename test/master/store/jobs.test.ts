// Submitting and acting on jobs: batches, idempotency, dependencies, delays, cancel, retry, priority, lists.
import Database from "better-sqlite3";
import { describe, expect, it } from "vitest";
import { jobSchema } from "../../../master/http/schemas.js";
import type { Committed } from "../../../master/store/types.js";
import { claim, dialects, jobParams, register, submit, type TestStore, storePerTest } from "../../helpers/store.js";

describe.each(dialects)("jobs ($name)", (dialect) => {
  let t: TestStore;
  storePerTest(dialect, (opened) => (t = opened));

  it("says which of many jobs are final or gone, in one query (waiters after missed commits)", async () => {
    const open = await submit(t.store);
    const canceled = await submit(t.store);
    await t.store.jobs.cancel({ id: canceled.id, actor: null });
    const many = Array.from({ length: 1200 }, (_, i) => `job_missing_${i}`);
    expect(await t.store.jobs.finalAmong([open.id, canceled.id, ...many])).toEqual([canceled.id, ...many]);
    expect(await t.store.jobs.finalAmong([])).toEqual([]);
  });

  it("counts the jobs in every state in the queue's stats", async () => {
    const node = await register(t.store, "n1", [], 10);
    const ran = [await submit(t.store), await submit(t.store), await submit(t.store)];
    await claim(t.store, node.id, 3);
    await submit(t.store, { runAt: new Date(t.clock.now().getTime() + 60_000) });
    await submit(t.store, { dependsOn: [ran[0]?.id ?? ""] });
    const canceled = await submit(t.store);
    await t.store.jobs.cancel({ id: canceled.id, actor: null });
    await submit(t.store);
    await submit(t.store);
    await t.store.jobs.report({
      nodeId: node.id,
      reports: [
        { jobId: ran[1]?.id ?? "", attempt: 1, status: "completed", result: 1 },
        { jobId: ran[2]?.id ?? "", attempt: 1, status: "failed", error: { message: "no", retryable: false } },
      ],
    });
    expect((await t.store.jobs.stats()).jobs).toEqual({ blocked: 1, scheduled: 1, pending: 2, running: 1, completed: 1, failed: 1, canceled: 1 });
  });

  describe("submit", () => {
    it("stores a job as the API shows it", async () => {
      const job = await submit(t.store, {
        type: "transcode",
        payload: { input: "a.mp4" },
        priority: "live",
        requires: ["gpu", "cuda", "gpu"],
        tags: { customer: "acme" },
      });
      expect(job).toMatchObject({
        type: "transcode",
        payload: { input: "a.mp4" },
        client_id: "client-a",
        priority: "live",
        effective_priority: "live",
        status: "pending",
        attempt: 0,
        retry_count: 0,
        requires: ["cuda", "gpu"],
        tags: { customer: "acme" },
        cancel_requested: false,
        created_at: "2026-01-01T10:00:00.000Z",
      });
      expect(await t.store.jobs.get(job.id)).toEqual(job);
    });

    it("answers each job of a batch, whatever its shape, with every field of the API and as it reads back", async () => {
      // The submit's answer is built from the row it writes (not read back): a field left out
      // of either, or written other than answered, shows here.
      const gone = await submit(t.store);
      await t.store.jobs.cancel({ id: gone.id, actor: null });
      const parent = await submit(t.store);
      const later = new Date(Date.parse("2026-01-01T10:00:00.000Z") + 3_600_000);
      const outcome = await t.store.jobs.submit(
        [
          jobParams({ type: "plain" }),
          jobParams({ type: "later", runAt: later, priority: "high", maxRetries: 0, timeoutS: 1.5, tags: { a: "1", b: "2" } }),
          jobParams({ type: "child", dependsOn: [parent.id, parent.id], requires: ["z", "a"], idempotencyKey: "key-1", payload: null }),
          jobParams({ type: "orphan", dependsOn: [gone.id], priority: "low", payload: [1, "two", { three: 3 }] }),
        ],
        { batch: true },
      );
      if (!outcome.ok) throw new Error(`submit failed: ${outcome.reason}`);
      const jobs = outcome.items.map((item) => item.job);
      expect(jobs.map((job) => job.status)).toEqual(["pending", "scheduled", "blocked", "failed"]);
      expect(jobs[1]).toMatchObject({ run_at: later.toISOString(), priority: "high", max_retries: 0, timeout_s: 1.5, tags: { a: "1", b: "2" } });
      expect(jobs[2]).toMatchObject({ depends_on: [parent.id], requires: ["a", "z"], idempotency_key: "key-1", payload: null });
      expect(jobs[3]).toMatchObject({ failure_reason: "dependency_failed", payload: [1, "two", { three: 3 }], finished_at: jobs[3]?.created_at });
      const fields = Object.keys(jobSchema.shape).sort();
      for (const job of jobs) {
        expect(Object.keys(job).sort()).toEqual(fields);
        expect(await t.store.jobs.get(job.id)).toEqual(job);
      }
    });

    it("turns a payload into JSON once, where the submit is made: the store writes that text, single or in a batch", async () => {
      let made = 0;
      const payload = {
        toJSON: () => {
          made += 1;
          return { n: 1 };
        },
      };
      const single = await submit(t.store, { payload });
      const batch = await t.store.jobs.submit([jobParams({ payload }), jobParams({ payload })]);
      if (!batch.ok) throw new Error("not submitted");
      expect(made).toBe(3);
      for (const id of [single.id, ...batch.items.map((item) => item.job.id)]) expect((await t.store.jobs.get(id))?.payload).toEqual({ n: 1 });
    });

    it("stores a payload of JSON null as null, single or in a batch", async () => {
      const single = await submit(t.store, { payload: null });
      const batch = await t.store.jobs.submit([jobParams({ payload: null }), jobParams({ payload: { n: 1 } })]);
      if (!batch.ok) throw new Error("not submitted");
      expect([single.payload, ...batch.items.map((item) => item.job.payload)]).toEqual([null, null, { n: 1 }]);
      const ids = [single.id, ...batch.items.map((item) => item.job.id)];
      expect(await Promise.all(ids.map(async (id) => (await t.store.jobs.get(id))?.payload))).toEqual([null, null, { n: 1 }]);
    });

    // SQLite's own column types (typeof) and JSON text are what this compares.
    it.runIf(dialect.name === "sqlite")("stores the jobs of a batch exactly as it stores a single job, in the batch's order", async () => {
      const dependency = await submit(t.store);
      const params = jobParams({
        payload: { text: "é \"quoted\" ☃", n: 1.5, list: [null, true] },
        priority: "low",
        timeoutS: 2.5,
        maxRetries: 0,
        requires: ["gpu"],
        dependsOn: [dependency.id],
        tags: { team: "a" },
        idempotencyKey: "single",
      });
      const single = await t.store.jobs.submit([params]);
      const batch = await t.store.jobs.submit([
        { ...params, idempotencyKey: "batch-1" },
        { ...params, idempotencyKey: "batch-2", runAt: new Date("2030-01-01T00:00:00.000Z") },
      ]);
      if (!single.ok || !batch.ok) throw new Error("not submitted");
      const db = new Database(t.path, { readonly: true });
      try {
        const columns = (db.prepare("SELECT name FROM pragma_table_info('jobs')").all() as { name: string }[])
          .map((column) => column.name)
          .filter((name) => !["seq", "id", "idempotency_key", "run_at", "ready_at", "status", "aging_at"].includes(name));
        const rowOf = (id: string) =>
          db.prepare(`SELECT ${columns.map((c) => `typeof(${c}) AS "${c}:type", ${c}`).join(", ")} FROM jobs WHERE id = ?`).get(id);
        const [first, second] = batch.items.map((item) => item.job.id);
        expect(rowOf(first ?? "")).toEqual(rowOf(single.items[0]?.job.id ?? ""));
        expect(rowOf(second ?? "")).toEqual(rowOf(single.items[0]?.job.id ?? ""));
        const order = db.prepare("SELECT id FROM jobs ORDER BY seq").all().map((row) => (row as { id: string }).id);
        expect(order.slice(-2)).toEqual([first, second]);
        const links = db.prepare("SELECT job_id FROM job_dependencies WHERE depends_on_id = ?").all(dependency.id);
        expect(links).toHaveLength(3);
        // The single job has its own audit row; the batch one row for both (API.md §7).
        const audited = db.prepare("SELECT event_type, entity_id, details FROM audit_log WHERE event_type LIKE '%submitted' ORDER BY id").all();
        expect(audited.slice(-2)).toEqual([
          { event_type: "job.submitted", entity_id: single.items[0]?.job.id, details: JSON.stringify({ type: "echo", priority: "low", status: "blocked" }) },
          { event_type: "jobs.submitted", entity_id: first, details: JSON.stringify({ count: 2, ids: [first, second] }) },
        ]);
      } finally {
        db.close();
      }
      expect(batch.items[1]?.job.status).toBe("blocked");
      // Each job's history still starts with its submission, taken from the job itself.
      expect((await t.store.jobs.events({ jobId: batch.items[1]?.job.id ?? "", limit: 5 })).items).toEqual([
        { event_type: "job.submitted", created_at: batch.items[1]?.job.created_at, client_id: batch.items[1]?.job.client_id, details: { type: "echo", priority: "low" } },
      ]);
    });

    it("audits a batch as one jobs.submitted row, a batch of one too", async () => {
      const outcome = await t.store.jobs.submit([jobParams()], { batch: true });
      if (!outcome.ok) throw new Error("refused");
      const rows = await t.store.audit.list({ limit: 5, eventType: "jobs.submitted" });
      expect(rows.items.map((row) => row.details)).toEqual([{ count: 1, ids: [outcome.items[0]?.job.id] }]);
      expect((await t.store.audit.list({ limit: 5, eventType: "job.submitted" })).items).toEqual([]);
    });

    it("answers the same idempotency key from the same client with the existing job", async () => {
      const first = await t.store.jobs.submit([jobParams({ idempotencyKey: "order-42" })]);
      const again = await t.store.jobs.submit([jobParams({ idempotencyKey: "order-42", payload: { other: true } })]);
      if (!first.ok || !again.ok) throw new Error("submit failed");
      expect(again.items[0]?.created).toBe(false);
      expect(again.items[0]?.job.id).toBe(first.items[0]?.job.id);
      const otherClient = await t.store.jobs.submit([jobParams({ idempotencyKey: "order-42", clientId: "client-b" })]);
      if (!otherClient.ok) throw new Error("submit failed");
      expect(otherClient.items[0]?.created).toBe(true);
      expect((await t.store.jobs.list({ limit: 10 })).items).toHaveLength(2);
    });

    it("stores nothing of a batch with one unknown dependency", async () => {
      const outcome = await t.store.jobs.submit([jobParams(), jobParams(), jobParams({ dependsOn: ["missing"] })]);
      expect(outcome).toEqual({ ok: false, reason: "unknown_dependency", index: 2, dependency: "missing" });
      expect((await t.store.jobs.list({ limit: 10 })).items).toHaveLength(0);
      expect((await t.store.audit.list({ limit: 10 })).items).toHaveLength(0);
    });

    it("refuses another client's job as a dependency", async () => {
      const foreign = await submit(t.store, { clientId: "client-b" });
      const outcome = await t.store.jobs.submit([jobParams({ dependsOn: [foreign.id] })]);
      expect(outcome.ok).toBe(false);
    });

    it("keeps a job with run_at in the future scheduled until then", async () => {
      const runAt = new Date(t.clock.now().getTime() + 30_000);
      const job = await submit(t.store, { runAt });
      expect(job).toMatchObject({ status: "scheduled", run_at: runAt.toISOString() });
      const node = await register(t.store);
      expect(await claim(t.store, node.id)).toEqual([]);
      expect((await t.store.jobs.promoteScheduled()).nextAt).toEqual(runAt);
      t.clock.advanceSeconds(30);
      expect((await t.store.jobs.promoteScheduled()).promoted).toBe(1);
      expect((await claim(t.store, node.id)).map((j) => j.id)).toEqual([job.id]);
    });
  });

  describe("dependencies", () => {
    it("blocks a job until all its dependencies completed, then releases it", async () => {
      const a = await submit(t.store);
      const b = await submit(t.store);
      const child = await submit(t.store, { dependsOn: [a.id, b.id] });
      expect(child.status).toBe("blocked");
      expect(child.depends_on).toEqual([a.id, b.id]);
      const node = await register(t.store);
      expect((await claim(t.store, node.id)).map((j) => j.id)).toEqual([a.id, b.id]);
      await t.store.jobs.report({ nodeId: node.id, reports: [{ jobId: a.id, attempt: 1, status: "completed" }] });
      expect((await t.store.jobs.get(child.id))?.status).toBe("blocked");
      await t.store.jobs.report({ nodeId: node.id, reports: [{ jobId: b.id, attempt: 1, status: "completed" }] });
      expect((await t.store.jobs.get(child.id))?.status).toBe("pending");
      const events = await t.store.jobs.events({ jobId: child.id, limit: 10 });
      expect(events.items.map((e) => e.event_type)).toContain("job.released");
    });

    it("releases a dependent whose run_at is still ahead as scheduled, not pending", async () => {
      const root = await submit(t.store);
      const runAt = new Date(t.clock.now().getTime() + 60_000);
      const child = await submit(t.store, { dependsOn: [root.id], runAt });
      const node = await register(t.store);
      await claim(t.store, node.id);
      const heard: Committed[] = [];
      t.store.onCommitted((change) => heard.push(change));
      await t.store.jobs.report({ nodeId: node.id, reports: [{ jobId: root.id, attempt: 1, status: "completed" }] });
      // The promoter is told of the scheduled dependent (the slot the root freed is what is claimable).
      expect(heard).toEqual([{ claimable: true, scheduled: true, schedules: false, finished: [root.id] }]);
      expect(await t.store.jobs.get(child.id)).toMatchObject({ status: "scheduled", run_at: runAt.toISOString() });
      expect((await t.store.jobs.promoteScheduled()).nextAt).toEqual(runAt);
    });

    it("fails the whole chain with dependency_failed when a dependency fails", async () => {
      const root = await submit(t.store, { maxRetries: 0 });
      const child = await submit(t.store, { dependsOn: [root.id] });
      const grandchild = await submit(t.store, { dependsOn: [child.id] });
      const node = await register(t.store);
      await claim(t.store, node.id);
      await t.store.jobs.report({ nodeId: node.id, reports: [{ jobId: root.id, attempt: 1, status: "failed", error: { message: "x", retryable: true } }] });
      for (const id of [child.id, grandchild.id]) {
        expect(await t.store.jobs.get(id)).toMatchObject({ status: "failed", failure_reason: "dependency_failed" });
      }
    });

    it("resumes the chain when its failed root is retried", async () => {
      const root = await submit(t.store, { maxRetries: 0 });
      const child = await submit(t.store, { dependsOn: [root.id] });
      const node = await register(t.store);
      await claim(t.store, node.id);
      await t.store.jobs.report({ nodeId: node.id, reports: [{ jobId: root.id, attempt: 1, status: "failed", error: { message: "x", retryable: true } }] });
      expect((await t.store.jobs.retry({ id: child.id, actor: "client-a" })).ok).toBe(false);
      const retried = await t.store.jobs.retry({ id: root.id, actor: "client-a" });
      expect(retried.ok && retried.job.status).toBe("pending");
      expect((await t.store.jobs.get(child.id))?.status).toBe("blocked");
      await claim(t.store, node.id);
      await t.store.jobs.report({ nodeId: node.id, reports: [{ jobId: root.id, attempt: 2, status: "completed" }] });
      expect((await t.store.jobs.get(child.id))?.status).toBe("pending");
    });

    it("creates a job whose dependency already failed as failed", async () => {
      const root = await submit(t.store);
      await t.store.jobs.cancel({ id: root.id, actor: null });
      const child = await submit(t.store, { dependsOn: [root.id] });
      expect(child).toMatchObject({ status: "failed", failure_reason: "dependency_failed" });
    });

    it("starts a job whose dependencies are all complete at once", async () => {
      const root = await submit(t.store);
      const node = await register(t.store);
      await claim(t.store, node.id);
      await t.store.jobs.report({ nodeId: node.id, reports: [{ jobId: root.id, attempt: 1, status: "completed" }] });
      expect((await submit(t.store, { dependsOn: [root.id] })).status).toBe("pending");
    });
  });

  describe("cancel", () => {
    it("cancels a pending job at once and its dependents fail", async () => {
      const job = await submit(t.store);
      const child = await submit(t.store, { dependsOn: [job.id] });
      const outcome = await t.store.jobs.cancel({ id: job.id, actor: "client-a" });
      expect(outcome.ok && outcome.job.status).toBe("canceled");
      expect((await t.store.jobs.get(child.id))?.failure_reason).toBe("dependency_failed");
    });

    it("asks the node to stop a running job, which ends canceled when the node reports", async () => {
      const job = await submit(t.store);
      const node = await register(t.store);
      await claim(t.store, node.id);
      const outcome = await t.store.jobs.cancel({ id: job.id, actor: "client-a" });
      expect(outcome.ok && outcome.job).toMatchObject({ status: "running", cancel_requested: true });
      const beat = await t.store.nodes.heartbeat({ nodeId: node.id, running: [{ jobId: job.id, attempt: 1 }] });
      expect(beat.ok && beat.cancel).toEqual([{ job_id: job.id, attempt: 1, reason: "canceled" }]);
      await t.store.jobs.report({ nodeId: node.id, reports: [{ jobId: job.id, attempt: 1, status: "failed", error: { message: "killed", retryable: true } }] });
      expect((await t.store.jobs.get(job.id))?.status).toBe("canceled");
    });

    it("answers conflict for a job that already finished", async () => {
      const job = await submit(t.store);
      await t.store.jobs.cancel({ id: job.id, actor: null });
      expect(await t.store.jobs.cancel({ id: job.id, actor: null })).toEqual({ ok: false, reason: "conflict", status: "canceled" });
      expect(await t.store.jobs.cancel({ id: "missing", actor: null })).toEqual({ ok: false, reason: "not_found" });
    });
  });

  describe("retry and priority", () => {
    it("puts a failed job back with retry_count 0 and the same id", async () => {
      const job = await submit(t.store, { maxRetries: 0 });
      const node = await register(t.store);
      await claim(t.store, node.id);
      await t.store.jobs.report({ nodeId: node.id, reports: [{ jobId: job.id, attempt: 1, status: "failed", error: { message: "x", retryable: true } }] });
      const heard: Committed[] = [];
      t.store.onCommitted((change) => heard.push(change));
      const outcome = await t.store.jobs.retry({ id: job.id, actor: "client-a" });
      expect(outcome.ok && outcome.job).toMatchObject({ id: job.id, status: "pending", retry_count: 0, error: null, failure_reason: null, attempt: 1 });
      // Ready again: waiting claims are woken by its commit.
      expect(heard).toEqual([{ claimable: true, scheduled: false, schedules: false, finished: [] }]);
      expect((await t.store.jobs.retry({ id: job.id, actor: null })).ok).toBe(false);
    });

    it("puts a canceled job whose run_at is still ahead back as pending, and a node can claim it now", async () => {
      const job = await submit(t.store, { runAt: new Date(t.clock.now().getTime() + 3_600_000) });
      expect(job.status).toBe("scheduled");
      expect((await t.store.jobs.cancel({ id: job.id, actor: "client-a" })).ok).toBe(true);
      const outcome = await t.store.jobs.retry({ id: job.id, actor: "client-a" });
      expect(outcome.ok && outcome.job).toMatchObject({ id: job.id, status: "pending", retry_count: 0 });
      const node = await register(t.store);
      expect((await claim(t.store, node.id)).map((j) => j.id)).toEqual([job.id]);
    });

    it("re-prioritises a waiting job and refuses a running one", async () => {
      const a = await submit(t.store, { priority: "low" });
      const b = await submit(t.store, { priority: "medium" });
      const changed = await t.store.jobs.setPriority({ id: a.id, priority: "high", actor: "client-a" });
      expect(changed.ok && changed.job).toMatchObject({ priority: "high", effective_priority: "high" });
      const node = await register(t.store);
      const [first] = await claim(t.store, node.id, 1);
      expect(first?.id).toBe(a.id);
      expect(await t.store.jobs.setPriority({ id: a.id, priority: "low", actor: null })).toMatchObject({ ok: false, reason: "conflict" });
      expect(b.status).toBe("pending");
    });
  });

  describe("lists", () => {
    it("pages newest first with a cursor and filters by status, type, priority and tag", async () => {
      const ids = [];
      for (let i = 0; i < 7; i++) {
        ids.push((await submit(t.store, { type: i % 2 ? "odd" : "even", priority: i < 3 ? "high" : "low", tags: { n: String(i) } })).id);
      }
      const first = await t.store.jobs.list({ limit: 3 });
      expect(first.items.map((j) => j.id)).toEqual(ids.slice(4).reverse());
      const second = await t.store.jobs.list({ limit: 3, cursor: first.next_cursor ?? undefined });
      const third = await t.store.jobs.list({ limit: 3, cursor: second.next_cursor ?? undefined });
      expect([...second.items, ...third.items].map((j) => j.id)).toEqual(ids.slice(0, 4).reverse());
      expect(third.next_cursor).toBeNull();
      expect((await t.store.jobs.list({ limit: 50, type: "odd" })).items).toHaveLength(3);
      expect((await t.store.jobs.list({ limit: 50, priority: "high" })).items).toHaveLength(3);
      expect((await t.store.jobs.list({ limit: 50, tag: { key: "n", value: "4" } })).items.map((j) => j.id)).toEqual([ids[4]]);
      expect((await t.store.jobs.list({ limit: 50, status: "running" })).items).toHaveLength(0);
      expect((await t.store.jobs.list({ limit: 50, clientId: "client-b" })).items).toHaveLength(0);
    });

    it("refuses a cursor it did not hand out", async () => {
      await expect(t.store.jobs.list({ limit: 3, cursor: "bm9wZQ" })).rejects.toThrow(/cursor/);
    });
  });
});
