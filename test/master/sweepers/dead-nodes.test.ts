// The dead-node sweep: silent nodes declared dead and their jobs taken back, and leases their live nodes stopped renewing.
import pg from "pg";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { DEAD_NODE_JOB_BATCH } from "../../../master/store/postgres/nodes.js";
import { DEAD_NODE_BATCH, DeadNodeSweeper, EXPIRED_LEASE_BATCH } from "../../../master/sweepers/dead-nodes.js";
import { claim, claimableWakes, dialects, jobParams, register, submit, type TestStore, storePerTest } from "../../helpers/store.js";

const silent = pino({ level: "silent" });

describe.each(dialects)("dead-node sweep ($name)", (dialect) => {
  let t: TestStore;
  let wakes: { count: number };
  storePerTest(
    dialect,
    (opened) => {
      t = opened;
      wakes = claimableWakes(t.store);
    },
    { nodeTimeoutS: 60, stallGraceS: 30 },
  );

  /** Time enough for a node that last beat now to be declared dead: the timeout, and the lag of last_heartbeat. */
  function silence() {
    t.clock.advance(60_000 + t.policy.heartbeatWriteMs + 1000);
  }

  function deadNodeSweeper(startedAt = new Date(0)) {
    return new DeadNodeSweeper({
      store: t.store,
      clock: t.clock,
      log: silent,
      nodeTimeoutMs: 60_000,
      intervalMs: 10_000,
      reportingSince: () => startedAt,
    });
  }

  it("marks a silent node dead and re-queues its jobs at their old place", async () => {
    const job = await submit(t.store, { priority: "high" });
    const later = await submit(t.store, { priority: "high" });
    const node = await register(t.store, "node-1", [], 1);
    const alive = await register(t.store, "node-2", [], 1);
    await claim(t.store, node.id);
    t.clock.advanceSeconds(45);
    await t.store.nodes.heartbeat({ nodeId: alive.id, running: [] });
    t.clock.advance(16_000 + t.policy.heartbeatWriteMs);
    wakes.count = 0;
    const sweep = await deadNodeSweeper().runOnce();
    expect(sweep.dead.map((d) => d.nodeId)).toEqual([node.id]);
    expect(sweep.dead[0]?.jobs).toEqual([{ jobId: job.id, nodeId: node.id, outcome: "requeued" }]);
    expect(wakes.count).toBe(1);
    expect(await t.store.jobs.get(job.id)).toMatchObject({ status: "pending", retry_count: 1, node_id: null });
    expect((await t.store.nodes.get(alive.id))?.status).toBe("online");
    // Still ahead of the job submitted after it.
    expect((await claim(t.store, alive.id)).map((j) => j.id)).toEqual([job.id]);
    expect(later.status).toBe("pending");
  });

  it("re-queues a dead node's jobs together, each with a fresh aging time and the reason its lease ended", async () => {
    const jobs = [await submit(t.store), await submit(t.store), await submit(t.store)];
    const node = await register(t.store, "node-1", [], 3);
    expect(await claim(t.store, node.id)).toHaveLength(3);
    silence();
    const sweep = await deadNodeSweeper().runOnce();
    expect(sweep.dead[0]?.jobs.map((job) => [job.jobId, job.outcome])).toEqual(jobs.map((job) => [job.id, "requeued"]));
    const rows = await t.query("SELECT status, retry_count, node_id, stall_at, lease_expires_at, ready_at, aging_at, lease_end_reason FROM jobs ORDER BY seq");
    const now = t.clock.now();
    expect(rows).toEqual(
      jobs.map(() => ({
        status: "pending",
        retry_count: 1,
        node_id: null,
        stall_at: null,
        lease_expires_at: null,
        ready_at: now.toISOString(),
        aging_at: new Date(now.getTime() + t.policy.agingMs).toISOString(),
        lease_end_reason: "node_dead",
      })),
    );
    for (const job of jobs) {
      const events = (await t.store.jobs.events({ jobId: job.id, limit: 10 })).items.map((entry) => entry.event_type);
      expect(events).toEqual(["job.submitted", "job.assigned", "job.reassigned"]);
    }
  });

  it("fails a job whose node died once retries are spent", async () => {
    const job = await submit(t.store, { maxRetries: 0 });
    const node = await register(t.store);
    await claim(t.store, node.id);
    silence();
    await deadNodeSweeper().runOnce();
    expect(await t.store.jobs.get(job.id)).toMatchObject({ status: "failed", failure_reason: "max_retries_exceeded" });
  });

  it("cancels, not re-queues, a job whose cancel was asked when its node died", async () => {
    const job = await submit(t.store);
    const node = await register(t.store);
    await claim(t.store, node.id);
    await t.store.jobs.cancel({ id: job.id, actor: null });
    silence();
    await deadNodeSweeper().runOnce();
    expect((await t.store.jobs.get(job.id))?.status).toBe("canceled");
  });

  it("takes back every job of a node that ran more than one batch of them, with one node.dead row and one job.reassigned row each", async () => {
    const count = DEAD_NODE_JOB_BATCH + 5;
    await t.store.jobs.submit(Array.from({ length: count }, () => jobParams()));
    const node = await register(t.store, "big", [], count);
    expect(await claim(t.store, node.id, count)).toHaveLength(count);
    silence();
    const sweep = await deadNodeSweeper().runOnce();
    expect(sweep.dead.map((dead) => [dead.nodeId, dead.jobs.length])).toEqual([[node.id, count]]);
    expect(new Set(sweep.dead[0]?.jobs.map((job) => job.outcome))).toEqual(new Set(["requeued"]));
    expect(await t.query("SELECT status, count(*) AS n FROM jobs GROUP BY status")).toEqual([{ status: "pending", n: count }]);
    expect(await t.query("SELECT outcome, count(*) AS n FROM job_attempts GROUP BY outcome")).toEqual([{ outcome: "reassigned", n: count }]);
    const audit = await t.query("SELECT event_type, count(*) AS n FROM audit_log WHERE event_type IN ('node.dead', 'job.reassigned') GROUP BY event_type ORDER BY event_type");
    expect(audit).toEqual([
      { event_type: "job.reassigned", n: count },
      { event_type: "node.dead", n: 1 },
    ]);
    expect((await t.store.audit.list({ limit: 1, eventType: "node.dead" })).items[0]?.details).toMatchObject({ jobs: count });
  });

  it("fails the jobs waiting on one that its node's death failed, and says why", async () => {
    const root = await submit(t.store, { maxRetries: 0 });
    const child = await submit(t.store, { dependsOn: [root.id] });
    const grandchild = await submit(t.store, { dependsOn: [child.id] });
    const node = await register(t.store);
    await claim(t.store, node.id);
    silence();
    await deadNodeSweeper().runOnce();
    expect(await t.store.jobs.get(root.id)).toMatchObject({ status: "failed", failure_reason: "max_retries_exceeded" });
    for (const [job, dependency] of [[child, root], [grandchild, child]] as const) {
      expect(await t.store.jobs.get(job.id)).toMatchObject({ status: "failed", failure_reason: "dependency_failed" });
      const events = (await t.store.jobs.events({ jobId: job.id, limit: 10 })).items;
      expect(events.map((event) => [event.event_type, event.details])).toContainEqual(["job.failed", { failure_reason: "dependency_failed", dependency: dependency.id }]);
    }
    const failed = await t.store.audit.list({ limit: 10, eventType: "job.failed" });
    expect(failed.items.find((item) => item.entity_id === root.id)?.details).toMatchObject({ node_id: node.id, attempt: 1, failure_reason: "max_retries_exceeded", reason: "node_dead" });
  });

  it("declares no node dead until the master has run for one node timeout", async () => {
    const node = await register(t.store);
    t.clock.advanceSeconds(3600);
    const justStarted = deadNodeSweeper(t.clock.now());
    t.clock.advanceSeconds(59);
    expect((await justStarted.runOnce()).skipped).toBe(true);
    expect((await t.store.nodes.get(node.id))?.status).toBe("online");
    t.clock.advanceSeconds(2);
    expect((await justStarted.runOnce()).dead).toHaveLength(1);
  });

  it("declares no node dead that beat within the node timeout, though its last_heartbeat lags behind", async () => {
    const node = await register(t.store);
    t.clock.advance(t.policy.heartbeatWriteMs - 1000);
    await t.store.nodes.heartbeat({ nodeId: node.id, running: [] }); // not written: within heartbeatWriteMs
    t.clock.advanceSeconds(59);
    expect((await deadNodeSweeper().runOnce()).dead).toEqual([]);
    expect((await t.store.nodes.get(node.id))?.status).toBe("online");
    t.clock.advance(t.policy.heartbeatWriteMs);
    expect((await deadNodeSweeper().runOnce()).dead.map((dead) => dead.nodeId)).toEqual([node.id]);
  });

  it("keeps the leases of a node that beats more often than last_heartbeat is rewritten", async () => {
    const job = await submit(t.store, { timeoutS: 3600 });
    const node = await register(t.store);
    await claim(t.store, node.id);
    const every = t.policy.heartbeatWriteMs / 2;
    for (let at = 0; at < 3 * 60_000; at += every) {
      t.clock.advance(every);
      const beat = await t.store.nodes.heartbeat({ nodeId: node.id, running: [{ jobId: job.id, attempt: 1 }] });
      expect(beat).toEqual({ ok: true, status: "online", cancel: [] });
      await deadNodeSweeper().runOnce();
    }
    expect((await t.store.nodes.get(node.id))?.status).toBe("online");
    expect(await t.store.jobs.get(job.id)).toMatchObject({ status: "running", attempt: 1 });
  });

  it("takes back a job its live node stopped listing once the lease runs out", async () => {
    const job = await submit(t.store);
    const node = await register(t.store);
    await claim(t.store, node.id);
    for (let i = 0; i < 4; i++) {
      t.clock.advanceSeconds(20);
      await t.store.nodes.heartbeat({ nodeId: node.id, running: [] });
    }
    const sweep = await deadNodeSweeper().runOnce();
    expect(sweep.dead).toEqual([]);
    expect(sweep.expired).toEqual([{ jobId: job.id, nodeId: node.id, outcome: "requeued" }]);
    const beat = await t.store.nodes.heartbeat({ nodeId: node.id, running: [{ jobId: job.id, attempt: 1 }] });
    expect(beat.ok && beat.cancel[0]?.reason).toBe("reassigned");
  });

  it("sweeps more dead nodes and lost leases than one batch holds, then stops", async () => {
    const nodes = DEAD_NODE_BATCH + 5;
    for (let i = 0; i < nodes; i++) {
      await submit(t.store);
      await claim(t.store, (await register(t.store, `dies-${i}`)).id, 1);
    }
    const survivor = await register(t.store, "survivor", [], EXPIRED_LEASE_BATCH + 5);
    await t.store.jobs.submit(Array.from({ length: EXPIRED_LEASE_BATCH + 5 }, () => jobParams()));
    await claim(t.store, survivor.id, EXPIRED_LEASE_BATCH + 5);
    for (let i = 0; i < 4; i++) {
      t.clock.advanceSeconds(20);
      await t.store.nodes.heartbeat({ nodeId: survivor.id, running: [] });
    }
    const sweep = await deadNodeSweeper().runOnce();
    expect(sweep.dead).toHaveLength(nodes);
    expect(sweep.expired).toHaveLength(EXPIRED_LEASE_BATCH + 5);
    expect(await deadNodeSweeper().runOnce()).toEqual({ dead: [], expired: [], skipped: false });
  });

  it("keeps the lease of a job its node keeps listing", async () => {
    const job = await submit(t.store, { timeoutS: 3600 });
    const node = await register(t.store);
    await claim(t.store, node.id);
    for (let i = 0; i < 10; i++) {
      t.clock.advanceSeconds(20);
      await t.store.nodes.heartbeat({ nodeId: node.id, running: [{ jobId: job.id, attempt: 1 }] });
      await deadNodeSweeper().runOnce();
    }
    expect((await t.store.jobs.get(job.id))?.status).toBe("running");
  });

  it("keeps every lease of a node that lists several jobs (one listed twice), and only those", async () => {
    const jobs = [await submit(t.store, { timeoutS: 3600 }), await submit(t.store, { timeoutS: 3600 }), await submit(t.store, { timeoutS: 3600 })];
    const node = await register(t.store);
    await claim(t.store, node.id);
    const [first, second, unlisted] = jobs.map((job) => job.id);
    for (let i = 0; i < 10; i++) {
      t.clock.advanceSeconds(20);
      const beat = await t.store.nodes.heartbeat({
        nodeId: node.id,
        running: [
          { jobId: first ?? "", attempt: 1, progress: i },
          { jobId: second ?? "", attempt: 1 },
          { jobId: first ?? "", attempt: 1, progress: i },
        ],
      });
      expect(beat).toEqual({ ok: true, status: "online", cancel: [] });
      await deadNodeSweeper().runOnce();
    }
    expect((await t.store.jobs.get(first ?? ""))?.status).toBe("running");
    expect((await t.store.jobs.get(first ?? ""))?.progress).toBe(9);
    expect((await t.store.jobs.get(second ?? ""))?.status).toBe("running");
    // The job the node stopped listing lost its lease and went back to the queue.
    expect((await t.store.jobs.get(unlisted ?? ""))?.status).toBe("pending");
  });
});

