// The PostgreSQL store's nodes, schedules, job types and why, each verb against a schema of
// its own (until the store suite runs on every dialect), and what two masters at once do.
import { sql } from "kysely";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { PgContext } from "../../../master/store/postgres/context.js";
import { PostgresDatabase } from "../../../master/store/postgres/database.js";
import { submitJobs } from "../../../master/store/postgres/jobs/submit.js";
import { PostgresNodeStore } from "../../../master/store/postgres/nodes.js";
import { auditOf, claim, jobRow, openScratch, postgresReachable, requestCancel, stall, submit, type PgScratch } from "../../helpers/pg-scratch.js";
import { StorageUnavailableError } from "../../../master/store/types.js";
import { jobParams } from "../../helpers/store.js";

const reachable = await postgresReachable();

describe.skipIf(!reachable)("PostgreSQL nodes", () => {
  let s: PgScratch;
  let ctx: PgContext;
  let nodes: PostgresNodeStore;
  beforeEach(async () => {
    s = await openScratch({ nodeTimeoutS: 60, stallGraceS: 30 });
    ctx = s.ctx;
    nodes = new PostgresNodeStore(ctx);
  });
  afterEach(async () => {
    await s.close();
  });

  const register = async (name = "node-1", capacity = 10, clientId = "worker-a") =>
    (await nodes.register({ clientId, name, labels: [], capacity, types: null, version: "test", hardware: {} })).node;
  /** Time enough for a node that last beat now to be declared dead: the timeout, and the lag of last_heartbeat. */
  const silence = () => s.clock.advance(60_000 + ctx.policy.heartbeatWriteMs + 1000);
  const sweep = (store = nodes) => store.markDead({ cutoff: new Date(s.clock.now().getTime() - 60_000), limit: 100 });

  describe("register", () => {
    it("answers the same name from the same client with the same node, back online", async () => {
      const first = await nodes.register({ clientId: "w", name: "n1", labels: ["b", "a"], capacity: 2, types: ["resize", "echo"], version: "1", hardware: { cpus: 8 } });
      expect(first.created).toBe(true);
      expect(first.node).toMatchObject({ name: "n1", labels: ["a", "b"], capacity: 2, types: ["echo", "resize"], status: "online", running: 0, hardware: { cpus: 8 } });
      await nodes.drain({ id: first.node.id, actor: "admin" });
      const again = await nodes.register({ clientId: "w", name: "n1", labels: ["gpu"], capacity: 4, types: null, version: "2", hardware: {} });
      expect(again.created).toBe(false);
      expect(again.node).toMatchObject({ id: first.node.id, status: "online", labels: ["gpu"], capacity: 4, types: null, version: "2" });
      const otherClient = await nodes.register({ clientId: "v", name: "n1", labels: [], capacity: 1, types: null, version: null, hardware: {} });
      expect(otherClient.node.id).not.toBe(first.node.id);
      expect((await auditOf(ctx, first.node.id)).map((e) => [e.event_type, e.details.from])).toEqual([
        ["node.registered", null],
        ["node.draining", "online"],
        ["node.registered", "draining"],
      ]);
    });

    it("gives one node to the same name registered through two masters at once", async () => {
      const other = new PostgresNodeStore(s.second());
      const params = { clientId: "w", name: "twin", labels: [], capacity: 1, types: null, version: null, hardware: {} };
      const [a, b] = await Promise.all([nodes.register(params), other.register(params)]);
      expect(a.node.id).toBe(b.node.id);
      expect([a.created, b.created].sort()).toEqual([false, true]);
    });
  });

  describe("heartbeat", () => {
    it("renews the node and answers an empty cancel list for its own jobs", async () => {
      const job = await submit(ctx);
      const node = await register();
      await claim(ctx, node.id);
      s.clock.advanceSeconds(30);
      const beat = await nodes.heartbeat({ nodeId: node.id, running: [{ jobId: job.id, attempt: 1, progress: 40, message: "half way" }] });
      expect(beat).toEqual({ ok: true, status: "online", cancel: [] });
      expect((await nodes.get(node.id))?.last_heartbeat).toBe(s.clock.now().toISOString());
      expect(await nodes.get(node.id)).toMatchObject({ running: 1 });
      expect(await jobRow(ctx, job.id)).toMatchObject({ progress: 40, progress_message: "half way" });
    });

    it("writes at most one job.progress audit row a minute per job", async () => {
      const job = await submit(ctx);
      const node = await register();
      await claim(ctx, node.id);
      for (let p = 10; p <= 50; p += 10) {
        await nodes.heartbeat({ nodeId: node.id, running: [{ jobId: job.id, attempt: 1, progress: p }] });
        s.clock.advanceSeconds(10);
      }
      s.clock.advanceSeconds(20);
      await nodes.heartbeat({ nodeId: node.id, running: [{ jobId: job.id, attempt: 1, progress: 90 }] });
      const progress = (await auditOf(ctx, job.id)).filter((e) => e.event_type === "job.progress").map((e) => e.details.progress);
      expect(progress).toEqual([10, 90]);
      expect((await jobRow(ctx, job.id)).progress).toBe(90);
    });

    it("tells a node to stop jobs that are unknown, reassigned, stalled or canceled", async () => {
      const node = await register();
      const other = await register("node-2");
      // Handed to this node, stalled, then handed to the other one.
      const moved = await submit(ctx);
      await claim(ctx, node.id);
      await stall(ctx, moved.id);
      await claim(ctx, other.id);
      // Only ever the other node's: to this one it is as unknown as a job that does not exist.
      const elsewhere = await submit(ctx);
      await claim(ctx, other.id);
      const canceled = await submit(ctx);
      await claim(ctx, node.id);
      await requestCancel(ctx, canceled.id);
      // Stalled and waiting in the queue again.
      const stalled = await submit(ctx);
      await claim(ctx, node.id);
      await stall(ctx, stalled.id);
      const beat = await nodes.heartbeat({
        nodeId: node.id,
        running: [
          { jobId: "ghost", attempt: 1 },
          { jobId: moved.id, attempt: 1 },
          { jobId: stalled.id, attempt: 1 },
          { jobId: elsewhere.id, attempt: 1 },
          { jobId: canceled.id, attempt: 1 },
        ],
      });
      expect(beat.ok && beat.cancel).toEqual([
        { job_id: "ghost", attempt: 1, reason: "unknown" },
        { job_id: moved.id, attempt: 1, reason: "reassigned" },
        { job_id: stalled.id, attempt: 1, reason: "stalled" },
        { job_id: elsewhere.id, attempt: 1, reason: "unknown" },
        { job_id: canceled.id, attempt: 1, reason: "canceled" },
      ]);
    });

    it("tells a node about a cancel for a job it did not list yet", async () => {
      const job = await submit(ctx);
      const node = await register();
      await claim(ctx, node.id);
      await requestCancel(ctx, job.id);
      const beat = await nodes.heartbeat({ nodeId: node.id, running: [] });
      expect(beat.ok && beat.cancel).toEqual([{ job_id: job.id, attempt: 1, reason: "canceled" }]);
    });

    it("rewrites last_heartbeat only once the stored one is older than heartbeatWriteMs", async () => {
      const node = await register();
      const registered = s.clock.now().toISOString();
      s.clock.advance(ctx.policy.heartbeatWriteMs - 1000);
      expect(await nodes.heartbeat({ nodeId: node.id, running: [] })).toEqual({ ok: true, status: "online", cancel: [] });
      expect((await nodes.get(node.id))?.last_heartbeat).toBe(registered);
      s.clock.advance(2000);
      await nodes.heartbeat({ nodeId: node.id, running: [] });
      expect((await nodes.get(node.id))?.last_heartbeat).toBe(s.clock.now().toISOString());
    });

    it("records progress even while last_heartbeat needs no rewrite", async () => {
      const job = await submit(ctx);
      const node = await register();
      await claim(ctx, node.id);
      s.clock.advanceSeconds(1);
      await nodes.heartbeat({ nodeId: node.id, running: [{ jobId: job.id, attempt: 1, progress: 10, message: "started" }] });
      expect(await jobRow(ctx, job.id)).toMatchObject({ progress: 10, progress_message: "started" });
    });

    it("renews a lease due for it even while last_heartbeat needs no rewrite", async () => {
      const node = await register();
      s.clock.advanceSeconds(1);
      const job = await submit(ctx, { timeoutS: 3600 });
      await claim(ctx, node.id);
      const running = [{ jobId: job.id, attempt: 1 }];
      const claimed = (await jobRow(ctx, job.id)).lease_expires_at;
      s.clock.advanceSeconds(29);
      await nodes.heartbeat({ nodeId: node.id, running }); // last_heartbeat rewritten; the lease has 31 s left
      expect((await jobRow(ctx, job.id)).lease_expires_at).toBe(claimed);
      s.clock.advanceSeconds(2);
      await nodes.heartbeat({ nodeId: node.id, running }); // 29 s left: past half its life
      expect((await jobRow(ctx, job.id)).lease_expires_at).toBe(new Date(s.clock.now().getTime() + ctx.policy.leaseMs).toISOString());
    });

    it("revives a dead node that heartbeats again", async () => {
      const node = await register();
      silence();
      await sweep();
      expect((await nodes.get(node.id))?.status).toBe("dead");
      const beat = await nodes.heartbeat({ nodeId: node.id, running: [] });
      expect(beat.ok && beat.status).toBe("online");
      expect((await nodes.get(node.id))?.last_heartbeat).toBe(s.clock.now().toISOString());
      expect((await auditOf(ctx, node.id)).map((e) => e.event_type)).toEqual(["node.registered", "node.dead", "node.recovered"]);
    });

    it("answers draining to a draining node, offline to one that left, not_found to a stranger", async () => {
      const node = await register();
      await nodes.drain({ id: node.id, actor: null });
      expect(await nodes.heartbeat({ nodeId: node.id, running: [] })).toEqual({ ok: true, status: "draining", cancel: [] });
      await nodes.deregister({ id: node.id, actor: null });
      expect(await nodes.heartbeat({ nodeId: node.id, running: [] })).toEqual({ ok: false, reason: "offline" });
      expect(await nodes.heartbeat({ nodeId: "nope", running: [] })).toEqual({ ok: false, reason: "not_found" });
    });
  });

  it("says the database is unavailable, not a driver error, when it cannot be reached", async () => {
    const gone = new PostgresDatabase({ url: "postgres://postgres@127.0.0.1:1/postgres" });
    try {
      const store = new PostgresNodeStore({ ...ctx, db: gone });
      await expect(store.heartbeat({ nodeId: "n", running: [] })).rejects.toBeInstanceOf(StorageUnavailableError);
      await expect(store.get("n")).rejects.toBeInstanceOf(StorageUnavailableError);
    } finally {
      await gone.close();
    }
  });

  describe("dead-node sweep", () => {
    it("marks a silent node dead and re-queues its jobs at their old place, with a fresh aging time", async () => {
      const job = await submit(ctx);
      const later = await submit(ctx);
      const node = await register("node-1", 1);
      const alive = await register("node-2", 1);
      await claim(ctx, node.id);
      s.clock.advanceSeconds(45);
      await nodes.heartbeat({ nodeId: alive.id, running: [] });
      s.clock.advance(16_000 + ctx.policy.heartbeatWriteMs);
      await s.settle();
      s.heard.length = 0;
      const dead = await sweep();
      expect(dead.map((d) => [d.nodeId, d.jobs])).toEqual([[node.id, [{ jobId: job.id, nodeId: node.id, outcome: "requeued" }]]]);
      await s.settle();
      expect(s.heard.filter((change) => change.claimable)).toHaveLength(1);
      const now = s.clock.now();
      expect(await jobRow(ctx, job.id)).toMatchObject({
        status: "pending",
        retry_count: 1,
        node_id: null,
        stall_at: null,
        lease_expires_at: null,
        ready_at: now.toISOString(),
        aging_at: new Date(now.getTime() + ctx.policy.agingMs).toISOString(),
        lease_end_reason: "node_dead",
      });
      expect((await auditOf(ctx, job.id)).map((e) => e.event_type)).toEqual(["job.submitted", "job.assigned", "job.reassigned"]);
      expect((await nodes.get(alive.id))?.status).toBe("online");
      expect(await claim(ctx, alive.id)).toEqual([job.id]);
      expect((await jobRow(ctx, later.id)).status).toBe("pending");
    });

    it("fails a job whose node died once retries are spent, and cancels one whose cancel was asked", async () => {
      const spent = await submit(ctx, { maxRetries: 0 });
      const asked = await submit(ctx);
      const node = await register();
      await claim(ctx, node.id);
      await requestCancel(ctx, asked.id);
      silence();
      await sweep();
      expect(await jobRow(ctx, spent.id)).toMatchObject({ status: "failed", failure_reason: "max_retries_exceeded" });
      expect((await jobRow(ctx, asked.id)).status).toBe("canceled");
    });

    it("declares no node dead that beat within the node timeout, though its last_heartbeat lags behind", async () => {
      const node = await register();
      s.clock.advance(ctx.policy.heartbeatWriteMs - 1000);
      await nodes.heartbeat({ nodeId: node.id, running: [] }); // not written: within heartbeatWriteMs
      s.clock.advanceSeconds(59);
      expect(await sweep()).toEqual([]);
      s.clock.advance(ctx.policy.heartbeatWriteMs);
      expect((await sweep()).map((dead) => dead.nodeId)).toEqual([node.id]);
    });

    it("declares a node dead once when two masters sweep at once", async () => {
      const job = await submit(ctx);
      const node = await register();
      await claim(ctx, node.id);
      silence();
      const [a, b] = await Promise.all([sweep(), sweep(new PostgresNodeStore(s.second()))]);
      expect([...a, ...b].map((dead) => dead.nodeId)).toEqual([node.id]);
      expect(await jobRow(ctx, job.id)).toMatchObject({ status: "pending", retry_count: 1 });
      expect((await auditOf(ctx, node.id)).filter((e) => e.event_type === "node.dead")).toHaveLength(1);
    });

    it("leaves alone a node whose heartbeat another master writes while it sweeps", async () => {
      const job = await submit(ctx, { timeoutS: 3600 });
      const node = await register();
      await claim(ctx, node.id);
      silence();
      const other = new PostgresNodeStore(s.second());
      const [beat, dead] = await Promise.all([other.heartbeat({ nodeId: node.id, running: [{ jobId: job.id, attempt: 1 }] }), sweep()]);
      // Whichever went first, the answer and the database agree.
      const row = await jobRow(ctx, job.id);
      if (dead.length === 0) {
        expect(beat).toEqual({ ok: true, status: "online", cancel: [] });
        expect(row).toMatchObject({ status: "running", attempt: 1 });
      } else {
        expect(beat).toEqual({ ok: true, status: "online", cancel: [{ job_id: job.id, attempt: 1, reason: "reassigned" }] });
        expect(row).toMatchObject({ status: "pending", retry_count: 1 });
      }
      expect((await nodes.get(node.id))?.status).toBe("online");
    });
  });

  describe("deregister, drain, resume", () => {
    it("hands a leaving node's jobs back to the queue", async () => {
      const job = await submit(ctx);
      const node = await register();
      await claim(ctx, node.id);
      const outcome = await nodes.deregister({ id: node.id, actor: "worker-a" });
      expect(outcome.ok && outcome.node.status).toBe("offline");
      expect(outcome.ok && outcome.requeued).toBe(1);
      expect(await jobRow(ctx, job.id)).toMatchObject({ status: "pending", retry_count: 1, lease_end_reason: "node_left" });
      expect((await auditOf(ctx, node.id)).map((e) => [e.event_type, e.details.from])).toEqual([["node.registered", null], ["node.offline", "online"]]);
    });

    it("refuses to drain a dead node and to resume an offline one", async () => {
      const node = await register();
      silence();
      await sweep();
      expect(await nodes.drain({ id: node.id, actor: null })).toEqual({ ok: false, reason: "conflict", status: "dead" });
      await nodes.deregister({ id: node.id, actor: null });
      expect(await nodes.resume({ id: node.id, actor: null })).toEqual({ ok: false, reason: "conflict", status: "offline" });
      expect(await nodes.drain({ id: "nope", actor: null })).toEqual({ ok: false, reason: "not_found" });
    });

    it("tells waiting claims when a drained node is resumed", async () => {
      const node = await register();
      await nodes.drain({ id: node.id, actor: null });
      await s.settle();
      s.heard.length = 0;
      const resumed = await nodes.resume({ id: node.id, actor: "admin" });
      expect(resumed).toMatchObject({ ok: true, node: { status: "online" }, requeued: 0 });
      await s.settle();
      expect(s.heard.map((change) => change.claimable)).toEqual([true]);
    });

    it("lists nodes newest first, filtered by status and client", async () => {
      const a = await register("a");
      const b = await register("b");
      const c = await register("c", 1, "worker-b");
      await nodes.drain({ id: a.id, actor: null });
      const page = await nodes.list({ limit: 2 });
      expect(page.items.map((n) => n.id)).toEqual([c.id, b.id]);
      const next = await nodes.list({ limit: 2, cursor: page.next_cursor ?? undefined });
      expect(next).toEqual({ items: [expect.objectContaining({ id: a.id, status: "draining" })], next_cursor: null });
      expect((await nodes.list({ limit: 10, status: "draining" })).items.map((n) => n.id)).toEqual([a.id]);
      expect((await nodes.list({ limit: 10, clientId: "worker-a" })).items.map((n) => n.id)).toEqual([b.id, a.id]);
    });
  });

  it("sweeps with a batch of jobs on many nodes", async () => {
    const ids = [];
    for (let i = 0; i < 3; i++) {
      const node = await register(`dies-${i}`, 2);
      await ctx.db.transaction((tx) => submitJobs(ctx, tx, [jobParams(), jobParams()]));
      ids.push(...(await claim(ctx, node.id)));
    }
    silence();
    const dead = await nodes.markDead({ cutoff: new Date(s.clock.now().getTime() - 60_000), limit: 2 });
    expect(dead).toHaveLength(2);
    expect(await sweep()).toHaveLength(1);
    const count = await ctx.db.one(sql<{ n: number }>`SELECT count(*) AS n FROM jobs WHERE status = 'pending' AND retry_count = 1`);
    expect(count?.n).toBe(ids.length);
  });
});
