// Nodes: registration, heartbeats and leases, and the sweepers that take work back.
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { DEAD_NODE_BATCH, DeadNodeSweeper, EXPIRED_LEASE_BATCH } from "../../../master/sweepers/dead-nodes.js";
import { STALLED_JOB_BATCH, StalledJobSweeper } from "../../../master/sweepers/stalled-jobs.js";
import { claim, dialects, jobParams, register, submit, type TestStore } from "../../helpers/store.js";
import { removeTempDirs } from "../../helpers/temp.js";

const silent = pino({ level: "silent" });

describe.each(dialects)("nodes ($name)", (dialect) => {
  let t: TestStore;
  let woken: number;
  beforeEach(async () => {
    t = await dialect.open({ nodeTimeoutS: 60, stallGraceS: 30 });
    woken = 0;
    // Commits that may give a waiting claim work: what wakes the dispatcher.
    t.store.onCommitted((change) => {
      if (change.claimable) woken += 1;
    });
  });
  afterEach(async () => {
    await t.store.close();
    removeTempDirs();
  });

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

  describe("register", () => {
    it("answers the same name from the same client with the same node, back online", async () => {
      const first = await t.store.nodes.register({ clientId: "w", name: "n1", labels: ["b", "a"], capacity: 2, types: ["resize", "echo"], version: "1", hardware: { cpus: 8 } });
      expect(first.created).toBe(true);
      expect(first.node).toMatchObject({ name: "n1", labels: ["a", "b"], capacity: 2, types: ["echo", "resize"], status: "online", running: 0, hardware: { cpus: 8 } });
      await t.store.nodes.drain({ id: first.node.id, actor: "admin" });
      const again = await t.store.nodes.register({ clientId: "w", name: "n1", labels: ["gpu"], capacity: 4, types: null, version: "2", hardware: {} });
      expect(again.created).toBe(false);
      expect(again.node).toMatchObject({ id: first.node.id, status: "online", labels: ["gpu"], capacity: 4, types: null, version: "2" });
      const otherClient = await t.store.nodes.register({ clientId: "v", name: "n1", labels: [], capacity: 1, types: null, version: null, hardware: {} });
      expect(otherClient.node.id).not.toBe(first.node.id);
    });
  });

  describe("heartbeat", () => {
    it("renews the node and answers an empty cancel list for its own jobs", async () => {
      const job = await submit(t.store);
      const node = await register(t.store);
      await claim(t.store, node.id);
      t.clock.advanceSeconds(30);
      const beat = await t.store.nodes.heartbeat({ nodeId: node.id, running: [{ jobId: job.id, attempt: 1, progress: 40, message: "half way" }] });
      expect(beat).toEqual({ ok: true, status: "online", cancel: [] });
      expect((await t.store.nodes.get(node.id))?.last_heartbeat).toBe(t.clock.now().toISOString());
      expect(await t.store.jobs.get(job.id)).toMatchObject({ progress: 40, progress_message: "half way" });
    });

    it("writes at most one job.progress audit row a minute per job", async () => {
      const job = await submit(t.store);
      const node = await register(t.store);
      await claim(t.store, node.id);
      for (let p = 10; p <= 50; p += 10) {
        await t.store.nodes.heartbeat({ nodeId: node.id, running: [{ jobId: job.id, attempt: 1, progress: p }] });
        t.clock.advanceSeconds(10);
      }
      t.clock.advanceSeconds(20);
      await t.store.nodes.heartbeat({ nodeId: node.id, running: [{ jobId: job.id, attempt: 1, progress: 90 }] });
      const events = await t.store.jobs.events({ jobId: job.id, limit: 50 });
      const progress = events.items.filter((e) => e.event_type === "job.progress").map((e) => e.details.progress);
      expect(progress).toEqual([10, 90]);
      expect((await t.store.jobs.get(job.id))?.progress).toBe(90);
    });

    it("tells a node to stop jobs that are unknown, reassigned or canceled", async () => {
      const node = await register(t.store);
      const other = await register(t.store, "node-2");
      // Handed to this node, stalled, then handed to the other one.
      const moved = await submit(t.store, { timeoutS: 1 });
      await claim(t.store, node.id);
      t.clock.advanceSeconds(2 + 30 + 1);
      await t.store.jobs.rescueStalled({ limit: 10 });
      await claim(t.store, other.id);
      // Only ever the other node's: to this one it is as unknown as a job that does not exist.
      const elsewhere = await submit(t.store);
      await claim(t.store, other.id);
      const canceled = await submit(t.store);
      await claim(t.store, node.id);
      await t.store.jobs.cancel({ id: canceled.id, actor: null });
      const beat = await t.store.nodes.heartbeat({
        nodeId: node.id,
        running: [
          { jobId: "ghost", attempt: 1 },
          { jobId: moved.id, attempt: 1 },
          { jobId: elsewhere.id, attempt: 1 },
          { jobId: canceled.id, attempt: 1 },
        ],
      });
      expect(beat.ok && beat.cancel).toEqual([
        { job_id: "ghost", attempt: 1, reason: "unknown" },
        { job_id: moved.id, attempt: 1, reason: "reassigned" },
        { job_id: elsewhere.id, attempt: 1, reason: "unknown" },
        { job_id: canceled.id, attempt: 1, reason: "canceled" },
      ]);
    });

    it("tells a node about a cancel for a job it did not list yet", async () => {
      const job = await submit(t.store);
      const node = await register(t.store);
      await claim(t.store, node.id);
      await t.store.jobs.cancel({ id: job.id, actor: null });
      const beat = await t.store.nodes.heartbeat({ nodeId: node.id, running: [] });
      expect(beat.ok && beat.cancel).toEqual([{ job_id: job.id, attempt: 1, reason: "canceled" }]);
    });

    it("rewrites last_heartbeat only once the stored one is older than heartbeatWriteMs", async () => {
      const node = await register(t.store);
      const registered = t.clock.now().toISOString();
      t.clock.advance(t.policy.heartbeatWriteMs - 1000);
      expect(await t.store.nodes.heartbeat({ nodeId: node.id, running: [] })).toEqual({ ok: true, status: "online", cancel: [] });
      expect((await t.store.nodes.get(node.id))?.last_heartbeat).toBe(registered);
      t.clock.advance(2000);
      await t.store.nodes.heartbeat({ nodeId: node.id, running: [] });
      expect((await t.store.nodes.get(node.id))?.last_heartbeat).toBe(t.clock.now().toISOString());
    });

    it("records progress even while last_heartbeat needs no rewrite", async () => {
      const job = await submit(t.store);
      const node = await register(t.store);
      await claim(t.store, node.id);
      t.clock.advanceSeconds(1);
      await t.store.nodes.heartbeat({ nodeId: node.id, running: [{ jobId: job.id, attempt: 1, progress: 10, message: "started" }] });
      expect(await t.store.jobs.get(job.id)).toMatchObject({ progress: 10, progress_message: "started" });
    });

    it("renews a lease due for it even while last_heartbeat needs no rewrite", async () => {
      const node = await register(t.store);
      t.clock.advanceSeconds(1);
      const job = await submit(t.store, { timeoutS: 3600 });
      await claim(t.store, node.id);
      const leaseEnd = async () => (await t.query("SELECT lease_expires_at FROM jobs WHERE id = ?", [job.id]))[0]?.lease_expires_at;
      const running = [{ jobId: job.id, attempt: 1 }];
      const claimed = await leaseEnd();
      t.clock.advanceSeconds(29);
      await t.store.nodes.heartbeat({ nodeId: node.id, running }); // last_heartbeat rewritten; the lease has 31 s left
      expect(await leaseEnd()).toBe(claimed);
      t.clock.advanceSeconds(2);
      await t.store.nodes.heartbeat({ nodeId: node.id, running }); // 29 s left: past half its life
      expect(await leaseEnd()).toBe(new Date(t.clock.now().getTime() + t.policy.leaseMs).toISOString());
    });

    it("revives a dead node that heartbeats again", async () => {
      const node = await register(t.store);
      silence();
      await deadNodeSweeper().runOnce();
      expect((await t.store.nodes.get(node.id))?.status).toBe("dead");
      const beat = await t.store.nodes.heartbeat({ nodeId: node.id, running: [] });
      expect(beat.ok && beat.status).toBe("online");
      const audit = await t.store.audit.list({ limit: 10, entityId: node.id });
      expect(audit.items.map((e) => e.event_type)).toEqual(["node.recovered", "node.dead", "node.registered"]);
    });

    it("answers offline for a node that deregistered", async () => {
      const node = await register(t.store);
      await t.store.nodes.deregister({ id: node.id, actor: null });
      expect(await t.store.nodes.heartbeat({ nodeId: node.id, running: [] })).toEqual({ ok: false, reason: "offline" });
    });
  });

  describe("dead-node sweep", () => {
    it("marks a silent node dead and re-queues its jobs at their old place", async () => {
      const job = await submit(t.store, { priority: "high" });
      const later = await submit(t.store, { priority: "high" });
      const node = await register(t.store, "node-1", [], 1);
      const alive = await register(t.store, "node-2", [], 1);
      await claim(t.store, node.id);
      t.clock.advanceSeconds(45);
      await t.store.nodes.heartbeat({ nodeId: alive.id, running: [] });
      t.clock.advance(16_000 + t.policy.heartbeatWriteMs);
      woken = 0;
      const sweep = await deadNodeSweeper().runOnce();
      expect(sweep.dead.map((d) => d.nodeId)).toEqual([node.id]);
      expect(sweep.dead[0]?.jobs).toEqual([{ jobId: job.id, nodeId: node.id, outcome: "requeued" }]);
      expect(woken).toBe(1);
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

  describe("stalled-job sweep", () => {
    it("re-queues a job running past 2 × timeout_s + grace and tells its node why", async () => {
      const job = await submit(t.store, { timeoutS: 10 });
      const node = await register(t.store);
      await claim(t.store, node.id);
      const sweeper = new StalledJobSweeper({ store: t.store, log: silent, intervalMs: 1000 });
      t.clock.advanceSeconds(49);
      await t.store.nodes.heartbeat({ nodeId: node.id, running: [{ jobId: job.id, attempt: 1 }] });
      woken = 0;
      expect(await sweeper.runOnce()).toEqual([]);
      expect(woken).toBe(0);
      t.clock.advanceSeconds(1);
      expect(await sweeper.runOnce()).toEqual([{ jobId: job.id, nodeId: node.id, outcome: "requeued" }]);
      expect(woken).toBe(1);
      expect(await t.store.jobs.get(job.id)).toMatchObject({ status: "pending", retry_count: 1 });
      const beat = await t.store.nodes.heartbeat({ nodeId: node.id, running: [{ jobId: job.id, attempt: 1 }] });
      expect(beat.ok && beat.cancel).toEqual([{ job_id: job.id, attempt: 1, reason: "stalled" }]);
      const events = await t.store.jobs.events({ jobId: job.id, limit: 10 });
      expect(events.items.map((e) => e.event_type)).toContain("job.stalled");
      const late = await t.store.jobs.report({ nodeId: node.id, reports: [{ jobId: job.id, attempt: 1, status: "completed" }] });
      expect(late.items[0]?.verdict).toBe("stale_attempt");
    });
    it("re-queues more stalled jobs than one batch holds", async () => {
      const count = STALLED_JOB_BATCH + 5;
      await t.store.jobs.submit(Array.from({ length: count }, () => jobParams({ timeoutS: 10 })));
      const node = await register(t.store, "slow", [], count);
      await claim(t.store, node.id, count);
      t.clock.advanceSeconds(51);
      const sweeper = new StalledJobSweeper({ store: t.store, log: silent, intervalMs: 1000 });
      expect(await sweeper.runOnce()).toHaveLength(count);
      expect(await sweeper.runOnce()).toEqual([]);
    });
  });

  describe("deregister, drain, resume", () => {
    it("hands a leaving node's jobs back to the queue", async () => {
      const job = await submit(t.store);
      const node = await register(t.store);
      await claim(t.store, node.id);
      const outcome = await t.store.nodes.deregister({ id: node.id, actor: "worker-a" });
      expect(outcome.ok && outcome.node.status).toBe("offline");
      expect(outcome.ok && outcome.requeued).toBe(1);
      expect(await t.store.jobs.get(job.id)).toMatchObject({ status: "pending", retry_count: 1 });
    });

    it("refuses to drain a dead node and to resume an offline one", async () => {
      const node = await register(t.store);
      silence();
      await deadNodeSweeper().runOnce();
      expect(await t.store.nodes.drain({ id: node.id, actor: null })).toEqual({ ok: false, reason: "conflict", status: "dead" });
      await t.store.nodes.deregister({ id: node.id, actor: null });
      expect(await t.store.nodes.resume({ id: node.id, actor: null })).toMatchObject({ ok: false, reason: "conflict" });
      expect(await t.store.nodes.drain({ id: "nope", actor: null })).toEqual({ ok: false, reason: "not_found" });
    });

    it("lists nodes newest first, filtered by status", async () => {
      const a = await register(t.store, "a");
      const b = await register(t.store, "b");
      await t.store.nodes.drain({ id: a.id, actor: null });
      const page = await t.store.nodes.list({ limit: 1 });
      expect(page.items.map((n) => n.id)).toEqual([b.id]);
      const next = await t.store.nodes.list({ limit: 1, cursor: page.next_cursor ?? undefined });
      expect(next.items.map((n) => n.id)).toEqual([a.id]);
      expect((await t.store.nodes.list({ limit: 10, status: "draining" })).items.map((n) => n.id)).toEqual([a.id]);
    });
  });
});