describe.skipIf(!dialects.some((dialect) => dialect.name === "postgres"))("dead-node sweep cut short (postgres)", () => {
  const postgres = dialects.find((dialect) => dialect.name === "postgres") as (typeof dialects)[number];
  let t: TestStore;
  storePerTest(postgres, (opened) => (t = opened), { nodeTimeoutS: 60 });

  const sweeper = () =>
    new DeadNodeSweeper({ store: t.store, clock: t.clock, log: silent, nodeTimeoutMs: 60_000, intervalMs: 10_000, reportingSince: () => new Date(0) });

  it("re-queues the jobs a dead node still holds (a sweep stopped between batches) at the next sweep, without a second node.dead row", async () => {
    const jobs = [await submit(t.store), await submit(t.store)];
    const node = await register(t.store, "half-swept", [], 2);
    await claim(t.store, node.id);
    // What a sweep leaves when its master stops after the node's transaction: dead, its jobs still running.
    await t.query("UPDATE nodes SET status = 'dead' WHERE id = ?", [node.id]);
    const sweep = await sweeper().runOnce();
    expect(sweep.dead.map((dead) => dead.nodeId)).toEqual([node.id]);
    expect(sweep.dead[0]?.jobs).toEqual(jobs.map((job) => ({ jobId: job.id, nodeId: node.id, outcome: "requeued" })));
    expect(await t.query("SELECT status, retry_count, lease_end_reason FROM jobs ORDER BY seq")).toEqual(
      jobs.map(() => ({ status: "pending", retry_count: 1, lease_end_reason: "node_dead" })),
    );
    expect(await t.query("SELECT count(*)::integer AS n FROM audit_log WHERE event_type = 'node.dead'")).toEqual([{ n: 0 }]);
    expect((await sweeper().runOnce()).dead).toEqual([]);
  });

  /** Runs `first` once, before the first statement (on any of pg's connections) whose text matches `pattern`. */
  function beforeStatement(pattern: RegExp, first: () => Promise<void>): () => void {
    const query = pg.Client.prototype.query as (...args: unknown[]) => unknown;
    let ran = false;
    pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
      const config = args[0];
      const text = typeof config === "string" ? config : ((config as { text?: string } | undefined)?.text ?? "");
      if (ran || !pattern.test(text)) return query.apply(this, args);
      ran = true;
      return first().then(() => query.apply(this, args));
    } as typeof pg.Client.prototype.query;
    return () => {
      pg.Client.prototype.query = query as typeof pg.Client.prototype.query;
    };
  }

  it("among more dead nodes than a batch, takes back the jobs only those that still hold some have, and leaves the others be", async () => {
    const old: string[] = [];
    for (let i = 0; i < DEAD_NODE_BATCH + 20; i++) old.push((await register(t.store, `gone-${i}`)).id);
    const long = new Date(t.clock.now().getTime() - 86_400_000).toISOString();
    await t.query("UPDATE nodes SET status = 'dead', last_heartbeat = ?, updated_at = ?", [long, long]);
    const job = await submit(t.store);
    const holder = await register(t.store, "half-swept", [], 1);
    await claim(t.store, holder.id);
    // Dead, and its job still running: a sweep cut short. Its heartbeat is the newest of the dead.
    await t.query("UPDATE nodes SET status = 'dead' WHERE id = ?", [holder.id]);
    const silent = await register(t.store, "silent", [], 1);
    const later = await submit(t.store);
    await claim(t.store, silent.id);
    const auditBefore = await t.query("SELECT count(*)::integer AS n FROM audit_log");
    t.clock.advance(60_000 + t.policy.heartbeatWriteMs + 1000);
    const sweep = await sweeper().runOnce();
    expect(sweep.dead.map((dead) => [dead.nodeId, dead.earlier === true, dead.jobs.map((rescued) => rescued.jobId)])).toEqual([
      [holder.id, true, [job.id]],
      [silent.id, false, [later.id]],
    ]);
    expect(await t.query("SELECT status, count(*)::integer AS n FROM jobs GROUP BY status")).toEqual([{ status: "pending", n: 2 }]);
    // The old dead nodes are as they were, and no audit row names them.
    expect(await t.query("SELECT count(*)::integer AS n FROM nodes WHERE status = 'dead' AND updated_at = ?", [long])).toEqual([{ n: old.length }]);
    const written = await t.query("SELECT event_type, entity_id FROM audit_log ORDER BY id OFFSET ?", [auditBefore[0]?.n]);
    expect(written.filter((row) => old.includes(String(row.entity_id)))).toEqual([]);
    expect((await sweeper().runOnce()).dead).toEqual([]);
  });

  /**
   * A node that claimed one job and then went silent, swept with `between` run once its mark
   * has committed, before the first batch of its jobs is read.
   */
  async function sweptWith(name: string, between: (node: { id: string }, job: { id: string }, attempt: number) => Promise<void>) {
    const job = await submit(t.store);
    const node = await register(t.store, name, [], 1);
    const [taken] = await claim(t.store, node.id);
    t.clock.advance(60_000 + t.policy.heartbeatWriteMs + 1000);
    const restore = beforeStatement(/SELECT id FROM nodes WHERE id = ANY\([\s\S]*status = 'dead' ORDER BY id FOR UPDATE/, () => between(node, job, taken?.attempt ?? 1));
    try {
      return { job, node, sweep: await sweeper().runOnce() };
    } finally {
      restore();
    }
  }

  it("leaves to a node revived between its mark and a batch of its jobs the jobs that batch would take back", async () => {
    const { job, node, sweep } = await sweptWith("revived", async (node, job, attempt) => {
      expect((await t.query("SELECT status FROM nodes WHERE id = ?", [node.id]))[0]?.status).toBe("dead");
      const beat = await t.store.nodes.heartbeat({ nodeId: node.id, running: [{ jobId: job.id, attempt }] });
      expect(beat).toEqual({ ok: true, status: "online", cancel: [] });
    });
    expect(sweep.dead.map((dead) => [dead.nodeId, dead.jobs])).toEqual([[node.id, []]]);
    expect(await t.store.jobs.get(job.id)).toMatchObject({ status: "running", node_id: node.id, attempt: 1 });
    expect((await t.store.nodes.get(node.id))?.status).toBe("online");
  });

  it("accepts a result its dead node sends before the job is taken back: completed once, not re-queued", async () => {
    const { job, node, sweep } = await sweptWith("late", async (node, job, attempt) => {
      const outcome = await t.store.jobs.report({ nodeId: node.id, reports: [{ jobId: job.id, attempt, status: "completed", result: { ok: 1 } }] });
      expect(outcome.items.map((item) => item.verdict)).toEqual(["accepted"]);
    });
    expect(sweep.dead.map((dead) => [dead.nodeId, dead.jobs])).toEqual([[node.id, []]]);
    expect(await t.store.jobs.get(job.id)).toMatchObject({ status: "completed", result: { ok: 1 }, attempt: 1, retry_count: 0 });
    expect(await t.query("SELECT attempt, outcome FROM job_attempts WHERE job_id = ?", [job.id])).toEqual([{ attempt: 1, outcome: "completed" }]);
    const events = (await t.store.jobs.events({ jobId: job.id, limit: 10 })).items.map((event) => event.event_type);
    expect(events).not.toContain("job.reassigned");
    // Nothing left for a later sweep either.
    expect(await sweeper().runOnce()).toEqual({ dead: [], expired: [], skipped: false });
    expect((await t.store.jobs.get(job.id))?.status).toBe("completed");
  });

  it("leaves a dead node that came back with the jobs not yet taken back", async () => {
    const job = await submit(t.store);
    const node = await register(t.store, "back", [], 1);
    const [taken] = await claim(t.store, node.id);
    await t.query("UPDATE nodes SET status = 'dead' WHERE id = ?", [node.id]);
    expect(await t.store.nodes.heartbeat({ nodeId: node.id, running: [{ jobId: job.id, attempt: taken?.attempt ?? 1 }] })).toMatchObject({ ok: true, cancel: [] });
    expect((await sweeper().runOnce()).dead).toEqual([]);
    expect(await t.store.jobs.get(job.id)).toMatchObject({ status: "running", node_id: node.id });
  });
});
